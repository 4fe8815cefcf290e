"""Per-layer optimizers, and keeping their state when a layer grows."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from . import _ops

__all__ = [
    "OPTIMIZERS",
    "LayerAdam",
    "adam_state",
    "flush_subnormal",
    "make_optimizer",
    "pad_optimizer_state",
]

OPTIMIZERS = ("adam", "sgd")
_TINY = torch.finfo(torch.float32).tiny  # the smallest normal float32
FLUSH_EVERY = 64  # fast steps between flushes of subnormal moments


class LayerAdam(torch.optim.Adam):
    """``torch.optim.Adam(fused=True)`` with a lean ``step`` for the few tensors of one layer.

    A network steps one small optimizer per layer per minibatch, where ``Optimizer.step``'s per-call
    machinery (hooks, grouping by device) costs several times the fused kernel itself on CPU.
    This ``step`` calls the same fused kernel on the same state, so results, ``state_dict`` and
    pickles are those of ``torch.optim.Adam(fused=True)``; it falls back to the parent's
    ``step`` where the kernel is missing or a feature it does not handle (AMSGrad, weight decay,
    a closure) is asked for.

    Every 64 steps, moments below the smallest normal float32 (~1.2e-38) are set to 0, as a
    processor's flush-to-zero mode would: the first moment of a weight whose gradient stays 0
    (the weights of a feature that is always 0, e.g. a blank pixel after scaling) decays by 0.9
    a step into subnormal floats within ~800 steps, and the fused kernel runs several times
    slower on such state. The moments flushed are at most 1e-38, so the weights move by at most
    lr * 1e-30 less.

    Examples
    --------
    >>> p = torch.nn.Parameter(torch.ones(3)); q = torch.nn.Parameter(torch.ones(3))
    >>> ours, theirs = LayerAdam([p], lr=0.1), torch.optim.Adam([q], lr=0.1, fused=True)
    >>> for _ in range(3):
    ...     p.grad, q.grad = torch.arange(3.0), torch.arange(3.0)
    ...     ours.step(); theirs.step()
    >>> torch.equal(p, q)
    True
    """

    _fast_steps = 0  # (a class default: pickles made before the counter load as well)

    def __init__(self, params: Iterable[nn.Parameter], lr: float = 1e-3):
        # (torch.optim.Adam(fused=True) needs the private kernel too: without it, the public
        # foreach or per-tensor step, same maths)
        super().__init__(params, lr=lr, fused=_ops.fused_adam() is not None)

    def step(self, closure=None):
        if closure is not None or not self.fast_step():
            return super().step(closure)
        return None

    def fast_step(self) -> bool:
        """One fused Adam step; ``False`` (and nothing done) where only ``step`` can do it.

        Networks call this directly: it also skips the profiling and hook wrapper that
        ``torch.optim.Optimizer`` puts around ``step`` (tens of microseconds per call).
        """
        if torch.is_grad_enabled():  # Network.train_step already runs without it
            with torch.no_grad():
                return self.fast_step()
        fused = _ops.fused_adam()
        groups = self.param_groups
        if fused is None or any(
            g["amsgrad"] or g["weight_decay"] or g["maximize"] or g["differentiable"]
            for g in groups
        ):
            return False
        # one kernel call for all groups that share their hyperparameters (a local_head layer
        # has its weights in one group and its head in another)
        batches: dict[tuple, tuple[list, ...]] = {}
        for group in groups:
            key = (group["lr"], *group["betas"], group["eps"])
            self._gather(group, batches.setdefault(key, ([], [], [], [], [])))
        for (lr, beta1, beta2, eps), (params, grads, avgs, avg_sqs, steps) in batches.items():
            if not params:
                continue
            _ops.increment(steps)
            _ops.adam_kernel(params, grads, avgs, avg_sqs, steps, lr, beta1, beta2, eps)
            if self._fast_steps % FLUSH_EVERY == FLUSH_EVERY - 1:
                flush_subnormal([*avgs, *avg_sqs])
        self._fast_steps += 1
        return True

    def _gather(self, group: dict, into: tuple[list, ...]) -> None:
        """Append ``group``'s parameters with gradients, and their state, to the five lists."""
        params, grads, exp_avgs, exp_avg_sqs, steps = into
        for p in group["params"]:
            if p.grad is None:
                continue
            state = adam_state(self, p)
            params.append(p)
            grads.append(p.grad)
            exp_avgs.append(state["exp_avg"])
            exp_avg_sqs.append(state["exp_avg_sq"])
            steps.append(state["step"])


def flush_subnormal(tensors: list[torch.Tensor]) -> None:
    """Set the entries of float32 ``tensors`` smaller in magnitude than the smallest normal
    float32 to 0, in place.

    Examples
    --------
    >>> t = torch.tensor([1e-39, -1e-40, 1e-30, 0.5])
    >>> flush_subnormal([t]); t
    tensor([0.0000e+00, 0.0000e+00, 1.0000e-30, 5.0000e-01])
    """
    for tensor in tensors:
        tensor.masked_fill_(tensor.abs() < _TINY, 0.0)


def make_optimizer(
    name: str, params: Iterable[nn.Parameter], *, lr: float
) -> torch.optim.Optimizer:
    """``"adam"`` (default betas, fused kernel) or ``"sgd"`` (plain) over ``params``.

    Examples
    --------
    >>> make_optimizer("sgd", [torch.nn.Parameter(torch.zeros(2))], lr=0.1).defaults["lr"]
    0.1
    """
    if name == "adam":
        return LayerAdam(params, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    raise ValueError(f"Unknown optimizer {name!r}; expected one of {OPTIMIZERS}.")


def pad_optimizer_state(optimizer: torch.optim.Optimizer, param: nn.Parameter) -> None:
    """Zero-pad ``param``'s per-element state (Adam moments) after ``param`` grew.

    The new entries start as if never updated; the old entries keep their history. Other
    state (a tensor of another dtype, such as a least-squares readout's float64 inverse
    Gram matrix, which grows its own way) is left alone.
    """
    for key, value in optimizer.state.get(param, {}).items():
        if (
            torch.is_tensor(value)
            and value.dtype == param.dtype
            and value.dim() == param.dim()
            and value.shape != param.shape
        ):
            grown = value.new_zeros(param.shape)
            grown[tuple(slice(0, s) for s in value.shape)] = value
            optimizer.state[param][key] = grown


def adam_state(optimizer: torch.optim.Optimizer, param: nn.Parameter) -> dict:
    """``param``'s Adam state, its step count and moments made as ``torch.optim.Adam``
    makes them on a first step where they are missing.

    Examples
    --------
    >>> p = torch.nn.Parameter(torch.ones(2))
    >>> sorted(adam_state(LayerAdam([p]), p))
    ['exp_avg', 'exp_avg_sq', 'step']
    """
    state = optimizer.state[param]
    if "step" not in state:  # (a least-squares readout may have put its own state there)
        state["step"] = torch.zeros((), dtype=torch.float32, device=param.device)
        state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
    return state
