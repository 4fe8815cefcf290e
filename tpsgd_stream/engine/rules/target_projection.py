r"""Target projection: each hidden layer learns towards a fixed random projection of the label.

A hidden layer's target is ``y* @ P``, with ``P`` a fixed random matrix (one row per class,
regenerated from the seed); its local loss compares the layer's output ``h`` (the activation
``a``, or the pre-activation ``z`` with ``target_on="preactivation"``) with that target.

==============  =====================================================================
rule            ``delta`` for a hidden layer (``n`` = minibatch size)
==============  =====================================================================
``tpsgd_l1``    ``sign(a - y* @ P) * sigma'(z) / n``, gradient of ``|a - y* P|_1``
``tpsgd_l2``    ``2 (a - y* @ P) * sigma'(z) / n``, gradient of ``||a - y* P||^2``
``local_loss``  gradient of any differentiable ``loss(a, y* @ P)`` (local autograd)
==============  =====================================================================

``tpsgd_l2_gated`` (the default rule of every entry point) is ``tpsgd_l2`` with a per-sample
gate: a sample stops updating a layer once the layer's output is nearer its own class's
target ``P_y`` than every other class's target, by a margin (squared distances
``||h - P_y||^2 <= margin * min_k!=y ||h - P_k||^2``). Learned samples then stop pulling the
layer's features towards the ten class targets, and the layer's weight gradient is formed
from the rows still learning.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable

import numpy as np
import torch

from .base import Backward, RowDelta, Rule, _flat, _project, _unflat

__all__ = [
    "TPSGDL1",
    "TPSGDL2",
    "GatedTargetProjection",
    "LocalLoss",
    "target_projection_delta",
    "learning_rows",
]


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


class TPSGDL1(Rule):
    """tpSGD with an l1 local loss ``|a - y* P|_1``, ``P`` binary near-orthogonal.

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
    """tpSGD with an l2 local loss ``||a - y* P||^2``, ``P ~ N(0, 1)``.

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


def learning_rows(
    output: torch.Tensor, target: torch.Tensor, projection: torch.Tensor, margin: float
) -> torch.Tensor:
    """Whether each sample still learns: its output is not yet nearer its own class's target
    than ``margin`` times its squared distance to the nearest other class's target.

    Rows of ``target`` that are not one-hot labels (regression targets), and every row when
    there is a single output, always learn.

    Examples
    --------
    >>> P = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> h = torch.tensor([[1.0, 0.1], [0.5, 0.5]])  # near class 0; halfway
    >>> learning_rows(h, torch.eye(2)[[0, 0]], P, margin=0.5).tolist()
    [False, True]
    """
    keep = _learning(output, target, projection, margin)
    return torch.from_numpy(keep) if isinstance(keep, np.ndarray) else keep


def _learning(
    output: torch.Tensor, target: torch.Tensor, projection: torch.Tensor, margin: float
) -> torch.Tensor | np.ndarray:
    """:func:`learning_rows`, as a numpy array for CPU tensors.

    The two matrix products and the norms run in torch; the gate itself, a dozen element-wise
    ops on ``(n, classes)``, runs on numpy views of them there: the same float32 arithmetic
    (element-wise, and maxima and one-hot sums, which no order of summation changes), at a
    microsecond an op where a torch op costs several (a step of one sample makes a dozen).
    """
    if target.shape[1] < 2:
        return torch.ones(target.shape[0], dtype=torch.bool, device=target.device)
    flat = _flat(output)
    # ||h - P_k||^2 = ||h||^2 - score_k, score_k = 2 h . P_k - ||P_k||^2
    score = torch.mm(flat, projection.t()).mul_(2.0).sub_(_squared_norms(projection))
    norm = flat.square().sum(1)
    if score.is_cpu and not (score.requires_grad or target.requires_grad):
        return _gate(score.numpy(), norm.numpy(), target.numpy(), margin)
    return _gate(score, norm, target, margin)


def _gate(score, norm, target, margin: float):
    """Rows whose own distance ``norm - score_y`` exceeds ``margin`` times the nearest other
    class's, or whose target is not a label (one nonzero entry, summing to 1: that entry is 1);
    on torch tensors or numpy arrays alike."""
    if isinstance(score, np.ndarray):
        own = norm - (score * target).sum(1)
        other = norm - np.where(target > 0, -np.inf, score).max(1)
        label = ((target != 0).sum(1) == 1) & (target.sum(1) == 1)
    else:
        own = norm - (score * target).sum(1)
        other = norm - score.masked_fill_(target > 0, -math.inf).amax(1)
        label = (target.count_nonzero(1) == 1) & (target.sum(1) == 1)
    return (own > margin * other) | ~label


# id(projection) -> (a weak reference to it, its version, its rows' squared norms): a fixed
# matrix is reused every step (tensors compare by value, so they cannot key a WeakKeyDictionary)
_NORMS: dict[int, tuple[weakref.ref, int, torch.Tensor]] = {}
_NORMS_KEPT = 64


def _squared_norms(projection: torch.Tensor) -> torch.Tensor:
    """``||P_k||^2`` of each row of the 2-d ``projection``, kept while it is unchanged."""
    kept = _NORMS.get(id(projection))
    if kept is None or kept[0]() is not projection or kept[1] != projection._version:
        if len(_NORMS) >= _NORMS_KEPT:
            _NORMS.clear()
        kept = (weakref.ref(projection), projection._version, projection.square().sum(1))
        _NORMS[id(projection)] = kept
    return kept[2]


class GatedTargetProjection(Rule):
    """tpSGD-l2 towards ``y* P``, each sample stopped once its output is nearest its own
    class's target by a margin.

    ``delta = m * 2 (h - y* @ P) * sigma'(z) / n`` with the gate ``m`` of
    :func:`learning_rows`: ``m = 0`` once ``||h - P_y||^2 <= margin * ||h - P_k||^2`` for every
    other class ``k``. ``P ~ N(0, scale^2)`` as ``tpsgd_l2``'s. Regression targets are never
    gated (the rule is then ``tpsgd_l2``). When at most half of the samples still learn, the
    ``delta`` is a :class:`RowDelta` of their rows.

    Parameters
    ----------
    margin
        In ``(0, 1]``: ``1`` stops a sample as soon as its nearest target is its own; smaller
        values ask for a clearer lead.
    projection, scale, target_on
        As :class:`Rule`.

    Examples
    --------
    >>> import torch
    >>> from tpsgd_stream.engine.activations import get_activation
    >>> P = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> h = torch.tensor([[1.0, 0.1], [0.5, 0.5]])  # sample 0 is at its class's target
    >>> GatedTargetProjection(margin=0.5).delta(
    ...     z=h, a=h, act=get_activation("identity"), target=torch.eye(2)[[0, 0]], error=None,
    ...     matrix=P)
    RowDelta(rows=tensor([1]), values=tensor([[-0.5000,  0.5000]]))
    """

    name = "tpsgd_l2_gated"
    # chosen on short streams (benchmarks/short_streams.py): at 1 a two-class hidden layer
    # collapses (Bananas 0.663 vs 0.783); on 14x14 MNIST 1 would score 0.876 vs 0.825
    default_hidden_lr_scale = 0.1

    def __init__(
        self,
        *,
        margin: float = 0.8,
        projection: str | None = None,
        scale: float | None = None,
        target_on: str = "activation",
    ):
        super().__init__(projection=projection, scale=scale, target_on=target_on)
        if not (isinstance(margin, (int, float)) and 0 < margin <= 1):
            raise ValueError(f"margin must lie in (0, 1], got {margin!r}.")
        self.margin = float(margin)

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, margin={self.margin!r})"

    def __hash__(self) -> int:
        return hash((super().__hash__(), self.margin))

    def delta(self, *, z, a, act, target, error, matrix):
        output = a if self.target_on == "activation" else z
        flat_p = _flat(matrix)
        n = output.shape[0]
        keep = _learning(output, target, flat_p, self.margin)
        if isinstance(keep, np.ndarray):
            rows = torch.from_numpy(np.flatnonzero(keep))
        else:
            rows = keep.nonzero().view(-1)
        n_rows = rows.shape[0]
        sparse = 2 * n_rows <= n  # most samples learned: only the others' rows
        if n_rows == 0:  # (no row learns: nothing to compute)
            return RowDelta(rows, z.new_empty((0, *z.shape[1:])))
        if n_rows == n:  # every row learns: the gate is 1 everywhere
            scale = 2.0 / n
        elif sparse:
            output, target = output.index_select(0, rows), target.index_select(0, rows)
            z, a = z.index_select(0, rows), a.index_select(0, rows)
            scale = 2.0 / n
        else:
            scale = torch.as_tensor(keep).unsqueeze(1) * (2.0 / n)
        grad = _unflat((_flat(output) - torch.mm(target, flat_p)).mul_(scale), output)
        if self.target_on == "activation":
            grad = act.backward(grad, z, a)
        return RowDelta(rows, grad) if sparse else grad


class LocalLoss(Rule, register=False):
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
