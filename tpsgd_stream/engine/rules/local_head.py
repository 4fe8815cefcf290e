"""A learned local classifier per layer (Noekland & Eidnes 2019): the ``local_head`` rule.

The rule keeps a learned head ``H`` per layer (its :class:`~.base.RuleState`'s ``param``),
trains it with the layer, and grows it a row per new class. Old name: ``tpsgd_head``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from ..pooling import adaptive_avg_pool, adaptive_avg_pool_adjoint, pooled_units
from .base import Backward, RowDelta, Rule, RuleState, _flat, _unflat
from .fixed_readout import _gated_error, _gather_rows

__all__ = ["LocalHead", "HeadDelta", "local_head_delta"]


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
    """What a local head reads: a conv map (1-D or 2-D) average-pooled to ``pool`` per axis."""
    return adaptive_avg_pool(output, pool) if output.dim() > 2 and pool else output


def _spread(grad: torch.Tensor, output: torch.Tensor, pool: int | None) -> torch.Tensor:
    """``grad`` with respect to the head's features -> with respect to ``output``."""
    if output.dim() > 2 and pool:  # the average pool's adjoint: spread evenly over windows
        return adaptive_avg_pool_adjoint(grad, output)
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

    ``f = pool(h)``, a convolution's map average-pooled to ``pool`` per axis and channel (``h``
    itself when ``pool`` is ``None`` or the layer is dense), ``p = softmax(f @ H^T)``,
    ``t = (1 - eps) y* + eps / K``, and the gate ``m = [p . y* < confident]`` leaves out the
    samples the head already gives their class with at least ``confident``. The loss
    ``sum(m * CE(p, t)) / n`` gives the head's gradient ``(m (p - t))^T f / n`` and
    ``dL/dh = pool^T((m (p - t)) @ H / n)``, times ``sigma'(z)`` when ``h`` is the activation.
    """
    n = output.shape[0]
    features = _head_features(output, pool)
    flat = features.reshape(n, -1)
    probs = torch.softmax(flat @ head.T, dim=1)
    keep = (probs * target).sum(1, keepdim=True) < confident
    error = (probs - (target * (1.0 - smoothing) + smoothing / target.shape[1])) * keep / n
    grad = _spread((error @ head).reshape(features.shape), output, pool)
    return HeadDelta(grad if backward is None else backward(grad), error.T @ flat)


class LocalHead(Rule):
    """Local cross-entropy of a learned linear head on the layer's output (not a projection).

    Each hidden layer has its own linear classifier ``H`` (``n_classes x units read``), trained
    jointly with the layer on the label-smoothed local cross-entropy, as in "Training neural
    networks with local error signals" (Noekland & Eidnes, ICML 2019). Gradients never cross
    layers. The target is smoothed (``eps = 0.1``) and a sample stops updating the layer and
    its head once the head gives its class ``confident = 0.9``; the weight gradients are then
    formed from the learning rows alone. ``H`` starts as the rule's random projection
    (orthogonal rows, entries of standard deviation ``scale``, 0.08 by default), is saved with
    the network (``Network.heads``) and grows a row per new class, generated as a projection
    row, the old rows kept. The most accurate backprop-free rule here (see ``BENCHMARKS.md``).

    Parameters
    ----------
    pool
        ``None``: the head reads the whole output. An int: a convolution's head reads its map
        average-pooled to ``pool x pool`` per channel, a Conv1d's to ``pool`` steps (less
        memory, less accuracy).
    projection, scale, target_on
        As :class:`Rule`; ``projection`` and ``scale`` give the head's initial value.

    Examples
    --------
    >>> import torch
    >>> from tpsgd_stream.engine.activations import get_activation
    >>> rule = LocalHead(pool=1)
    >>> a = torch.ones(1, 2, 3, 3)  # two channels, pooled to one value each
    >>> out = rule.delta(z=a, a=a, act=get_activation("identity"), target=torch.eye(2)[:1],
    ...                  error=None, matrix=torch.zeros(2, 2))
    >>> out.head_grad  # (p - t)^T pool(a): p = [0.5, 0.5], t = [0.95, 0.05]
    tensor([[-0.4500, -0.4500],
            [ 0.4500,  0.4500]])
    >>> out.delta.abs().sum()  # a zero head sends nothing back to the layer
    tensor(0.)
    """

    name = "local_head"
    aliases = ("tpsgd_head",)
    reads_classes = True
    trains_cells = False
    learns_head = True
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
        if len(out_shape) > 1 and self.pool is not None:
            return pooled_units(out_shape, self.pool)
        return math.prod(out_shape)

    # ----------------------------------------------------------------------- layer state
    def _head_rows(self, state: RuleState, units: int, first: int, stop: int, device):
        """Rows ``first:stop`` of the initial head: the rule's projection rows."""
        projection = self.make_projection(units, seed=state.seed, stream=state.stream)
        return projection.rows(first, stop, (units,), device=device)  # cost flat in ``first``

    def init_state(self, units, n_classes, *, seed, stream, device) -> RuleState:
        state = RuleState(seed=seed, stream=stream)
        rows = self._head_rows(state, self.head_units(tuple(units)), 0, n_classes, device)
        state.param = nn.Parameter(rows)
        return state

    def restore_state(self, value, *, seed, stream, device) -> RuleState:
        return RuleState(seed=seed, stream=stream, param=nn.Parameter(torch.zeros_like(value)))

    def grow(self, state: RuleState, n_new: int, *, device) -> None:
        """A new row per class, generated as a projection row; the old rows kept."""
        head = state.param
        rows = self._head_rows(state, head.shape[1], len(head), len(head) + n_new, device)
        with torch.no_grad():
            head.data = torch.cat([head.data, rows])

    def matrix(self, state, n_classes, units, *, device) -> torch.Tensor:
        return state.param

    # --------------------------------------------------------------------------- update
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

    def layer_delta(self, out: HeadDelta, state: RuleState, *, train: bool):
        """The layer's part of ``out``; the head's gradient goes to the head when ``train``."""
        if train:
            state.param.grad = out.head_grad
        return out.delta
