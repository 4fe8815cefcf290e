"""What users run: the ``tpsgd-stream`` command (``demo``, ``run FILE``, ``bench NAME``), the
CSV/npz runner behind ``run``, the demo and the accuracy plots."""

from .main import main

__all__ = ["main"]
