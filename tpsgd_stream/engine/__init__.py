"""The engine: tensors in, layers trained by their own rules; it knows nothing of river.

- :mod:`~tpsgd_stream.engine.projection`: fixed random matrices regenerated from a seed.
- :mod:`~tpsgd_stream.engine.rules`: the update rules (what a hidden layer's ``delta`` is).
- :mod:`~tpsgd_stream.engine.layers`: ``Dense``, ``Conv2d``, ``Conv1d``, pooling,
  ``Flatten``.
- :mod:`~tpsgd_stream.engine.network`, :mod:`~tpsgd_stream.engine.recurrent`: stacks trained
  layer by layer, on the shared :class:`~tpsgd_stream.engine.base.BaseNetwork` (loss, seed,
  device, per-module optimizers, minibatch checks); :mod:`~tpsgd_stream.engine.training` fits
  them on tensors.
- :mod:`~tpsgd_stream.engine.optim`, :mod:`~tpsgd_stream.engine.losses`,
  :mod:`~tpsgd_stream.engine.activations`: per-layer optimizers, output losses, activations.
- :mod:`~tpsgd_stream.engine.inference`: ``Float64Forward``, the float64 prediction pass the
  estimators run on a copy of a network's weights.
- :mod:`~tpsgd_stream.engine.forward_gradient`, :mod:`~tpsgd_stream.engine.bitflip`: the
  forward-gradient and bit-flip baselines.
"""

from .activations import ACTIVATIONS, get_activation
from .inference import Float64Forward
from .layers import (
    AvgPool1d,
    AvgPool2d,
    Conv1d,
    Conv2d,
    Dense,
    Flatten,
    GlobalAvgPool1d,
    GlobalMaxPool1d,
    MaxPool1d,
    MaxPool2d,
)
from .network import SCHEDULES, Network
from .projection import PROJECTION_KINDS, Projection
from .rules import RULES, LocalLoss, Rule, get_rule

__all__ = [
    "ACTIVATIONS",
    "AvgPool1d",
    "AvgPool2d",
    "Conv1d",
    "Conv2d",
    "Dense",
    "Flatten",
    "Float64Forward",
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
