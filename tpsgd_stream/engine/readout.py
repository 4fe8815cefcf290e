"""One update of a network's output layer on one sample, on the layer's own memory.

A readout that learns from every sample (``readout_per_sample`` of the estimators) takes one
optimizer step per sample on a ``(n_outputs, hidden)`` matrix: a few microseconds of
arithmetic, which a torch training step (a dozen small ops dispatched one by one, the update
guard's copies of the network) would bury under a few hundred microseconds of overhead. This
step computes the gradient in numpy, into kept arrays, on views of the layer's parameters:

- ``delta = dL/dz`` of the network's loss at ``z = W h + b``, as
  :func:`~tpsgd_stream.engine.losses.output_delta` for a minibatch of one; the gradients are
  ``delta`` (the bias's) and ``delta`` times ``h`` (the weight's);
- Adam: one call of the fused kernel that the layer's own optimizer
  (:class:`~tpsgd_stream.engine.optim.LayerAdam`) calls, on the optimizer's own state, so the
  step is the optimizer's step, bit for bit, and saving, loading and later minibatch steps
  see one state; SGD: ``p -= lr * g`` in numpy.

A step that would make a weight or a moment NaN or infinite changes nothing and returns
``False`` (as :func:`~tpsgd_stream.engine.guard.refuse_non_finite` undoes a torch step).
"""

from __future__ import annotations

import math
import weakref

import numpy as np
import torch

from . import _ops
from .least_squares import least_squares_readout
from .optim import FLUSH_EVERY, LayerAdam, adam_state, flush_subnormal
from .threads import intra_op_threads

__all__ = ["numpy_readout", "readout_step"]

_PLAIN = (LayerAdam, torch.optim.Adam, torch.optim.SGD)


def numpy_readout(net) -> bool:
    """Whether :func:`readout_step` can update ``net``'s output layer: a float32 layer on the
    CPU, trained by plain Adam (where torch has its fused kernel) or SGD steps (no output
    rule of its own, no weight decay, momentum, AMSGrad or maximisation)."""
    optimizer = net.optimizers[net.output_index]
    groups = optimizer.param_groups
    return (
        type(optimizer) in _PLAIN
        and (isinstance(optimizer, torch.optim.SGD) or _ops.fused_adam() is not None)
        and len(groups) == 1
        and not any(groups[0].get(k) for k in ("weight_decay", "amsgrad", "momentum", "maximize"))
        and least_squares_readout(net)  # (a float32 layer on the CPU, no output rule)
    )


class _Views:
    """numpy views of an output layer's weight and bias, and the tensors of a fused Adam step
    (parameters, kept gradients, moments, step counts), made once and kept while the same
    tensors hold the same memory (growth or a loaded state replaces them): one
    ``Tensor.numpy()`` costs microseconds."""

    def __init__(self, net, optimizer, layer):
        self.optimizer = optimizer
        self.params = (layer.weight, layer.bias)
        self.supported = numpy_readout(net)
        if not self.supported:
            return
        self.pointers = [p.data_ptr() for p in self.params]
        self.weight, self.bias = (p.detach().numpy() for p in self.params)
        self.magnitudes = np.empty_like(self.weight[0])  # |features|
        self.adam = not isinstance(optimizer, torch.optim.SGD)
        if not self.adam:
            return
        states = [adam_state(optimizer, p) for p in self.params]
        grads = [torch.zeros_like(p) for p in self.params]
        self.weight_grad, self.bias_grad = (g.numpy() for g in grads)
        self.fused_args = (
            [p.detach() for p in self.params],
            grads,
            [s["exp_avg"] for s in states],
            [s["exp_avg_sq"] for s in states],
            [s["step"] for s in states],
        )
        self.counts = [s["step"].numpy() for s in states]
        self.moments = [*self.fused_args[2], *self.fused_args[3]]

    def current(self, optimizer) -> bool:
        """Whether the views still show the tensors that ``optimizer`` trains (a new layer
        comes with a new optimizer)."""
        params = self.params
        trained = optimizer.param_groups[0]["params"]
        if optimizer is not self.optimizer or trained[0] is not params[0]:
            return False
        if not self.supported:
            return True
        # (grown or loaded moments are new tensors; a grown parameter has new memory)
        if self.adam:
            state = optimizer.state
            avgs = self.fused_args[2]
            if (
                state.get(params[0], _NONE).get("exp_avg") is not avgs[0]
                or state.get(params[1], _NONE).get("exp_avg") is not avgs[1]
            ):
                return False
        return params[0].data_ptr() == self.pointers[0] and params[1].data_ptr() == self.pointers[1]


_NONE: dict = {}
_VIEWS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # network -> _Views
_MAX_GRADIENT = math.sqrt(float(np.finfo(np.float32).max))  # its square: float32's largest


def _views(net) -> _Views:
    index = net.output_index
    optimizer = net.optimizers[index]
    views = _VIEWS.get(net)
    if views is None or not views.current(optimizer):
        views = _VIEWS[net] = _Views(net, optimizer, net.layers[index])
    return views


def _delta(z: np.ndarray, target: np.ndarray, loss: str) -> np.ndarray:
    """``dL/dz`` at the float32 logits ``z``, computed in ``z``'s memory where it can."""
    if loss == "cross_entropy":  # softmax(z) - target, as exp(z - max) / sum - target
        np.subtract(z, np.maximum.reduce(z), z)
        np.exp(z, z)
        np.divide(z, np.add.reduce(z), z)
        return np.subtract(z, target, z)
    if loss == "mse":
        return 2.0 * (z - target)
    return np.clip(z - target, -1.0, 1.0)  # huber (delta 1)


def readout_step(net, features: np.ndarray, target: np.ndarray) -> bool | None:
    """Update ``net``'s output layer on one sample whose last hidden activation is
    ``features`` (float32, ``(hidden,)``) and whose target is ``target`` (float32,
    ``(n_outputs,)``).

    Returns ``True`` once done; ``False``, and nothing changed, when the step would make a
    value non-finite; ``None``, and nothing changed, when :func:`numpy_readout` does not hold
    (the caller then takes a torch step).

    Examples
    --------
    >>> from tpsgd_stream.engine.network import Network
    >>> net = Network.mlp(3, (4,), 2, optimizer="sgd", lr=0.5, seed=0)
    >>> h, t = np.ones(4, dtype=np.float32), np.array([1.0, 0.0], dtype=np.float32)
    >>> out = net.layers[-1]
    >>> with torch.no_grad():  # z = 0: softmax(z) = [0.5, 0.5]
    ...     _ = out.weight.zero_(), out.bias.zero_()
    >>> readout_step(net, h, t)
    True
    >>> out.bias.tolist()  # -0.5 * (softmax(z) - t)
    [0.25, -0.25]
    """
    views = _views(net)
    if not views.supported:
        return None
    z = views.weight @ features
    np.add(z, views.bias, z)
    delta = _delta(z, target, net.loss).astype(np.float32, copy=False)
    # the largest gradient entry is the largest delta times the largest feature: when its
    # square is finite, so is every moment, and an Adam step moves a weight by at most a few
    # times lr
    largest = float(np.maximum.reduce(np.abs(features, views.magnitudes)))
    if not largest * float(np.maximum.reduce(np.abs(delta))) <= _MAX_GRADIENT:  # (NaN: not <=)
        return False
    if not views.adam:
        return _sgd(views, delta, features)
    _fused_adam(views, delta, features)
    return True


def _sgd(views: _Views, delta: np.ndarray, features: np.ndarray) -> bool:
    """A plain SGD step, refused (``False``) when a new value would not be finite."""
    lr = np.float32(views.optimizer.param_groups[0]["lr"])
    weight, bias = views.weight, views.bias
    with np.errstate(over="ignore", invalid="ignore"):  # (refused just below)
        new = [weight - lr * np.multiply(delta[:, None], features), bias - lr * delta]
    if not all(np.isfinite(a).all() for a in new):
        return False
    weight[...], bias[...] = new
    return True


def _fused_adam(views: _Views, delta: np.ndarray, features: np.ndarray) -> None:
    """The optimizer's fused Adam step with the gradients of ``delta`` and ``features``."""
    np.multiply(delta[:, None], features, views.weight_grad)
    np.copyto(views.bias_grad, delta)
    for count in views.counts:  # (the kernel takes counts already incremented)
        count[()] = float(count) + 1.0  # (exact: float32 holds every integer up to 2**24)
    group = views.optimizer.param_groups[0]
    # (one sample's step: a pool of threads only waits, for milliseconds on a busy machine)
    with intra_op_threads(1):
        _ops.adam_kernel(*views.fused_args, group["lr"], *group["betas"], group["eps"])
    steps = int(views.counts[0])
    if steps % FLUSH_EVERY == 0:  # (subnormal moments slow the kernel: see LayerAdam)
        flush_subnormal(views.moments)
