"""Drift: adaptor re-training on detected drift, domain-shift streams, shift metrics."""

from .adaptive import DriftAdaptiveClassifier, DriftEvent
from .metrics import DetectionReport, accuracy_after, detection_report, recovery_time
from .streams import SHIFT_KINDS, Shift, ShiftStream, digits_shift_stream, elec2_stream

__all__ = [
    "SHIFT_KINDS",
    "DetectionReport",
    "DriftAdaptiveClassifier",
    "DriftEvent",
    "Shift",
    "ShiftStream",
    "accuracy_after",
    "detection_report",
    "digits_shift_stream",
    "elec2_stream",
    "recovery_time",
]
