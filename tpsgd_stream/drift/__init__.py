"""Drift: domain-shift streams, shift metrics, and (next) adaptor re-training on drift."""

from .metrics import DetectionReport, accuracy_after, detection_report, recovery_time
from .streams import SHIFT_KINDS, Shift, ShiftStream, digits_shift_stream, elec2_stream

__all__ = [
    "SHIFT_KINDS",
    "DetectionReport",
    "Shift",
    "ShiftStream",
    "accuracy_after",
    "detection_report",
    "digits_shift_stream",
    "elec2_stream",
    "recovery_time",
]
