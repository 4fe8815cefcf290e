r"""Rules that read a layer out as a classifier through a fixed random matrix ``P``.

``logits = h @ P^T`` for the layer's output ``h``; the layer learns the local cross-entropy of
these logits. ``P`` is fixed and random, as a target projection's, but it is used as a
readout, not as a target (after Mostafa et al. 2018, "Deep supervised learning using local
errors").

==========================  ===========================================================
rule                        ``delta`` for a hidden layer (``n`` = minibatch size)
==========================  ===========================================================
``fixed_readout_ce``        ``((softmax(h @ P^T) - y*) @ P) * sigma'(z) / n``
``fixed_readout_ce_ls``     the same with a label-smoothed target, gated per sample
==========================  ===========================================================

Old names: ``tpsgd_ce`` and ``tpsgd_ce_ls`` (still accepted, with a ``DeprecationWarning``).
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from .base import Backward, RowDelta, Rule, _flat, _unflat

__all__ = [
    "FixedReadoutCE",
    "FixedReadoutSmoothedCE",
    "projected_cross_entropy_delta",
    "smoothed_cross_entropy_delta",
]


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
    first axis: a softmax or sum over ``K`` entries is then one vectorised pass across the
    samples, much faster on CPU than over the last axis of ``(n, K)``.
    """
    n = features.shape[0]
    target_t = target.t()
    probs = torch.softmax(torch.mm(readout, features.t()), dim=0)
    keep = (probs * target_t).sum(0) < confident
    error = probs.sub_(target_t, alpha=1.0 - smoothing).sub_(smoothing / target_t.shape[0])
    error.mul_(keep * (1.0 / n))
    rows = keep.nonzero().view(-1)
    return error, rows, 2 * rows.shape[0] <= n


def _gather_rows(rows: torch.Tensor, z: torch.Tensor, a: torch.Tensor, act, target_on: str):
    """``rows`` of ``z``, and of ``a`` only where the activation's slope reads it
    (``sigma'(z)`` is applied to activation targets, and tanh's or sigmoid's reads ``a``);
    ``None`` in its place otherwise."""
    z = z.index_select(0, rows)
    if target_on == "activation" and act.reads_output:
        return z, a.index_select(0, rows)
    return z, None


def projected_cross_entropy_delta(
    *,
    output: torch.Tensor,
    target: torch.Tensor,
    projection: torch.Tensor,
    backward: Backward | None,
) -> torch.Tensor:
    """Local cross-entropy of the layer read out through its fixed matrix.

    ``logits = h @ P^T``; the loss is ``CE(logits, y)`` averaged over the minibatch, so
    ``delta = ((softmax(logits) - y*) @ P) * sigma'(z) / n``.
    """
    n = output.shape[0]
    flat_p = _flat(projection)
    error = torch.softmax(F.linear(_flat(output), flat_p), dim=1) - target  # h @ P^T
    grad = _unflat(torch.mm(error / n, flat_p), output)  # 1/n on the small (n, K) error
    return grad if backward is None else backward(grad)


def smoothed_cross_entropy_delta(
    *,
    output: torch.Tensor,
    target: torch.Tensor,
    projection: torch.Tensor,
    backward: Backward | None,
    smoothing: float,
    confident: float,
) -> torch.Tensor:
    """Local cross-entropy through the fixed matrix, label-smoothed and confidence-gated.

    ``logits = h @ P^T``, ``p = softmax(logits)``, ``t = (1 - eps) y* + eps / K`` (``K``
    classes); a sample whose ``p`` gives its own class at least ``confident`` is left out:
    ``delta = m * ((p - t) @ P) * sigma'(z) / n`` with ``m = [p . y* < confident]``.
    """
    n = output.shape[0]
    flat_p = _flat(projection)
    probs = torch.softmax(output.reshape(n, -1) @ flat_p.T, dim=1)
    error = probs - (target * (1.0 - smoothing) + smoothing / target.shape[1])
    keep = (probs * target).sum(1, keepdim=True) < confident
    grad = ((error * keep / n) @ flat_p).reshape(output.shape)
    return grad if backward is None else backward(grad)


class FixedReadoutCE(Rule):
    """Local cross-entropy of the layer read out through a fixed random matrix ``P``.

    The matrix's scale is a softmax temperature: each entry has standard deviation
    ``temperature / sqrt(n_units)`` by default (``temperature = 3.2``).

    Examples
    --------
    >>> import torch
    >>> from tpsgd_stream.engine.activations import get_activation
    >>> a = torch.tensor([[0.0, 0.0]])  # read out as 50/50: the error pushes towards class 0
    >>> FixedReadoutCE().delta(z=a, a=a, act=get_activation("identity"),
    ...                        target=torch.tensor([[1.0, 0.0]]), error=None,
    ...                        matrix=torch.eye(2))
    tensor([[-0.5000,  0.5000]])
    >>> round(FixedReadoutCE().default_scale(256), 3)
    0.2
    """

    name = "fixed_readout_ce"
    default_lr = 3e-3  # learned more than 1e-2 on 14x14 MNIST (BENCHMARKS.md, rule defaults)
    aliases = ("tpsgd_ce",)
    reads_classes = True
    temperature = 3.2

    def default_scale(self, n_units: int) -> float:
        return self.temperature / math.sqrt(n_units)

    def delta(self, *, z, a, act, target, error, matrix):
        output, backward = self._compared(z, a, act)
        return projected_cross_entropy_delta(
            output=output, target=target, projection=matrix, backward=backward
        )


class FixedReadoutSmoothedCE(FixedReadoutCE):
    r"""Local cross-entropy through a fixed random readout, label-smoothed and gated.

    ``delta = m * ((softmax(h @ P^T) - t) @ P) * sigma'(z) / n`` with the smoothed target
    ``t = (1 - eps) y* + eps / K`` and the gate ``m = [softmax(h @ P^T) . y* < c]``: the
    smoothed target asks for a finite margin, and the gate stops a sample's update once the
    layer's own fixed readout gives its class ``c``. ``eps = 0.1``, ``c = 0.9``; ``P``
    orthogonal with entries of standard deviation ``0.08`` whatever the width (see
    ``BENCHMARKS.md`` for the sweeps).

    Examples
    --------
    >>> import torch
    >>> rule = FixedReadoutSmoothedCE()
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

    name = "fixed_readout_ce_ls"
    aliases = ("tpsgd_ce_ls",)
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
