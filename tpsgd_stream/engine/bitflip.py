"""Moved to :mod:`tpsgd_stream.engine.rules.bitflip`; this path keeps working."""

from .rules.bitflip import BitFlip, discretise, flip_update

__all__ = ["BitFlip", "flip_update", "discretise"]
