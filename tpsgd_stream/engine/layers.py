"""Layers that compute their own weight gradients from a ``delta``, without autograd.

A trainable layer is a linear map followed by an activation: ``z = linear(x)``,
``a = sigma(z)``. Given ``delta = dL/dz`` (from its rule), :meth:`Trainable.set_grads` writes
the weight gradients into ``.grad`` with an outer product (dense) or
``torch.nn.grad.conv2d_weight`` / ``conv1d_weight`` (convolution), so a local rule holds only
this layer's input and output. :meth:`Trainable.input_grad` exists for the ``bp`` rule alone.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .activations import Activation, get_activation
from .rules import Rule, get_rule

__all__ = [
    "Trainable",
    "Dense",
    "Conv2d",
    "Conv1d",
    "Transform",
    "MaxPool2d",
    "AvgPool2d",
    "MaxPool1d",
    "AvgPool1d",
    "GlobalAvgPool1d",
    "GlobalMaxPool1d",
    "Flatten",
]


def _uniform(shape: tuple[int, ...], bound: float, generator: torch.Generator) -> torch.Tensor:
    return (torch.rand(shape, generator=generator) * 2.0 - 1.0) * bound


class Trainable(nn.Module):
    """A linear map, an activation and (optionally) the rule that trains it.

    ``rule=None`` lets the network's default rule apply. The network's last trainable layer
    is its output layer: it always learns from the true loss, whatever its rule.

    Examples
    --------
    >>> layer = Dense(2, 3, activation="tanh", rule="drtp")
    >>> layer.rule.name, layer.act.name, layer.fan_in
    ('drtp', 'tanh', 2)
    """

    def __init__(self, activation: str, rule: str | Rule | None):
        super().__init__()
        self.activation = get_activation(activation).name
        self.rule = None if rule is None else get_rule(rule)

    @property
    def act(self) -> Activation:
        return get_activation(self.activation)

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act.forward(self.linear(x))

    def set_grads(self, x: torch.Tensor, delta: torch.Tensor) -> None:
        raise NotImplementedError

    def input_grad(self, delta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def reset_parameters(self, generator: torch.Generator) -> None:
        """torch's default init (U(-1/sqrt(fan_in), 1/sqrt(fan_in))), from ``generator``."""
        bound = 1.0 / math.sqrt(self.fan_in)
        with torch.no_grad():
            self.weight.copy_(_uniform(tuple(self.weight.shape), bound, generator))
            self.bias.copy_(_uniform(tuple(self.bias.shape), bound, generator))

    @property
    def fan_in(self) -> int:
        return math.prod(self.weight.shape[1:])


def _check_sizes(owner: str, **sizes) -> None:
    """A ``ValueError`` naming the first of ``sizes`` that is not an int >= 1."""
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{owner}: {name} must be an int >= 1, got {value!r}.")


class Dense(Trainable):
    """Fully connected layer ``z = x @ W^T + b``.

    Examples
    --------
    >>> import torch
    >>> layer = Dense(3, 2, activation="relu")
    >>> x, delta = torch.ones(4, 3), torch.ones(4, 2)
    >>> layer.set_grads(x, delta)
    >>> layer.weight.grad          # delta^T @ x
    tensor([[4., 4., 4.],
            [4., 4., 4.]])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        activation: str = "leaky_relu",
        rule: str | Rule | None = None,
    ):
        super().__init__(activation, rule)
        _check_sizes(type(self).__name__, in_features=in_features, out_features=out_features)
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.weight = nn.Parameter(torch.zeros(self.out_features, self.in_features))
        self.bias = nn.Parameter(torch.zeros(self.out_features))
        self.reset_parameters(torch.Generator().manual_seed(0))

    def extra_repr(self) -> str:
        return f"{self.in_features} -> {self.out_features}, {self.activation}, rule={self.rule}"

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)  # addmm(b, x, W^T) in one call

    def set_grads(self, x: torch.Tensor, delta: torch.Tensor) -> None:
        self.weight.grad = torch.mm(delta.t(), x)
        self.bias.grad = delta.sum(0)

    def input_grad(self, delta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.mm(delta, self.weight)

    def grow_inputs(self, n_new: int) -> None:
        """Append ``n_new`` input columns with zero weights (outputs are unchanged)."""
        _grow(self.weight, dim=1, n_new=n_new)
        self.in_features += n_new

    def grow_outputs(self, n_new: int) -> None:
        """Append ``n_new`` output units with zero weights and bias."""
        _grow(self.weight, dim=0, n_new=n_new)
        _grow(self.bias, dim=0, n_new=n_new)
        self.out_features += n_new


def _grow(param: nn.Parameter, *, dim: int, n_new: int) -> None:
    """Pad ``param`` in place (same Parameter object, so optimizers keep tracking it)."""
    pad_shape = list(param.shape)
    pad_shape[dim] = n_new
    with torch.no_grad():
        param.data = torch.cat([param.data, param.data.new_zeros(pad_shape)], dim=dim)


class Conv2d(Trainable):
    """2-D convolution ``z = conv2d(x, W) + b``; gradients by ``torch.nn.grad.conv2d_weight``.

    Examples
    --------
    >>> import torch
    >>> conv = Conv2d(1, 4, 3, padding=1)
    >>> x = torch.ones(2, 1, 5, 5)
    >>> conv.linear(x).shape
    torch.Size([2, 4, 5, 5])
    >>> conv.set_grads(x, torch.ones(2, 4, 5, 5))
    >>> conv.weight.grad.shape, conv.bias.grad.tolist()
    (torch.Size([4, 1, 3, 3]), [50.0, 50.0, 50.0, 50.0])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        padding: int = 0,
        activation: str = "leaky_relu",
        rule: str | Rule | None = None,
    ):
        super().__init__(activation, rule)
        _check_sizes(
            type(self).__name__,
            in_channels=in_channels,
            out_channels=out_channels,
            kernel_size=kernel_size,
            stride=stride,
        )
        if isinstance(padding, bool) or not isinstance(padding, (int, np.integer)) or padding < 0:
            raise ValueError(f"Conv2d: padding must be an int >= 0, got {padding!r}.")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.stride, self.padding = int(kernel_size), int(stride), int(padding)
        k = self.kernel_size
        self.weight = nn.Parameter(torch.zeros(self.out_channels, self.in_channels, k, k))
        self.bias = nn.Parameter(torch.zeros(self.out_channels))
        self.reset_parameters(torch.Generator().manual_seed(0))

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels} -> {self.out_channels}, kernel={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, {self.activation}, rule={self.rule}"
        )

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)

    def set_grads(self, x: torch.Tensor, delta: torch.Tensor) -> None:
        self.weight.grad = torch.nn.grad.conv2d_weight(
            x, self.weight.shape, delta, self.stride, self.padding
        )
        self.bias.grad = delta.sum((0, 2, 3))

    def input_grad(self, delta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.grad.conv2d_input(x.shape, self.weight, delta, self.stride, self.padding)


class Conv1d(Trainable):
    """1-D convolution over time ``z = conv1d(x, W) + b``; gradients by
    ``torch.nn.grad.conv1d_weight``.

    Inputs are ``(n, in_channels, time steps)``, outputs ``(n, out_channels, time steps')``.

    Parameters
    ----------
    in_channels, out_channels, kernel_size
        Input channels, filters and taps per filter.
    stride, dilation
        Step between output positions and spacing between a filter's taps.
    padding
        Zeros added at both ends (an int), or ``"same"`` (``stride=1`` only): as many as keep
        the length, the odd one at the end, as ``torch.nn.functional.conv1d`` does.
    activation, rule
        As :class:`Dense`.

    Examples
    --------
    >>> import torch
    >>> conv = Conv1d(2, 4, 3, dilation=2, padding="same")
    >>> x = torch.ones(5, 2, 10)
    >>> conv.linear(x).shape
    torch.Size([5, 4, 10])
    >>> conv.set_grads(x, torch.ones(5, 4, 10))
    >>> conv.weight.grad.shape, conv.bias.grad.tolist()
    (torch.Size([4, 2, 3]), [50.0, 50.0, 50.0, 50.0])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        dilation: int = 1,
        padding: int | str = 0,
        activation: str = "leaky_relu",
        rule: str | Rule | None = None,
    ):
        super().__init__(activation, rule)
        _check_sizes(
            type(self).__name__,
            in_channels=in_channels,
            out_channels=out_channels,
            kernel_size=kernel_size,
            stride=stride,
            dilation=dilation,
        )
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.stride, self.dilation = int(kernel_size), int(stride), int(dilation)
        self.padding = _check_padding(padding, self.stride)
        self._ends = self._pad_ends()
        self.weight = nn.Parameter(
            torch.zeros(self.out_channels, self.in_channels, self.kernel_size)
        )
        self.bias = nn.Parameter(torch.zeros(self.out_channels))
        self.reset_parameters(torch.Generator().manual_seed(0))

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels} -> {self.out_channels}, kernel={self.kernel_size}, "
            f"stride={self.stride}, dilation={self.dilation}, padding={self.padding!r}, "
            f"{self.activation}, rule={self.rule}"
        )

    def _pad_ends(self) -> tuple[int, int]:
        """Zeros before and after the sequence."""
        if self.padding != "same":
            return self.padding, self.padding
        total = self.dilation * (self.kernel_size - 1)
        return total // 2, total - total // 2

    @property
    def min_length(self) -> int:
        """The shortest input (time steps) that gives at least one output position."""
        return max(1, self.receptive_field - sum(self._ends))

    @property
    def receptive_field(self) -> int:
        """Time steps one output position reads: ``dilation * (kernel_size - 1) + 1``."""
        return self.dilation * (self.kernel_size - 1) + 1

    def output_length(self, length: int) -> int:
        """Time steps of the output for an input of ``length`` steps.

        Examples
        --------
        >>> Conv1d(1, 1, 5, stride=2, padding=1).output_length(40)
        19
        """
        padded = length + sum(self._ends)
        return (padded - self.receptive_field) // self.stride + 1

    def _padded(self, x: torch.Tensor) -> tuple[torch.Tensor, int]:
        """``x`` and the padding to give torch: uneven ends ("same" with an even span) are
        padded here, even ones by the convolution itself."""
        before, after = self._ends
        if before == after:
            return x, before
        return F.pad(x, (before, after)), 0

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        x, pad = self._padded(x)
        return F.conv1d(x, self.weight, self.bias, self.stride, pad, self.dilation)

    def set_grads(self, x: torch.Tensor, delta: torch.Tensor) -> None:
        x, pad = self._padded(x)
        self.weight.grad = torch.nn.grad.conv1d_weight(
            x, self.weight.shape, delta, self.stride, pad, self.dilation
        )
        self.bias.grad = delta.sum((0, 2))

    def input_grad(self, delta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        padded, pad = self._padded(x)
        grad = torch.nn.grad.conv1d_input(
            padded.shape, self.weight, delta, self.stride, pad, self.dilation
        )
        if padded is x:
            return grad
        return grad.narrow(2, self._ends[0], x.shape[2])


def _check_padding(padding: int | str, stride: int) -> int | str:
    """``padding`` as an int >= 0 or ``"same"`` (stride 1), else a ``ValueError`` naming it."""
    if padding == "same":
        if stride != 1:
            raise ValueError(f"Conv1d: padding='same' needs stride=1, got stride={stride}.")
        return "same"
    if isinstance(padding, bool) or not isinstance(padding, (int, np.integer)) or padding < 0:
        raise ValueError(f"Conv1d: padding must be an int >= 0 or 'same', got {padding!r}.")
    return int(padding)


class Transform(nn.Module):
    """A parameter-free layer (pooling, flatten); never trained, only passed through.

    Examples
    --------
    >>> import torch
    >>> x = torch.arange(4.0).reshape(1, 1, 2, 2)
    >>> MaxPool2d(2).input_grad(torch.ones(1, 1, 1, 1), x).flatten().tolist()
    [0.0, 0.0, 0.0, 1.0]
    """

    def input_grad(self, delta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Vector-Jacobian product through this layer alone (used only under ``bp`` layers)."""
        with torch.enable_grad():
            leaf = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self(leaf), leaf, delta)
        return grad


class _Pool2d(Transform):
    """Pooling with a square window (stride = window unless given)."""

    pool = staticmethod(F.max_pool2d)

    def __init__(self, kernel_size: int, stride: int | None = None):
        super().__init__()
        self.kernel_size = int(kernel_size)
        self.stride = int(stride or kernel_size)

    def extra_repr(self) -> str:
        return f"kernel={self.kernel_size}, stride={self.stride}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x, self.kernel_size, self.stride)


class MaxPool2d(_Pool2d):
    """Max pooling with a square window (stride = window unless given).

    Examples
    --------
    >>> import torch
    >>> MaxPool2d(2)(torch.arange(16.0).reshape(1, 1, 4, 4)).flatten().tolist()
    [5.0, 7.0, 13.0, 15.0]
    """


class AvgPool2d(_Pool2d):
    """Average pooling with a square window (stride = window unless given).

    Examples
    --------
    >>> import torch
    >>> AvgPool2d(2)(torch.arange(16.0).reshape(1, 1, 4, 4)).flatten().tolist()
    [2.5, 4.5, 10.5, 12.5]
    """

    pool = staticmethod(F.avg_pool2d)


class _Pool1d(_Pool2d):
    """Pooling over time with a window of ``kernel_size`` steps (stride = window unless given)."""

    pool = staticmethod(F.max_pool1d)


class MaxPool1d(_Pool1d):
    """Max pooling over time, ``(n, c, T) -> (n, c, T // kernel_size)`` with the default stride.

    Examples
    --------
    >>> import torch
    >>> MaxPool1d(2)(torch.tensor([[[1.0, 3.0, 2.0, 0.0]]])).tolist()
    [[[3.0, 2.0]]]
    """


class AvgPool1d(_Pool1d):
    """Average pooling over time, ``(n, c, T) -> (n, c, T // kernel_size)`` with the default
    stride.

    Examples
    --------
    >>> import torch
    >>> AvgPool1d(2)(torch.tensor([[[1.0, 3.0, 2.0, 0.0]]])).tolist()
    [[[2.0, 1.0]]]
    """

    pool = staticmethod(F.avg_pool1d)


class GlobalAvgPool1d(Transform):
    """Mean over time, ``(n, c, T) -> (n, c)``; its adjoint spreads ``delta / T`` evenly.

    Examples
    --------
    >>> import torch
    >>> x = torch.tensor([[[1.0, 3.0, 2.0, 2.0]]])
    >>> GlobalAvgPool1d()(x).tolist()
    [[2.0]]
    >>> GlobalAvgPool1d().input_grad(torch.ones(1, 1), x).tolist()
    [[[0.25, 0.25, 0.25, 0.25]]]
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(2)

    def input_grad(self, delta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return (delta / x.shape[2]).unsqueeze(2).expand(x.shape).contiguous()


class GlobalMaxPool1d(Transform):
    """Maximum over time, ``(n, c, T) -> (n, c)``; its adjoint routes ``delta`` to the step
    that held the maximum.

    Examples
    --------
    >>> import torch
    >>> x = torch.tensor([[[1.0, 3.0, 2.0, 2.0]]])
    >>> GlobalMaxPool1d()(x).tolist()
    [[3.0]]
    >>> GlobalMaxPool1d().input_grad(torch.ones(1, 1), x).tolist()
    [[[0.0, 1.0, 0.0, 0.0]]]
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.max(2).values

    def input_grad(self, delta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        where = x.max(2, keepdim=True).indices
        return torch.zeros_like(x).scatter_(2, where, delta.unsqueeze(2))


class Flatten(Transform):
    """``(n, c, h, w) -> (n, c * h * w)`` (and ``(n, c, T) -> (n, c * T)``).

    Examples
    --------
    >>> import torch
    >>> Flatten()(torch.zeros(2, 3, 4, 4)).shape
    torch.Size([2, 48])
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)

    def input_grad(self, delta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return delta.reshape(x.shape)


GLOBAL_POOLS = {"avg": GlobalAvgPool1d, "max": GlobalMaxPool1d}
