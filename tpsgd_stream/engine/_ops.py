"""Private torch kernels behind public fallbacks.

The engine's hot paths call a few kernels that torch does not promise to keep
(``torch._fused_adam_``, ``torch._foreach_add_``, ``torch.ops.aten.*_backward``): each is one
fused call where the public spelling takes several. They are looked up once, at import; where
the running torch lacks one, the function here computes the same result with public ops
(slower, never different beyond float rounding). ``tests/test_ops.py`` forces every fallback and
compares it with the fast path.

Examples
--------
>>> z = torch.tensor([-2.0, 0.0, 3.0])
>>> leaky_relu_backward(torch.ones(3), z, 0.1)
tensor([0.1000, 0.1000, 1.0000])
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn import functional as F

__all__ = [
    "adam_kernel",
    "adaptive_avg_pool2d_backward",
    "copy_all",
    "max_abs_all",
    "fused_adam",
    "increment",
    "leaky_relu_backward",
    "sigmoid_backward",
    "tanh_backward",
    "threshold_backward",
]


def _aten(name: str) -> Callable | None:
    """``torch.ops.aten.NAME``, or None where this torch has no such op."""
    try:
        return getattr(torch.ops.aten, name)
    except (AttributeError, RuntimeError):
        return None


_LEAKY_RELU_BACKWARD = _aten("leaky_relu_backward")
_THRESHOLD_BACKWARD = _aten("threshold_backward")
_TANH_BACKWARD = _aten("tanh_backward")
_SIGMOID_BACKWARD = _aten("sigmoid_backward")
_ADAPTIVE_AVG_POOL2D_BACKWARD = _aten("_adaptive_avg_pool2d_backward")
_FOREACH_ADD = getattr(torch, "_foreach_add_", None)
_FUSED_ADAM = getattr(torch, "_fused_adam_", None)
_FOREACH_COPY = getattr(torch, "_foreach_copy_", None)
_FOREACH_NORM = getattr(torch, "_foreach_norm", None)
_ONE = torch.tensor(1.0)  # the step increment of CPU step counters, wrapped once


def leaky_relu_backward(grad: torch.Tensor, z: torch.Tensor, slope: float) -> torch.Tensor:
    """``grad`` times the derivative of leaky ReLU at ``z`` (``slope`` where ``z <= 0``)."""
    if _LEAKY_RELU_BACKWARD is not None:
        return _LEAKY_RELU_BACKWARD(grad, z, slope, False)
    return torch.where(z > 0, grad, grad * slope)


def threshold_backward(grad: torch.Tensor, z: torch.Tensor, threshold: float) -> torch.Tensor:
    """``grad`` where ``z > threshold``, else 0 (ReLU's backward at ``threshold = 0``).

    Examples
    --------
    >>> threshold_backward(torch.ones(3), torch.tensor([-1.0, 0.0, 2.0]), 0.0)
    tensor([0., 0., 1.])
    """
    if _THRESHOLD_BACKWARD is not None:
        return _THRESHOLD_BACKWARD(grad, z, threshold)
    return grad.masked_fill(z <= threshold, 0.0)


def tanh_backward(grad: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``grad * (1 - a**2)``, the backward of ``a = tanh(z)``."""
    if _TANH_BACKWARD is not None:
        return _TANH_BACKWARD(grad, a)
    return grad * (1.0 - a * a)


def sigmoid_backward(grad: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``grad * (1 - a) * a``, the backward of ``a = sigmoid(z)``."""
    if _SIGMOID_BACKWARD is not None:
        return _SIGMOID_BACKWARD(grad, a)
    return grad * (1.0 - a) * a


def adaptive_avg_pool2d_backward(grad: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """``grad`` with respect to ``adaptive_avg_pool2d(inputs, grad.shape[-2:])``, spread back
    over ``inputs``' positions (the pool's adjoint).

    Examples
    --------
    >>> adaptive_avg_pool2d_backward(torch.ones(1, 1, 1, 1), torch.zeros(1, 1, 2, 2)).flatten()
    tensor([0.2500, 0.2500, 0.2500, 0.2500])
    """
    if _ADAPTIVE_AVG_POOL2D_BACKWARD is not None:
        return _ADAPTIVE_AVG_POOL2D_BACKWARD(grad, inputs)
    with torch.enable_grad():
        x = torch.zeros_like(inputs, requires_grad=True)
        (spread,) = torch.autograd.grad(F.adaptive_avg_pool2d(x, grad.shape[-2:]), x, grad)
    return spread


def increment(steps: list[torch.Tensor]) -> None:
    """Add 1 to each step counter in ``steps``, in place (one call where torch allows).

    Examples
    --------
    >>> counters = [torch.zeros(()), torch.ones(())]
    >>> increment(counters); [float(c) for c in counters]
    [1.0, 2.0]
    """
    if _FOREACH_ADD is None:
        for step in steps:
            step.add_(1)
    elif steps and steps[0].is_cpu:  # as torch.optim.Adam: wrap the 1 once, not per tensor
        _FOREACH_ADD(steps, _ONE, alpha=1.0)
    else:
        _FOREACH_ADD(steps, 1)


def copy_all(destinations: list[torch.Tensor], sources: list[torch.Tensor]) -> None:
    """Copy each of ``sources`` into the matching one of ``destinations``, in place (one call
    where torch allows).

    Examples
    --------
    >>> a, b = [torch.zeros(2), torch.zeros(1)], [torch.ones(2), torch.full((1,), 3.0)]
    >>> copy_all(a, b); [t.tolist() for t in a]
    [[1.0, 1.0], [3.0]]
    """
    if _FOREACH_COPY is None:
        for destination, source in zip(destinations, sources):
            destination.copy_(source)
    elif destinations:
        _FOREACH_COPY(destinations, sources)


def max_abs_all(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """The largest absolute value of each tensor (0-d tensors; one call where torch allows).

    Examples
    --------
    >>> [float(m) for m in max_abs_all([torch.tensor([-3.0, 1.0]), torch.tensor([2.0])])]
    [3.0, 2.0]
    """
    if _FOREACH_NORM is None:
        return [t.abs().max() if t.numel() else t.new_zeros(()) for t in tensors]
    return list(_FOREACH_NORM(tensors, float("inf")))


def adam_kernel(params, grads, avgs, avg_sqs, steps, lr, beta1, beta2, eps) -> None:
    """Plain Adam (no AMSGrad, weight decay or maximisation) in one call of torch's fused
    kernel on lists of parameters, gradients, moments and step counts, the counts already
    incremented; :func:`fused_adam` must not be None.

    Examples
    --------
    >>> p, g = torch.zeros(2), torch.ones(2)
    >>> m, v, t = torch.zeros(2), torch.zeros(2), torch.ones(())
    >>> adam_kernel([p], [g], [m], [v], [t], 0.1, 0.9, 0.999, 1e-8); p  # the first step: -lr
    tensor([-0.1000, -0.1000])
    """
    _FUSED_ADAM(
        params,
        grads,
        avgs,
        avg_sqs,
        [],
        steps,
        amsgrad=False,
        lr=lr,
        beta1=beta1,
        beta2=beta2,
        weight_decay=0.0,
        eps=eps,
        maximize=False,
    )


def fused_adam() -> Callable | None:
    """``torch._fused_adam_``, or None: then callers use ``torch.optim.Adam``'s public step."""
    return _FUSED_ADAM
