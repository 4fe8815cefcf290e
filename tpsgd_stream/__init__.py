"""tpsgd-stream: learning on data streams without backpropagation.

The engine (this package) trains networks layer by layer with target projection SGD
(tpSGD, Lomnitz et al., arXiv 2208.08503) and its relatives; :mod:`tpsgd_stream.models` wraps
it as river estimators.
"""

from .activations import ACTIVATIONS, get_activation
from .layers import AvgPool2d, Conv2d, Dense, Flatten, MaxPool2d
from .network import SCHEDULES, Network
from .projection import PROJECTION_KINDS, Projection
from .rules import RULES, LocalLoss, Rule, get_rule

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "AvgPool2d",
    "Conv2d",
    "Dense",
    "Flatten",
    "LocalLoss",
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
