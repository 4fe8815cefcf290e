"""Adaptive average pooling of a convolution's map, 1-D or 2-D, and its adjoint.

A local head (``local_head`` with ``pool``) reads a convolution's map average-pooled to a few
positions per channel. The map is ``(n, channels, time steps)`` for a ``Conv1d`` and
``(n, channels, height, width)`` for a ``Conv2d``; these helpers pick the pooling by the map's
rank, so a rule never asks which kind of layer it trains.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from . import _ops

__all__ = ["adaptive_avg_pool", "adaptive_avg_pool_adjoint", "pooled_units"]


def adaptive_avg_pool(maps: torch.Tensor, size: int) -> torch.Tensor:
    """``maps`` average-pooled to ``size`` positions per spatial axis.

    ``(n, c, T) -> (n, c, size)``; ``(n, c, h, w) -> (n, c, size, size)``.

    Examples
    --------
    >>> import torch
    >>> adaptive_avg_pool(torch.arange(6.0).reshape(1, 1, 6), 2).tolist()
    [[[1.0, 4.0]]]
    """
    if maps.dim() == 3:
        return F.adaptive_avg_pool1d(maps, size)
    return F.adaptive_avg_pool2d(maps, size)


def adaptive_avg_pool_adjoint(grad: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """The adjoint of :func:`adaptive_avg_pool`: ``grad`` on the pooled map spread evenly over
    each window of ``maps`` (only its shape is read).

    Examples
    --------
    >>> import torch
    >>> adaptive_avg_pool_adjoint(torch.ones(1, 1, 2), torch.zeros(1, 1, 4)).tolist()
    [[[0.5, 0.5, 0.5, 0.5]]]
    """
    backward = _ops.adaptive_avg_pool2d_backward
    if maps.dim() == 3:  # as torch pools 1-D maps: a 2-D map of height one
        return backward(grad.unsqueeze(-2), maps.unsqueeze(-2)).squeeze(-2)
    return backward(grad, maps)


def pooled_units(out_shape: tuple[int, ...], size: int) -> int:
    """Values per sample of a ``(channels, *spatial)`` map pooled to ``size`` per axis.

    Examples
    --------
    >>> pooled_units((8, 40), 4), pooled_units((8, 12, 12), 4)
    (32, 128)
    """
    return out_shape[0] * size ** (len(out_shape) - 1)
