"""Drift: domain-shift streams, and (next) detectors that re-train a shallow adaptor."""

from .streams import SHIFT_KINDS, Shift, ShiftStream, digits_shift_stream, elec2_stream

__all__ = ["SHIFT_KINDS", "Shift", "ShiftStream", "digits_shift_stream", "elec2_stream"]
