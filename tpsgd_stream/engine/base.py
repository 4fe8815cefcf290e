"""What :class:`~tpsgd_stream.engine.network.Network` and
:class:`~tpsgd_stream.engine.recurrent.RecurrentNetwork` share: their loss, learning rate, seed
and device, one optimizer per trained module, and the checks and casting of a minibatch."""

from __future__ import annotations

import math
import numbers

import torch
from torch import nn

from .losses import LOSSES
from .optim import make_optimizer

__all__ = ["BaseNetwork", "resolve_device"]


def resolve_device(device: str | torch.device) -> torch.device:
    """``"cuda"`` -> ``cuda:0``: a concrete device, with a clear error when it is missing."""
    try:
        return torch.empty(0, device=device).device
    except (RuntimeError, AssertionError) as err:
        raise ValueError(f"Device {device!r} is not available here: {err}") from None


def _check_finite(x: torch.Tensor, name: str) -> None:
    """A ``ValueError`` if ``x`` has a NaN or an infinity (one sum; a sum that overflows on
    finite values is looked at element by element)."""
    if not torch.isfinite(x.sum()) and not torch.isfinite(x).all():
        raise ValueError(f"{name} has NaN or infinite values; the network was not updated.")


class BaseNetwork(nn.Module):
    """A network trained module by module, each with its own optimizer.

    Subclasses call :meth:`_setup` first in ``__init__``, make their optimizers with
    :meth:`_optimizer`, and check a minibatch with :meth:`_as_batch` and :meth:`_check_target`;
    they define ``n_outputs``.

    Examples
    --------
    >>> from tpsgd_stream.engine.network import Network
    >>> from tpsgd_stream.engine.recurrent import RecurrentNetwork
    >>> issubclass(Network, BaseNetwork), issubclass(RecurrentNetwork, BaseNetwork)
    (True, True)
    """

    n_outputs: int

    def _setup(
        self, *, loss: str, optimizer: str, lr: float, seed: int, device: str | torch.device
    ) -> None:
        """Check and keep the loss, optimizer, learning rate, seed and device."""
        if loss not in LOSSES:
            raise ValueError(f"Unknown loss {loss!r}; expected one of {LOSSES}.")
        if isinstance(lr, bool) or not (isinstance(lr, numbers.Real) and 0 < lr < math.inf):
            raise ValueError(f"lr must be a positive finite number, got {lr!r}.")
        if isinstance(seed, bool) or not (isinstance(seed, numbers.Integral) and seed >= 0):
            raise ValueError(f"seed must be a non-negative int, got {seed!r}.")
        self.loss, self.optimizer_name, self.lr = loss, optimizer, float(lr)
        self.seed = int(seed)
        self.device = resolve_device(device)

    def _optimizer(self, module: nn.Module) -> torch.optim.Optimizer:
        """A new optimizer over ``module``'s parameters (one per trained module)."""
        return make_optimizer(self.optimizer_name, module.parameters(), lr=self.lr)

    def one_hot(self, y: torch.Tensor) -> torch.Tensor:
        """Integer labels -> float one-hot targets of width ``n_outputs``."""
        return nn.functional.one_hot(y.to(self.device).long(), self.n_outputs).float()

    @property
    def _dtype(self) -> torch.dtype:
        return torch.float32

    def _as_batch(self, x, name: str) -> torch.Tensor:
        """``x`` on the network's device and in its dtype, after a clear error for what is not
        a non-empty tensor of real numbers."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a real torch.Tensor, got {type(x).__name__}.")
        if x.dtype.is_complex:
            raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}.")
        if x.dim() == 0 or x.shape[0] == 0:
            raise ValueError(f"{name} must be a non-empty minibatch, got shape {tuple(x.shape)}.")
        return x.to(self.device, self._dtype)

    def _check_target(self, x: torch.Tensor, target: torch.Tensor, check_finite: bool) -> None:
        """NaN or infinite values in ``x`` or ``target`` (with ``check_finite``), and a target
        that is not ``(n, n_outputs)``: a ``ValueError``."""
        if check_finite:
            _check_finite(x, "x")
            _check_finite(target, "target")
        n_outputs = self.n_outputs
        if target.shape != (x.shape[0], n_outputs):
            raise ValueError(
                f"target must have shape (n, n_outputs) = ({x.shape[0]}, {n_outputs}), "
                f"got {tuple(target.shape)}."
            )
