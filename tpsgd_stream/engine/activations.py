"""Element-wise activations with the derivative each local rule needs.

A local rule never back-propagates through the network, but it does multiply its error signal
by the activation's slope at the layer's own pre-activation ``z`` (the ``sigma'(z)`` of the
paper's Table 1). Each activation therefore carries its derivative in closed form, and the
in-place numpy function that the estimators' float64 prediction runs (see
:mod:`tpsgd_stream.engine.inference`), so that both passes come from one definition.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
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
    numpy
        The same function on a float numpy array, in place (``z`` is overwritten and
        returned): the estimators' prediction runs it on arrays it owns. ``None``: prediction
        runs ``forward`` on the array through torch instead.

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
    >>> act.numpy(np.array([-1.0, 2.0]))
    array([-0.1,  2. ])
    """

    name: str
    forward: Callable[[torch.Tensor], torch.Tensor]
    derivative: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]
    fused_backward: Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]
    reads_output: bool = False
    numpy: Callable[[np.ndarray], np.ndarray] | None = None

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


# In-place numpy versions (the prediction pass owns every array it applies them to).
def _leaky_relu_numpy(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, LEAKY_SLOPE * z, out=z)


def _relu_numpy(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0.0, out=z)


def _tanh_numpy(z: np.ndarray) -> np.ndarray:
    return np.tanh(z, out=z)


def _sigmoid_numpy(z: np.ndarray) -> np.ndarray:
    # exp(-log(1 + exp(-z))): no overflow for large |z|
    np.negative(z, out=z)
    np.logaddexp(0.0, z, out=z)
    np.negative(z, out=z)
    return np.exp(z, out=z)


def _identity_numpy(z: np.ndarray) -> np.ndarray:
    return z


ACTIVATIONS: dict[str, Activation] = {
    "leaky_relu": Activation(
        "leaky_relu",
        lambda z: F.leaky_relu(z, LEAKY_SLOPE),
        _leaky_relu_derivative,
        lambda grad, z, a: _ops.leaky_relu_backward(grad, z, LEAKY_SLOPE),
        numpy=_leaky_relu_numpy,
    ),
    "relu": Activation(
        "relu",
        F.relu,
        _relu_derivative,
        lambda grad, z, a: _ops.threshold_backward(grad, z, 0.0),
        numpy=_relu_numpy,
    ),
    "tanh": Activation(
        "tanh", torch.tanh, _tanh_derivative, _tanh_backward, True, numpy=_tanh_numpy
    ),
    "sigmoid": Activation(
        "sigmoid", torch.sigmoid, _sigmoid_derivative, _sigmoid_backward, True, _sigmoid_numpy
    ),
    "identity": Activation(
        "identity",
        lambda z: z,
        lambda z, a: torch.ones_like(z),
        lambda grad, z, a: grad,
        numpy=_identity_numpy,
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
