r"""Update rules: what a hidden layer learns from, one module per family, behind one interface.

Every rule answers one question for a hidden layer: given the layer's pre-activation ``z``,
its output ``a = sigma(z)`` and the label, what is ``delta = dL/dz`` (averaged over the
minibatch)? The layer turns ``delta`` into weight gradients itself, so no rule needs the
layers above it, except ``bp``. Only the output layer sees the true loss.

- :mod:`.target_projection`: the layer's target is a fixed random projection of the label
  ``y* P``. ``tpsgd_l2_gated`` (**the default** of every entry point): ``||a - y* P||^2``,
  each sample left out once the layer's output is nearest its own class's target by a
  margin; ``tpsgd_l1`` and ``tpsgd_l2``: the paper's ``|a - y* P|_1`` and ``||a - y* P||^2``;
  ``LocalLoss``: any differentiable ``loss(a, y* P)``.
- :mod:`.fixed_readout`: ``fixed_readout_ce`` and ``fixed_readout_ce_ls``, the cross-entropy of
  the layer read out as a classifier through a fixed random ``P`` (a readout, not a target).
- :mod:`.local_head`: ``local_head``, the cross-entropy of a learned head per layer (the most
  accurate backprop-free rule, see ``BENCHMARKS.md``).
- :mod:`.feedback`: ``bp`` (the true gradient from above), ``dfa`` and ``sdfa`` (the output
  error through a fixed ``B``), ``drtp`` (the label through ``B``).
- :mod:`.forward_gradient`: ``forward_grad``, weight perturbations of the true loss.
- :mod:`.bitflip`: ``bitflip``, tpSGD-l2 errors applied as flips of binary or ternary weights.

Old names still work, with a ``DeprecationWarning``: ``tpsgd_ce`` is ``fixed_readout_ce``,
``tpsgd_ce_ls`` is ``fixed_readout_ce_ls``, ``tpsgd_head`` is ``local_head``.

Adding a rule
-------------
Subclass :class:`Rule` in one file: a ``name`` registers it in :data:`RULES` (so every
estimator's ``rule=`` takes it), and :meth:`Rule.delta` gives the layer's ``delta``. The hooks
:meth:`Rule.init_state`, :meth:`Rule.grow`, :meth:`Rule.init_grown`, :meth:`Rule.matrix`,
:meth:`Rule.layer_delta` and :meth:`Rule.apply` change what the rule keeps per layer and how it
updates; the networks only call them. ``default_activation`` and ``default_lr`` are what the
estimators train the rule with when ``activation`` or ``lr`` is ``None``. A rule that pushes
each unit to the sign of its projected label:

>>> import torch
>>> from tpsgd_stream.models import TPSGDClassifier
>>> class SignTarget(Rule):
...     name = "sign_target"
...
...     def delta(self, *, z, a, act, target, error, matrix):
...         residual = a - torch.sign(target @ matrix)  # target: the one-hot labels
...         return act.backward(residual / len(z), z, a)  # times sigma'(z)
>>> model = TPSGDClassifier(rule="sign_target", batch_size=2, seed=0)
>>> for x, y in [({"a": 0.0}, "no"), ({"a": 1.0}, "yes")] * 20:
...     model.learn_one(x, y)
>>> model.predict_one({"a": 1.0})
'yes'
>>> del RULES["sign_target"]
"""

from __future__ import annotations

import warnings

from .base import (
    DEFAULT_RULE,
    MODES,
    RULES,
    RowDelta,
    Rule,
    RuleState,
    canonical_name,
    dense_delta,
    get_rule,
)
from .bitflip import BitFlip
from .feedback import DFA, DRTP, Backprop, SignDFA, dfa_delta, drtp_delta
from .fixed_readout import (
    FixedReadoutCE,
    FixedReadoutSmoothedCE,
    projected_cross_entropy_delta,
    smoothed_cross_entropy_delta,
)
from .forward_gradient import ForwardGradient
from .local_head import HeadDelta, LocalHead, local_head_delta
from .target_projection import (
    TPSGDL1,
    TPSGDL2,
    GatedTargetProjection,
    LocalLoss,
    target_projection_delta,
)

__all__ = [
    "Rule",
    "RuleState",
    "Backprop",
    "DFA",
    "SignDFA",
    "DRTP",
    "TPSGDL1",
    "TPSGDL2",
    "GatedTargetProjection",
    "FixedReadoutCE",
    "FixedReadoutSmoothedCE",
    "LocalLoss",
    "LocalHead",
    "ForwardGradient",
    "BitFlip",
    "RULES",
    "DEFAULT_RULE",
    "MODES",
    "RowDelta",
    "HeadDelta",
    "get_rule",
    "canonical_name",
    "dense_delta",
    "dfa_delta",
    "drtp_delta",
    "target_projection_delta",
    "projected_cross_entropy_delta",
    "smoothed_cross_entropy_delta",
    "local_head_delta",
]

_OLD_CLASS_NAMES = {
    "TPSGDCrossEntropy": FixedReadoutCE,
    "TPSGDSmoothedCE": FixedReadoutSmoothedCE,
    "TPSGDLocalHead": LocalHead,
}


def __getattr__(name: str):
    """The rules' old class names (and so old pickles), with a ``DeprecationWarning``."""
    if name in _OLD_CLASS_NAMES:
        new = _OLD_CLASS_NAMES[name]
        warnings.warn(
            f"{name} was renamed {new.__name__}; the old name will be removed.",
            DeprecationWarning,
            stacklevel=2,
        )
        return new
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
