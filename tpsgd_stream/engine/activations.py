"""Element-wise activations with the derivative each local rule needs.

A local rule never back-propagates through the network, but it does multiply its error signal
by the activation's slope at the layer's own pre-activation ``z`` (the ``sigma'(z)`` of the
paper's Table 1). Each activation therefore carries its derivative in closed form.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from . import _ops

__all__ = ["Activation", "get_activation", "ACTIVATIONS"]


@dataclass(frozen=True)
class Activation:
    """A named element-wise function with its derivative.

    Parameters
    ----------
    name
        Registry name, e.g. ``"leaky_relu"``.
    forward
        ``a = forward(z)``.
    derivative
        ``sigma'(z)`` given ``z`` and ``a`` (whichever is cheaper to use).
    fused_backward
        ``grad * sigma'(z)`` given ``grad``, ``z`` and ``a`` (``None`` when not at hand).
    reads_output
        Whether ``fused_backward`` reads ``a``: a rule that keeps some rows of ``z`` need not
        gather the same rows of ``a`` for one that does not.

    Examples
    --------
    >>> import torch
    >>> act = get_activation("leaky_relu")
    >>> act.forward(torch.tensor([-1.0, 2.0]))
    tensor([-0.1000,  2.0000])
    >>> act.derivative(torch.tensor([-1.0, 2.0]), None)
    tensor([0.1000, 1.0000])
    >>> act.backward(torch.tensor([3.0, 3.0]), torch.tensor([-1.0, 2.0]))
    tensor([0.3000, 3.0000])
    """

    name: str
    forward: Callable[[torch.Tensor], torch.Tensor]
    derivative: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]
    fused_backward: Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]
    reads_output: bool = False

    def backward(
        self, grad: torch.Tensor, z: torch.Tensor, a: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``grad * sigma'(z)`` in one kernel (``a = sigma(z)``, if known, saves a pass)."""
        return self.fused_backward(grad, z, a)


LEAKY_SLOPE = 0.1


def _leaky_relu_derivative(z: torch.Tensor, a: torch.Tensor | None) -> torch.Tensor:
    # one fused kernel: 10-20x faster on CPU than torch.where with Python scalars
    return _ops.leaky_relu_backward(torch.ones_like(z), z, LEAKY_SLOPE)


def _relu_derivative(z: torch.Tensor, a: torch.Tensor | None) -> torch.Tensor:
    return _ops.threshold_backward(torch.ones_like(z), z, 0.0)


def _tanh_derivative(z: torch.Tensor, a: torch.Tensor | None) -> torch.Tensor:
    a = torch.tanh(z) if a is None else a
    return 1.0 - a * a


def _sigmoid_derivative(z: torch.Tensor, a: torch.Tensor | None) -> torch.Tensor:
    a = torch.sigmoid(z) if a is None else a
    return a * (1.0 - a)


def _tanh_backward(grad, z, a):
    return _ops.tanh_backward(grad, torch.tanh(z) if a is None else a)


def _sigmoid_backward(grad, z, a):
    return _ops.sigmoid_backward(grad, torch.sigmoid(z) if a is None else a)


ACTIVATIONS: dict[str, Activation] = {
    "leaky_relu": Activation(
        "leaky_relu",
        lambda z: F.leaky_relu(z, LEAKY_SLOPE),
        _leaky_relu_derivative,
        lambda grad, z, a: _ops.leaky_relu_backward(grad, z, LEAKY_SLOPE),
    ),
    "relu": Activation(
        "relu",
        F.relu,
        _relu_derivative,
        lambda grad, z, a: _ops.threshold_backward(grad, z, 0.0),
    ),
    "tanh": Activation("tanh", torch.tanh, _tanh_derivative, _tanh_backward, True),
    "sigmoid": Activation("sigmoid", torch.sigmoid, _sigmoid_derivative, _sigmoid_backward, True),
    "identity": Activation(
        "identity", lambda z: z, lambda z, a: torch.ones_like(z), lambda grad, z, a: grad
    ),
}


def get_activation(name: str) -> Activation:
    """Return the activation called ``name``; raise ``ValueError`` naming the choices."""
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}."
        ) from None
