r"""The update rules of the tpSGD paper's Table 1, and relatives, behind one interface.

Every rule answers one question for a hidden layer: given the layer's pre-activation ``z``,
its output ``a = sigma(z)`` and the label, what is ``delta = dL/dz`` (averaged over the
minibatch)? The layer turns ``delta`` into weight gradients itself (an outer product for a dense
layer, ``torch.nn.grad.conv2d_weight`` for a convolution), so no rule ever needs the layers
above it, except ``bp``, which receives ``delta`` from the layer above as backprop does.

=============  ====================================================================
rule           ``delta`` for a hidden layer (``n`` = minibatch size)
=============  ====================================================================
``bp``         ``(delta_above @ W_above) * sigma'(z)`` (true gradient)
``dfa``        ``(e @ B) * sigma'(z) / n``, ``e`` the output error ``softmax(o) - y*``
``sdfa``       ``(sign(e) @ B) * sigma'(z) / n``
``drtp``       ``(y* @ B) * sigma'(z) / n`` (label only, no error)
``tpsgd_l1``   ``sign(a - y* @ P) * sigma'(z) / n``, gradient of ``|a - y* P|_1``
``tpsgd_l2``   ``2 (a - y* @ P) * sigma'(z) / n``, gradient of ``||a - y* P||^2``
``tpsgd_ce``   ``((softmax(a @ P^T) - y*) @ P) * sigma'(z) / n`` (beyond the paper)
``tpsgd_ce_ls`` the same, label-smoothed and stopped once the layer is confident (ours)
``tpsgd_head`` ``tpsgd_ce_ls`` through a learned head ``H`` on the (pooled) output instead
               of the fixed ``P`` (Noekland & Eidnes 2019), ``H`` trained alongside (ours)
``local_loss`` gradient of any differentiable ``loss(a, y* @ P)`` (local autograd)
=============  ====================================================================

With ``target_on="preactivation"`` the target-projection rules compare ``z`` instead of ``a``
with the target, and the ``sigma'(z)`` factor drops out.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch.nn import functional as F

from . import _ops
from .activations import Activation
from .projection import PROJECTION_KINDS, Projection

__all__ = [
    "Rule",
    "Backprop",
    "DFA",
    "SignDFA",
    "DRTP",
    "TPSGDL1",
    "TPSGDL2",
    "TPSGDCrossEntropy",
    "TPSGDSmoothedCE",
    "LocalLoss",
    "TPSGDLocalHead",
    "RULES",
    "RowDelta",
    "HeadDelta",
    "get_rule",
    "dfa_delta",
    "drtp_delta",
    "target_projection_delta",
    "projected_cross_entropy_delta",
    "smoothed_cross_entropy_delta",
    "local_head_delta",
]

TARGET_ON = ("activation", "preactivation")


def _through(act: Activation, z: torch.Tensor, a: torch.Tensor) -> Backward:
    """``g -> g * sigma'(z)`` for this layer, as one fused kernel."""
    return lambda grad: act.backward(grad, z, a)


def _flat(matrix: torch.Tensor) -> torch.Tensor:
    """``(n_rows, *units)`` -> ``(n_rows, prod(units))`` (a 2-d ``matrix`` as it is)."""
    return matrix if matrix.dim() == 2 else matrix.reshape(matrix.shape[0], -1)


def _unflat(grad: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``(rows, prod(units))`` -> ``(rows, *units)`` with the units of ``like``."""
    return grad if like.dim() == 2 else grad.reshape(grad.shape[0], *like.shape[1:])


def _gated_error(
    features: torch.Tensor,
    readout: torch.Tensor,
    target: torch.Tensor,
    smoothing: float,
    confident: float,
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """The gated, smoothed error of a linear readout, in the ``(K, n)`` layout, scaled by
    ``1/n``; the rows (samples) still learning; whether gathering them pays (at most half
    kept: most samples are learned).

    ``p = softmax(readout @ features^T)`` over the ``K`` classes, ``t = (1 - eps) y* + eps / K``
    and the gate ``m = [p . y* < confident]`` give ``m (p - t) / n``. Classes run along the
    first axis: a softmax or sum over ``K`` = 10 entries is then one vectorised pass across the
    samples, where over the last axis of ``(n, K)`` it ran 10x slower on CPU (about 30 against
    3 us for ``(128, 10)``), a large part of a local head's cost on a 256-unit layer.
    """
    n = features.shape[0]
    target_t = target.t()
    probs = torch.softmax(torch.mm(readout, features.t()), dim=0)
    keep = (probs * target_t).sum(0) < confident
    error = probs.sub_(target_t, alpha=1.0 - smoothing).sub_(smoothing / target_t.shape[0])
    error.mul_(keep * (1.0 / n))
    rows = keep.nonzero().view(-1)
    return error, rows, 2 * rows.shape[0] <= n


def _gather_rows(
    rows: torch.Tensor, z: torch.Tensor, a: torch.Tensor, act: Activation, target_on: str
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``rows`` of ``z``, and of ``a`` only where the activation's slope reads it
    (``sigma'(z)`` is applied to activation targets, and tanh's or sigmoid's reads ``a``);
    ``None`` in its place otherwise."""
    z = z.index_select(0, rows)
    if target_on == "activation" and act.reads_output:
        return z, a.index_select(0, rows)
    return z, None


def _project(signal: torch.Tensor, matrix: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``signal @ matrix`` shaped like the layer output ``like``."""
    return _unflat(torch.mm(signal, _flat(matrix)), like)


Backward = Callable[[torch.Tensor], torch.Tensor]
"""Multiplies a gradient with respect to ``a`` by ``sigma'(z)`` (one fused kernel)."""


def dfa_delta(
    *, error: torch.Tensor, feedback: torch.Tensor, like: torch.Tensor, backward: Backward
) -> torch.Tensor:
    """DFA: ``(e @ B) * sigma'(z) / n`` (Noekland 2016); ``like`` is ``z`` (for its shape)."""
    return backward(_project(error / like.shape[0], feedback, like))


def drtp_delta(
    *, target: torch.Tensor, feedback: torch.Tensor, like: torch.Tensor, backward: Backward
) -> torch.Tensor:
    """DRTP: ``(y* @ B) * sigma'(z) / n`` (Frenkel et al. 2021)."""
    return backward(_project(target / like.shape[0], feedback, like))


def target_projection_delta(
    *,
    output: torch.Tensor,
    target: torch.Tensor,
    projection: torch.Tensor,
    backward: Backward | None,
    norm: str,
) -> torch.Tensor:
    """tpSGD: gradient of ``|h - y* P|_1`` (``norm="l1"``) or ``||h - y* P||^2`` (``"l2"``).

    ``h`` is ``output``, the layer's activation or pre-activation; ``backward`` multiplies by
    ``sigma'(z)`` when ``h`` is the activation and is ``None`` when it is the pre-activation.
    Summed over units, averaged over the minibatch.
    """
    residual = output - _project(target, projection, output)
    scale = (1.0 if norm == "l1" else 2.0) / output.shape[0]
    grad = torch.sign(residual).mul_(scale) if norm == "l1" else residual.mul_(scale)
    return grad if backward is None else backward(grad)


def projected_cross_entropy_delta(
    *,
    output: torch.Tensor,
    target: torch.Tensor,
    projection: torch.Tensor,
    backward: Backward | None,
) -> torch.Tensor:
    """Local cross-entropy of the layer read out through its fixed projection.

    ``logits = h @ P^T``; the loss is ``CE(logits, y)`` averaged over the minibatch, so
    ``delta = ((softmax(logits) - y*) @ P) * sigma'(z) / n``.
    """
    n = output.shape[0]
    flat_p = _flat(projection)
    error = torch.softmax(F.linear(_flat(output), flat_p), dim=1) - target  # h @ P^T
    grad = _unflat(torch.mm(error / n, flat_p), output)  # 1/n on the small (n, K) error
    return grad if backward is None else backward(grad)


class Rule:
    """Base of all update rules: how a hidden layer gets its ``delta = dL/dz``.

    Parameters
    ----------
    projection
        Kind of the fixed matrix (see :class:`~tpsgd_stream.engine.projection.Projection`); ``None``
        takes the rule's default.
    scale
        Multiplier of the matrix entries; ``None`` takes the rule's default.
    target_on
        ``"activation"`` (compare ``sigma(z)`` with the target, as the paper) or
        ``"preactivation"`` (compare ``z``).

    Examples
    --------
    >>> rule = TPSGDL2(projection="uniform", target_on="preactivation")
    >>> rule.projection, rule.target_on, rule == TPSGDL2(projection="uniform",
    ...                                                     target_on="preactivation")
    ('uniform', 'preactivation', True)
    """

    name = "rule"
    is_local = True  # False: needs the delta of the layer above (bp)
    uses_error = False  # True: needs the output error first (dfa, sdfa)
    perturbative = False  # True: trained by weight perturbation, not by a delta (forward_grad)
    discrete = False  # True: binary/ternary weights changed by flips, no optimizer (bitflip)
    learns_head = False  # True: reads the layer out through a learned head (tpsgd_head)
    reads_classes = False  # True: a softmax over the classes (needs loss="cross_entropy")
    default_projection: str | None = "normal"

    def __init__(
        self,
        *,
        projection: str | None = None,
        scale: float | None = None,
        target_on: str = "activation",
    ):
        if target_on not in TARGET_ON:
            raise ValueError(f"target_on must be one of {TARGET_ON}, got {target_on!r}.")
        if projection is not None and projection not in PROJECTION_KINDS:
            raise ValueError(
                f"Unknown projection kind {projection!r}; expected one of {PROJECTION_KINDS}."
            )
        if scale is not None and not (
            isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0
        ):
            raise ValueError(f"scale must be a positive finite number or None, got {scale!r}.")
        self.projection = projection or self.default_projection
        self.scale = scale
        self.target_on = target_on

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(projection={self.projection!r}, scale={self.scale!r}, "
            f"target_on={self.target_on!r})"
        )

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash((type(self), self.projection, self.scale, self.target_on))

    def default_scale(self, n_units: int) -> float:
        """Scale of the matrix entries when ``scale`` is not given."""
        return 1.0

    def make_projection(self, n_units: int, *, seed: int, stream: int) -> Projection | None:
        """The fixed matrix this rule uses on a layer of ``n_units`` outputs."""
        if self.projection is None:
            return None
        scale = self.scale if self.scale is not None else self.default_scale(n_units)
        return Projection(self.projection, scale=scale, seed=seed, stream=stream)

    def _compared(self, z, a, act: Activation) -> tuple[torch.Tensor, Backward | None]:
        """What the target is compared with, and how its gradient reaches ``z``."""
        if self.target_on == "activation":
            return a, _through(act, z, a)
        return z, None

    def delta(
        self,
        *,
        z: torch.Tensor,
        a: torch.Tensor,
        act: Activation,
        target: torch.Tensor,
        error: torch.Tensor | None,
        matrix: torch.Tensor | None,
    ) -> torch.Tensor:
        """``dL/dz`` of this layer (``act`` is its activation, ``matrix`` the fixed P or B)."""
        raise NotImplementedError


class Backprop(Rule):
    """True gradient from the layer above (``delta = (delta_above @ W_above) * sigma'(z)``).

    A run of ``bp`` layers under a layer with a local rule is trained by back-propagating that
    layer's local loss through the run; under the output layer, by the true loss.

    Examples
    --------
    >>> Backprop().is_local, Backprop().projection
    (False, None)
    """

    name = "bp"
    is_local = False
    default_projection = None


class DFA(Rule):
    """Direct feedback alignment: ``delta = (e @ B) * sigma'(z) / n``.

    Examples
    --------
    >>> import torch
    >>> from tpsgd_stream.engine.activations import get_activation
    >>> z = torch.tensor([[1.0, -1.0]])
    >>> DFA().delta(z=z, a=z, act=get_activation("relu"), target=None,
    ...             error=torch.tensor([[0.5, -0.5]]), matrix=torch.eye(2))
    tensor([[0.5000, -0.0000]])
    """

    name = "dfa"
    uses_error = True
    default_projection = "uniform"

    def delta(self, *, z, a, act, target, error, matrix):
        return dfa_delta(error=error, feedback=matrix, like=z, backward=_through(act, z, a))


class SignDFA(Rule):
    """Sign-symmetric DFA: ``delta = (sign(e) @ B) * sigma'(z) / n``.

    Its signal does not shrink as the network learns: pair it with a saturating activation
    (``activation="tanh"``), whose slope stops a saturated unit. With leaky ReLU and Adam the
    hidden units are pushed without bound (MNIST MLP, 1 epoch: 15 % against 90 % with tanh;
    BENCHMARKS.md, "Table 2 with tanh hidden layers").

    Examples
    --------
    >>> import torch
    >>> from tpsgd_stream.engine.activations import get_activation
    >>> z = torch.tensor([[1.0, 2.0]])
    >>> SignDFA().delta(z=z, a=z, act=get_activation("identity"), target=None,
    ...                 error=torch.tensor([[0.1, -3.0]]), matrix=torch.eye(2))
    tensor([[ 1., -1.]])
    """

    name = "sdfa"
    uses_error = True
    default_projection = "uniform"

    def delta(self, *, z, a, act, target, error, matrix):
        backward = _through(act, z, a)
        return dfa_delta(error=torch.sign(error), feedback=matrix, like=z, backward=backward)


class DRTP(Rule):
    """Direct random target projection: ``delta = (y* @ B) * sigma'(z) / n``.

    As :class:`SignDFA`, its signal does not shrink: use a saturating activation
    (``activation="tanh"``; MNIST MLP, 1 epoch: 56 % with leaky ReLU, 92 % with tanh).

    Examples
    --------
    >>> import torch
    >>> from tpsgd_stream.engine.activations import get_activation
    >>> z = torch.tensor([[1.0, 2.0]])
    >>> DRTP().delta(z=z, a=z, act=get_activation("identity"), target=torch.tensor([[0.0, 1.0]]),
    ...              error=None, matrix=torch.tensor([[1.0, 1.0], [2.0, -2.0]]))
    tensor([[ 2., -2.]])
    """

    name = "drtp"
    default_projection = "orthogonal"

    def delta(self, *, z, a, act, target, error, matrix):
        return drtp_delta(target=target, feedback=matrix, like=z, backward=_through(act, z, a))


class TPSGDL1(Rule):
    """tpSGD with an l1 local loss ``|a - y* P|_1``, P binary near-orthogonal.

    Examples
    --------
    >>> import torch
    >>> from tpsgd_stream.engine.activations import get_activation
    >>> a = torch.tensor([[0.5, -2.0]])  # the target y* P is [1, -1]
    >>> TPSGDL1().delta(z=a, a=a, act=get_activation("identity"), target=torch.tensor([[1.0]]),
    ...                 error=None, matrix=torch.tensor([[1.0, -1.0]]))
    tensor([[-1., -1.]])
    """

    name = "tpsgd_l1"
    default_projection = "binary"

    def delta(self, *, z, a, act, target, error, matrix):
        output, backward = self._compared(z, a, act)
        return target_projection_delta(
            output=output, target=target, projection=matrix, backward=backward, norm="l1"
        )


class TPSGDL2(Rule):
    """tpSGD with an l2 local loss ``||a - y* P||^2``, P ~ N(0, 1).

    Examples
    --------
    >>> import torch
    >>> from tpsgd_stream.engine.activations import get_activation
    >>> a = torch.tensor([[0.5, -2.0]])
    >>> TPSGDL2().delta(z=a, a=a, act=get_activation("identity"), target=torch.tensor([[1.0]]),
    ...                 error=None, matrix=torch.tensor([[1.0, -1.0]]))
    tensor([[-1., -2.]])
    """

    name = "tpsgd_l2"

    def delta(self, *, z, a, act, target, error, matrix):
        output, backward = self._compared(z, a, act)
        return target_projection_delta(
            output=output, target=target, projection=matrix, backward=backward, norm="l2"
        )


class TPSGDCrossEntropy(Rule):
    """Local cross-entropy of the layer read out through its fixed projection.

    The projection's scale is a softmax temperature: by default each entry has standard
    deviation ``3.2 / sqrt(n_units)`` (0.2 for 256 units, the best of a calibration sweep).

    Examples
    --------
    >>> import torch
    >>> from tpsgd_stream.engine.activations import get_activation
    >>> a = torch.tensor([[0.0, 0.0]])  # read out as 50/50: the error pushes towards class 0
    >>> TPSGDCrossEntropy().delta(z=a, a=a, act=get_activation("identity"),
    ...                           target=torch.tensor([[1.0, 0.0]]), error=None,
    ...                           matrix=torch.eye(2))
    tensor([[-0.5000,  0.5000]])
    >>> round(TPSGDCrossEntropy().default_scale(256), 3)
    0.2
    """

    name = "tpsgd_ce"
    reads_classes = True
    temperature = 3.2

    def default_scale(self, n_units: int) -> float:
        return self.temperature / math.sqrt(n_units)

    def delta(self, *, z, a, act, target, error, matrix):
        output, backward = self._compared(z, a, act)
        return projected_cross_entropy_delta(
            output=output, target=target, projection=matrix, backward=backward
        )


class LocalLoss(Rule):
    """Any differentiable local loss ``loss(h, y* @ P) -> scalar`` (the paper's arbitrary loss).

    The gradient is taken by autograd on this layer alone: ``h`` is a detached leaf, so nothing
    flows to other layers.

    Examples
    --------
    >>> import torch
    >>> from tpsgd_stream.engine.activations import get_activation
    >>> rule = LocalLoss(lambda h, t: torch.nn.functional.smooth_l1_loss(h, t, reduction="sum"))
    >>> z = torch.tensor([[0.5, -2.0]])
    >>> rule.delta(z=z, a=z, act=get_activation("identity"), target=torch.tensor([[1.0]]),
    ...            error=None, matrix=torch.tensor([[1.0, 1.0]]))
    tensor([[-0.5000, -1.0000]])
    """

    name = "local_loss"

    def __init__(self, loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], **kwargs):
        super().__init__(**kwargs)
        if not callable(loss):
            raise TypeError(f"loss must be callable (h, target) -> scalar, got {loss!r}.")
        self.loss = loss

    def __hash__(self) -> int:
        return hash((type(self), self.loss, self.projection, self.scale, self.target_on))

    def delta(self, *, z, a, act, target, error, matrix):
        output, backward = self._compared(z, a, act)
        with torch.enable_grad():
            h = output.detach().requires_grad_(True)
            loss = self.loss(h, _project(target, matrix, h)) / h.shape[0]
            (grad,) = torch.autograd.grad(loss, h)
        return grad if backward is None else backward(grad)


RULES: dict[str, type[Rule]] = {
    rule.name: rule for rule in (Backprop, DFA, SignDFA, DRTP, TPSGDL1, TPSGDL2, TPSGDCrossEntropy)
}


def get_rule(rule: str | Rule, **kwargs) -> Rule:
    """A :class:`Rule` from its name (``"tpsgd_ce"``) or an instance (returned as is).

    Examples
    --------
    >>> get_rule("drtp")
    DRTP(projection='orthogonal', scale=None, target_on='activation')
    """
    if isinstance(rule, Rule):
        return rule
    if rule not in RULES:
        raise ValueError(f"Unknown rule {rule!r}; expected one of {sorted(RULES)} or a Rule.")
    return RULES[rule](**kwargs)


def smoothed_cross_entropy_delta(
    *,
    output: torch.Tensor,
    target: torch.Tensor,
    projection: torch.Tensor,
    backward: Backward | None,
    smoothing: float,
    confident: float,
) -> torch.Tensor:
    """Local cross-entropy through the fixed projection, label-smoothed and confidence-gated.

    ``logits = h @ P^T``, ``p = softmax(logits)``, ``t = (1 - eps) y* + eps / K`` (``K``
    classes); a sample whose ``p`` gives its own class at least ``confident`` is left out:
    ``delta = m * ((p - t) @ P) * sigma'(z) / n`` with ``m = [p . y* < confident]``.
    """
    n = output.shape[0]
    flat_p = _flat(projection)
    probs = torch.softmax(output.reshape(n, -1) @ flat_p.T, dim=1)
    error = probs - (target * (1.0 - smoothing) + smoothing / target.shape[1])
    keep = (probs * target).sum(1, keepdim=True) < confident
    # the gate and 1/n scale the (n, K) error, not the (n, units) delta: one pass fewer over
    # a conv layer's map
    grad = ((error * keep / n) @ flat_p).reshape(output.shape)
    return grad if backward is None else backward(grad)


class RowDelta(NamedTuple):
    """A ``delta`` that is zero outside ``rows``: ``values`` holds only those rows.

    A gated rule returns it so that the layer's weight gradient is computed from the samples
    that still learn (``values^T @ x[rows]``) instead of a mostly-zero minibatch.

    Examples
    --------
    >>> RowDelta(torch.tensor([1]), torch.ones(1, 2)).dense(like=torch.zeros(3, 2))
    tensor([[0., 0.],
            [1., 1.],
            [0., 0.]])
    """

    rows: torch.Tensor
    values: torch.Tensor

    def dense(self, like: torch.Tensor) -> torch.Tensor:
        """The full ``delta``, zeros outside ``rows``, shaped like ``like``."""
        return like.new_zeros(like.shape).index_copy_(0, self.rows, self.values)


class TPSGDSmoothedCE(TPSGDCrossEntropy):
    r"""Local cross-entropy through a fixed projection, label-smoothed and gated (beyond the paper).

    ``delta = m * ((softmax(h @ P^T) - t) @ P) * sigma'(z) / n`` with the smoothed target
    ``t = (1 - eps) y* + eps / K`` and the gate ``m = [softmax(h @ P^T) . y* < c]``. Against a
    one-hot target the local loss keeps pushing a layer's margin long after a sample is learned
    (the "signal never vanishes" pitfall); the smoothed target asks for a finite margin and the
    gate stops a sample's update once the layer's own fixed readout gives its class ``c``
    (late in an epoch of the MNIST MLP only ~30 % of the samples still update a layer).

    Defaults from the MNIST sweeps in BENCHMARKS.md: ``eps = 0.1``, ``c = 0.9``, ``P``
    orthogonal with entries of standard deviation 0.08 whatever the width (with smoothing the
    256-unit MLP was flat for 0.05-0.15, and the conv layers' best, 0.067-0.08 on 9,216 and
    6,400 units, sits in the same place, where ``temperature / sqrt(n_units)`` would need 1.6
    for one and 6.4 for the other).

    Examples
    --------
    >>> import torch
    >>> rule = TPSGDSmoothedCE()
    >>> P = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> h = torch.tensor([[5.0, 0.0], [0.0, 0.0]])  # sample 0 is read out confidently as class 0
    >>> from tpsgd_stream.engine.activations import get_activation
    >>> identity = get_activation("identity")
    >>> delta = rule.delta(z=h, a=h, act=identity, target=torch.eye(2), error=None, matrix=P)
    >>> delta.rows.tolist()  # only sample 1 still learns
    [1]
    >>> delta.dense(like=h)
    tensor([[ 0.0000,  0.0000],
            [ 0.2250, -0.2250]])
    """

    name = "tpsgd_ce_ls"
    default_projection = "orthogonal"
    entry_std = 0.08
    smoothing = 0.1
    confident = 0.9

    def default_scale(self, n_units: int) -> float:
        return self.entry_std

    def delta(self, *, z, a, act, target, error, matrix):
        """As :func:`smoothed_cross_entropy_delta`; a :class:`RowDelta` when at most half of
        the samples still learn (their rows alone then make the weight gradient)."""
        output = a if self.target_on == "activation" else z
        flat_p = _flat(matrix)
        error, rows, sparse = _gated_error(
            _flat(output), flat_p, target, self.smoothing, self.confident
        )
        if sparse:
            error = error.index_select(1, rows)
            z, a = _gather_rows(rows, z, a, act, self.target_on)
        grad = _unflat(torch.mm(error.t(), flat_p), output)
        if self.target_on == "activation":
            grad = act.backward(grad, z, a)
        return RowDelta(rows, grad) if sparse else grad


RULES[TPSGDSmoothedCE.name] = TPSGDSmoothedCE


class HeadDelta(NamedTuple):
    """A layer's ``delta`` (dense, or a :class:`RowDelta`) and its local head's gradient.

    Examples
    --------
    >>> HeadDelta(torch.zeros(2, 3), torch.ones(4, 3)).head_grad.shape
    torch.Size([4, 3])
    """

    delta: torch.Tensor | RowDelta
    head_grad: torch.Tensor


def _head_features(output: torch.Tensor, pool: int | None) -> torch.Tensor:
    """What a local head reads: a conv map average-pooled to ``pool x pool``, else ``output``."""
    return F.adaptive_avg_pool2d(output, pool) if output.dim() == 4 and pool else output


def _spread(grad: torch.Tensor, output: torch.Tensor, pool: int | None) -> torch.Tensor:
    """``grad`` with respect to the head's features -> with respect to ``output``."""
    if output.dim() == 4 and pool:  # the average pool's adjoint: spread evenly over windows
        return _ops.adaptive_avg_pool2d_backward(grad, output)
    return grad


def local_head_delta(
    *,
    output: torch.Tensor,
    target: torch.Tensor,
    head: torch.Tensor,
    backward: Backward | None,
    pool: int | None,
    smoothing: float,
    confident: float,
) -> HeadDelta:
    """Label-smoothed, gated cross-entropy of a learned linear head on the layer's output.

    ``f = pool(h)``, a convolution's map average-pooled to ``pool x pool`` per channel (``h``
    itself when ``pool`` is ``None`` or the layer is dense), ``p = softmax(f @ H^T)``,
    ``t = (1 - eps) y* + eps / K``, and the gate ``m = [p . y* < confident]`` leaves out the
    samples the head already gives their class with at least ``confident``. The loss
    ``sum(m * CE(p, t)) / n`` gives the head's gradient ``(m (p - t))^T f / n`` and
    ``dL/dh = pool^T((m (p - t)) @ H / n)`` (the average pool's adjoint spreads each pooled
    gradient evenly over its window), times ``sigma'(z)`` when ``h`` is the activation.
    """
    n = output.shape[0]
    features = _head_features(output, pool)
    flat = features.reshape(n, -1)
    probs = torch.softmax(flat @ head.T, dim=1)
    keep = (probs * target).sum(1, keepdim=True) < confident
    error = (probs - (target * (1.0 - smoothing) + smoothing / target.shape[1])) * keep / n
    grad = _spread((error @ head).reshape(features.shape), output, pool)
    return HeadDelta(grad if backward is None else backward(grad), error.T @ flat)


class TPSGDLocalHead(Rule):
    """Local cross-entropy of a learned linear head on the layer's output (beyond the paper).

    Each hidden layer has its own linear classifier ``H`` (``n_classes x units read``), trained
    jointly with the layer on the label-smoothed local cross-entropy, as in "Training neural
    networks with local error signals" (Noekland & Eidnes, ICML 2019) and greedy layer-wise
    learning with auxiliary heads. Gradients never cross layers: a layer learns from its own
    head only, never from the layers above. As in ``tpsgd_ce_ls``, the target is smoothed
    (``eps = 0.1``) and a sample stops updating the layer and its head once the head gives its
    class ``confident = 0.9``; late in an epoch of the MNIST nets only 20-35 % of the samples
    still learn, and the weight gradients are formed from their rows alone. ``H`` starts as the
    rule's random projection (orthogonal rows, entries of standard deviation ``scale``, 0.08
    by default), is saved with the network (``Network.heads``) and grows a row per new class,
    generated as a projection row, the old rows kept. See :func:`local_head_delta`.

    Where ``tpsgd_ce_ls`` reads a layer out through a fixed random projection, the head learns
    which directions of the layer predict the label: on the MNIST CNN this took the first
    convolution from harmful (training it locally did worse than leaving it at its random
    init) to within 0.1 point of backprop (see BENCHMARKS.md).

    Parameters
    ----------
    pool
        ``None``: the head reads the whole output. An int: a convolution's head reads its map
        average-pooled to ``pool x pool`` per channel (less memory; on the MNIST CNN, 8 lost
        0.25 point on average and 4 about 1 point against the whole map, without the gate).
    projection, scale, target_on
        As :class:`Rule`; ``projection`` and ``scale`` give the head's initial value.

    Examples
    --------
    >>> import torch
    >>> from tpsgd_stream.engine.activations import get_activation
    >>> rule = TPSGDLocalHead(pool=1)
    >>> a = torch.ones(1, 2, 3, 3)  # two channels, pooled to one value each
    >>> out = rule.delta(z=a, a=a, act=get_activation("identity"), target=torch.eye(2)[:1],
    ...                  error=None, matrix=torch.zeros(2, 2))
    >>> out.head_grad  # (p - t)^T pool(a): p = [0.5, 0.5], t = [0.95, 0.05]
    tensor([[-0.4500, -0.4500],
            [ 0.4500,  0.4500]])
    >>> out.delta.abs().sum()  # a zero head sends nothing back to the layer
    tensor(0.)
    """

    name = "tpsgd_head"
    learns_head = True
    reads_classes = True
    default_projection = "orthogonal"
    entry_std = 0.08
    smoothing = 0.1
    confident = 0.9

    def __init__(
        self,
        *,
        pool: int | None = None,
        projection: str | None = None,
        scale: float | None = None,
        target_on: str = "activation",
    ):
        super().__init__(projection=projection, scale=scale, target_on=target_on)
        if pool is not None and (
            isinstance(pool, bool) or not (isinstance(pool, int) and pool > 0)
        ):
            raise ValueError(f"pool must be a positive int or None, got {pool!r}.")
        self.pool = pool

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, pool={self.pool!r})"

    def default_scale(self, n_units: int) -> float:
        return self.entry_std

    def head_units(self, out_shape: tuple[int, ...]) -> int:
        """Inputs of the head of a layer whose outputs have ``out_shape`` (channels first)."""
        if len(out_shape) == 3 and self.pool is not None:
            return out_shape[0] * self.pool**2
        return math.prod(out_shape)

    def delta(self, *, z, a, act, target, error, matrix):
        """As :func:`local_head_delta` (``matrix`` is the head ``H``); the layer's ``delta`` is
        a :class:`RowDelta` when at most half of the samples still learn."""
        output = a if self.target_on == "activation" else z
        features = _head_features(output, self.pool)
        flat = _flat(features)
        error, rows, sparse = _gated_error(flat, matrix, target, self.smoothing, self.confident)
        head_grad = torch.mm(error, flat)  # the (K, units) product is cheap on all rows
        if sparse:  # only the rows the layer's gradient needs
            error = error.index_select(1, rows)
            z, a = _gather_rows(rows, z, a, act, self.target_on)
        grad = _unflat(torch.mm(error.t(), matrix), features)
        if features is not output:  # the pool's adjoint (it reads only the output's shape)
            grad = _spread(grad, output.narrow(0, 0, grad.shape[0]), self.pool)
        if self.target_on == "activation":
            grad = act.backward(grad, z, a)
        return HeadDelta(RowDelta(rows, grad) if sparse else grad, head_grad)


RULES[TPSGDLocalHead.name] = TPSGDLocalHead
