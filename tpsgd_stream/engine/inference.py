"""The float64 prediction pass of the estimators: one forward pass over a copy of the weights.

:meth:`Network.forward <tpsgd_stream.engine.network.Network.forward>` runs in float32 on the
training device. The estimators predict from :class:`Float64Forward`, a float64 copy of the
layers, refreshed in place after each update (:meth:`Float64Forward.refresh`): dense layers
and activations run in numpy (for one row that is several times faster than a torch call),
convolutions and pooling through torch's float64 kernels on the same memory. Each
activation's numpy function comes with its torch definition (:attr:`Activation.numpy
<tpsgd_stream.engine.activations.Activation.numpy>`), so both passes compute the same
function; float64 makes one row and a frame of rows agree to 1e-12.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .activations import Activation
from .layers import Conv2d, Dense

__all__ = ["Float64Forward"]

_Step = tuple[np.ndarray | None, np.ndarray | None, Callable | None, Callable]


def _numpy_activation(act: Activation) -> Callable[[np.ndarray], np.ndarray] | None:
    """``act`` on a float64 array: its own numpy function, else its torch one; ``None`` for
    the identity (nothing to run)."""
    if act.name == "identity":
        return None
    if act.numpy is not None:
        return act.numpy
    return lambda z: act.forward(torch.from_numpy(z)).numpy()


def _float64(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().to("cpu", torch.float64)


class _Conv:
    """A ``Conv2d`` on float64 arrays, over a float64 copy of its weights."""

    def __init__(self, layer: Conv2d):
        self.layer = layer
        self.weight, self.bias = _float64(layer.weight), _float64(layer.bias)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        layer = self.layer
        z = F.conv2d(torch.from_numpy(x), self.weight, self.bias, layer.stride, layer.padding)
        return z.numpy()

    def refresh(self) -> bool:
        """Copy the layer's weights again, in place; ``False`` if their shapes changed."""
        weight, bias = self.layer.weight, self.layer.bias
        if weight.shape != self.weight.shape or bias.shape != self.bias.shape:
            return False
        self.weight.copy_(weight.detach())
        self.bias.copy_(bias.detach())
        return True


def _transform(layer: nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    return lambda x: layer(torch.from_numpy(x)).numpy()


def _step(layer: nn.Module) -> _Step:
    """``(weight, bias, op, activation)``: a dense layer's transposed weight and bias (``op``
    ``None``), or the ``op`` of any other layer; the activation of a trainable layer."""
    if isinstance(layer, Dense):
        weight = np.ascontiguousarray(_float64(layer.weight).numpy().T)
        return weight, _float64(layer.bias).numpy(), None, _numpy_activation(layer.act)
    if isinstance(layer, Conv2d):
        return None, None, _Conv(layer), _numpy_activation(layer.act)
    return None, None, _transform(layer), None  # pooling, flatten: no parameters


def _copy_into(array: np.ndarray, param: torch.Tensor, *, transpose: bool) -> bool:
    """Copy the float32 ``param`` (transposed) into the float64 ``array``; ``False`` when
    their shapes differ."""
    values = param.detach().cpu().numpy()
    if transpose:
        values = values.T
    if values.shape != array.shape:
        return False
    np.copyto(array, values)
    return True


class Float64Forward:
    """A float64 snapshot of ``layers`` that maps float64 numpy rows to their outputs.

    Parameters
    ----------
    layers
        The network's layers (``Network.layers``); their weights are copied now, so a later
        update needs a new snapshot.
    input_shape
        The shape of one sample as the first layer takes it, such as ``(1, 8, 8)`` for a
        convolution; ``None`` (a dense first layer): rows as they are.

    Examples
    --------
    >>> import torch
    >>> from tpsgd_stream.engine.network import Network
    >>> net = Network.mlp(3, (4,), 2, activation="tanh", seed=0)
    >>> forward = Float64Forward(net.layers)
    >>> rows = np.array([[0.5, -1.0, 2.0], [0.0, 1.0, 0.0]])
    >>> out = forward(rows)
    >>> out.dtype, out.shape, forward(rows[0]).shape
    (dtype('float64'), (2, 2), (2,))
    >>> expected = net.forward(torch.tensor(rows, dtype=torch.float32)).numpy()
    >>> bool(np.allclose(out, expected, atol=1e-6))
    True
    """

    def __init__(self, layers: Sequence[nn.Module], input_shape: Sequence[int] | None = None):
        self.input_shape = None if input_shape is None else tuple(int(s) for s in input_shape)
        self._layers = list(layers)
        self._steps = [_step(layer) for layer in self._layers]

    def refresh(self, layers: Sequence[nn.Module]) -> bool:
        """Copy the weights of ``layers`` again, into the arrays already made (a few times
        cheaper than a new snapshot, after each small update); ``False``, and the snapshot
        left unusable, when ``layers`` are not the layers it was made from or their shapes
        changed (a new class or feature): make a new one then.

        Examples
        --------
        >>> import torch
        >>> from tpsgd_stream.engine.network import Network
        >>> net = Network.mlp(3, (4,), 2, seed=0)
        >>> forward = Float64Forward(net.layers)
        >>> with torch.no_grad():
        ...     _ = net.layers[-1].bias.add_(1.0)
        >>> forward.refresh(net.layers), bool(np.allclose(forward(np.ones(3)),
        ...     net.forward(torch.ones(1, 3))[0].numpy(), atol=1e-6))
        (True, True)
        >>> net.grow_outputs(1)
        >>> forward.refresh(net.layers)
        False
        """
        if len(layers) != len(self._layers) or any(map(operator.is_not, layers, self._layers)):
            return False
        for layer, (weight, bias, op, _) in zip(layers, self._steps):
            if weight is not None:
                if not (
                    _copy_into(weight, layer.weight, transpose=True)
                    and _copy_into(bias, layer.bias, transpose=False)
                ):
                    return False
            elif isinstance(op, _Conv) and not op.refresh():
                return False
        return True

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        """The outputs of float64 ``rows``: ``(n_inputs,)`` gives ``(n_outputs,)``, and
        ``(n, n_inputs)`` gives ``(n, n_outputs)``. ``rows`` is not modified."""
        shape = self.input_shape
        if rows.ndim == 2 and not len(rows):  # (no rows: a conv map cannot be reshaped)
            return np.zeros((0, self._steps[-1][0].shape[1]))
        x = rows if shape is None else rows.reshape(-1, *shape)
        # (no inference_mode: float64 copies and numpy inputs record no graph anyway, and
        # entering it would cost a dense network's row a tenth of its time)
        for weight, bias, op, act in self._steps:
            if op is None:
                x = x @ weight  # a new array: the bias and activation then work in place
                x += bias
            else:
                x = op(x)
            if act is not None:
                x = act(x)
        return x[0] if shape is not None and rows.ndim == 1 else x
