"""tpsgd-stream: learning on data streams without backpropagation.

:mod:`tpsgd_stream.engine` trains networks layer by layer with target projection SGD (tpSGD,
Lomnitz et al., arXiv 2208.08503) and its relatives; :mod:`tpsgd_stream.models` wraps it as
river estimators; :mod:`tpsgd_stream.drift` adapts them to drift; :mod:`tpsgd_stream.fleet`
runs one per stream key; :mod:`tpsgd_stream.cli` is the ``tpsgd-stream`` command.
"""

from . import _compat
from .engine import (
    ACTIVATIONS,
    PROJECTION_KINDS,
    RULES,
    SCHEDULES,
    AvgPool1d,
    AvgPool2d,
    Conv1d,
    Conv2d,
    Dense,
    Flatten,
    GlobalAvgPool1d,
    GlobalMaxPool1d,
    LocalLoss,
    MaxPool1d,
    MaxPool2d,
    Network,
    Projection,
    Rule,
    get_activation,
    get_rule,
)

_compat.install()

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "AvgPool1d",
    "AvgPool2d",
    "Conv1d",
    "Conv2d",
    "Dense",
    "Flatten",
    "GlobalAvgPool1d",
    "GlobalMaxPool1d",
    "LocalLoss",
    "MaxPool1d",
    "MaxPool2d",
    "Network",
    "PROJECTION_KINDS",
    "Projection",
    "RULES",
    "Rule",
    "SCHEDULES",
    "get_activation",
    "get_rule",
]
