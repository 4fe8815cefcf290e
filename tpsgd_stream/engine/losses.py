"""The true loss of the output layer (the only layer that sees it)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

__all__ = ["LOSSES", "output_error", "output_delta", "output_loss"]

LOSSES = ("cross_entropy", "mse", "huber")


def output_error(logits: torch.Tensor, target: torch.Tensor, loss: str) -> torch.Tensor:
    """Per-sample output error ``e``: ``softmax(o) - y*`` for cross-entropy, else ``o - y``.

    DFA and sDFA project this error to the hidden layers.
    """
    if loss == "cross_entropy":
        return torch.softmax(logits, dim=1) - target
    return logits - target


def output_delta(logits: torch.Tensor, target: torch.Tensor, loss: str) -> torch.Tensor:
    """``dL/do`` of the true loss, averaged over the minibatch.

    ``"cross_entropy"`` (softmax over the outputs), ``"mse"`` (squared error summed over the
    outputs) or ``"huber"`` (delta 1, summed over the outputs).

    Examples
    --------
    >>> output_delta(torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0]]), "cross_entropy")
    tensor([[-0.5000,  0.5000]])
    """
    n = logits.shape[0]
    if loss == "cross_entropy":
        delta = torch.softmax(logits, dim=1) - target
        return delta if n == 1 else delta.div_(n)  # (one sample: nothing to average)
    if loss == "mse":
        return 2.0 * (logits - target) / n
    if loss == "huber":
        return torch.clamp(logits - target, -1.0, 1.0) / n
    raise ValueError(f"Unknown loss {loss!r}; expected one of {LOSSES}.")


def output_loss(logits: torch.Tensor, target: torch.Tensor, loss: str) -> torch.Tensor:
    """The loss whose gradient :func:`output_delta` returns (for monitoring and tests)."""
    if loss == "cross_entropy":
        return -(target * torch.log_softmax(logits, dim=1)).sum(1).mean()
    if loss == "mse":
        return ((logits - target) ** 2).sum(1).mean()
    if loss == "huber":
        return F.huber_loss(logits, target, reduction="sum", delta=1.0) / logits.shape[0]
    raise ValueError(f"Unknown loss {loss!r}; expected one of {LOSSES}.")
