r"""Gradient-free training of binary or ternary weights by flipping them.

After "Gradient-Free Neural Network Training on the Edge" (Di Castro et al., arXiv
2410.09734): a layer's weights take one of two values ``{-a, +a}`` (one bit) or three
``{-a, 0, +a}`` (two bits), with a fixed scale ``a = 1 / sqrt(fan_in)``; there is no
real-valued copy of them and no optimizer state. Each minibatch, every neuron ``j`` scores its
weights by how much they add to its error, ``c_ij = w_ij * sum_batch(delta_j x_i)`` (``delta``
from the layer's local target, as tpSGD-l2, or from the true loss at the output), and changes
the ``k`` weights with the largest positive score: a binary weight flips sign, a ternary weight
moves one level towards ``-sign(sum delta_j x_i)``. The biases stay at zero.
"""

from __future__ import annotations

import math

import torch

from ..seeding import derive_seed
from .base import Rule
from .target_projection import target_projection_delta

__all__ = ["BitFlip", "flip_update", "discretise"]


class BitFlip(Rule):
    """tpSGD-l2 error signals, applied as bit flips to binary or ternary weights.

    Parameters
    ----------
    levels
        2 (binary weights) or 3 (ternary).
    flip_rate
        Largest share of a neuron's weights changed per minibatch (at least one weight).

    Examples
    --------
    >>> import torch
    >>> from tpsgd_stream import Network
    >>> net = Network.mlp(4, (8,), 2, rule=BitFlip(), seed=0)
    >>> sorted(set((net.layers[0].weight * 2).round().flatten().tolist()))
    [-1.0, 1.0]
    """

    name = "bitflip"
    trains_output = True
    discrete = True
    default_activation = "tanh"

    def __init__(self, levels: int = 2, flip_rate: float = 0.01, **kwargs):
        super().__init__(**kwargs)
        if levels not in (2, 3):
            raise ValueError(f"levels must be 2 (binary) or 3 (ternary), got {levels!r}.")
        if not (isinstance(flip_rate, (int, float)) and 0 < flip_rate <= 1):
            raise ValueError(f"flip_rate must lie in (0, 1], got {flip_rate!r}.")
        self.levels, self.flip_rate = levels, float(flip_rate)

    def __hash__(self) -> int:
        return hash((type(self), self.levels, self.flip_rate, self.projection, self.scale))

    def prepare_layer(self, layer) -> None:
        """Weights onto the layer's levels, biases at zero."""
        with torch.no_grad():
            layer.weight.copy_(discretise(layer.weight, self.levels))
            layer.bias.zero_()

    def init_grown(self, layer, *, dim: int, start: int, seed: int) -> None:
        """New units (``dim=0``) or input columns (``dim=1``) get random levels, as at
        construction: a zero weight is no level of a binary layer and its flip score
        ``w * g`` is zero, so it could never learn. New columns change the fan-in, so the
        layer's levels move to the new ``1 / sqrt(fan_in)`` (signs kept)."""
        with torch.no_grad():
            weight = layer.weight
            scale = _scale(weight)
            for i in range(start, weight.shape[dim]):
                generator = torch.Generator().manual_seed(derive_seed(seed, dim, i))
                cut = weight.select(dim, i)
                raw = torch.randn(cut.shape, generator=generator).to(weight.device)
                cut.copy_(discretise(raw.reshape(1, -1), self.levels).reshape(cut.shape))
            weight.copy_(torch.sign(weight) * scale)

    def delta(self, *, z, a, act, target, error, matrix):
        """tpSGD-l2's ``delta``: ``2 (a - y* @ P) * sigma'(z) / n``."""
        output, backward = self._compared(z, a, act)
        return target_projection_delta(
            output=output, target=target, projection=matrix, backward=backward, norm="l2"
        )

    def apply(self, layer, optimizer) -> None:
        """Flip the weights that add most to the error (no optimizer); biases stay at zero."""
        flip_update(layer.weight.data, layer.weight.grad, self)


def _scale(weight: torch.Tensor) -> float:
    return 1.0 / math.sqrt(weight[0].numel())


def discretise(weight: torch.Tensor, levels: int) -> torch.Tensor:
    """Map real weights onto the layer's levels (signs; ternary zeroes the smallest third).

    Examples
    --------
    >>> (discretise(torch.tensor([[0.3, -0.1, 0.02, -0.5]]), 3) * 2).tolist()
    [[1.0, 0.0, 0.0, -1.0]]
    """
    scale = _scale(weight)
    if levels == 2:
        return torch.where(weight >= 0, scale, -scale)
    cut = weight.abs().quantile(1 / 3)
    return torch.where(weight.abs() <= cut, 0.0, torch.sign(weight) * scale)


def flip_update(weight: torch.Tensor, grad: torch.Tensor, rule: BitFlip) -> int:
    """Change, per neuron, the ``k`` weights that add most to its error; return how many.

    ``grad`` is ``sum_batch(delta x)`` shaped like ``weight`` (neurons first).
    """
    scale = _scale(weight)
    units = weight.reshape(weight.shape[0], -1)
    g = grad.reshape(units.shape)
    if rule.levels == 2:
        score = units * g  # > 0: flipping this weight's sign lowers the error
    else:  # moving one level against the gradient must stay within {-a, 0, +a}
        room = torch.where(g > 0, units > -scale / 2, units < scale / 2)
        score = torch.where(room, g.abs(), torch.zeros_like(g))
    k = max(1, int(rule.flip_rate * units.shape[1]))
    top, index = score.topk(k, dim=1)
    chosen = torch.zeros_like(units, dtype=torch.bool).scatter_(1, index, top > 0)
    if rule.levels == 2:
        units[chosen] = -units[chosen]
    else:
        step = -torch.sign(g) * scale
        units[chosen] = torch.round((units[chosen] + step[chosen]) / scale) * scale
    return int(chosen.sum())
