"""One update of a network's output layer on one sample, in numpy on the layer's own memory.

A readout that learns from every sample (``readout_per_sample`` of the estimators) takes one
optimizer step per sample on a ``(n_outputs, hidden)`` matrix: a few microseconds of
arithmetic, which a torch step (dispatch of a dozen small ops, the update guard's copies of
the whole network) would bury under a few hundred microseconds of overhead. This step runs the
same maths in numpy on views of the layer's parameters and of its optimizer's state (the
tensors ``torch.optim.Adam`` keeps, so saving, loading and a later torch step see one state):

- ``delta = dL/dz`` of the network's loss at ``z = W h + b``, as
  :func:`~tpsgd_stream.engine.losses.output_delta` for a minibatch of one;
- SGD: ``p -= lr * g``; Adam (``torch.optim.Adam``'s defaults): ``m = b1 m + (1 - b1) g``,
  ``v = b2 v + (1 - b2) g^2``, ``p -= lr / (1 - b1^t) * m / (sqrt(v / (1 - b2^t)) + eps)``.

A step whose gradient would make a weight or a moment NaN or infinite changes nothing and
returns ``False`` (as :func:`~tpsgd_stream.engine.guard.refuse_non_finite` undoes a torch
step): SGD's new weights are checked before they are written, Adam's squared gradients.
"""

from __future__ import annotations

import math
import weakref

import numpy as np
import torch

from .optim import LayerAdam

__all__ = ["numpy_readout", "readout_step"]

_PLAIN = (LayerAdam, torch.optim.Adam, torch.optim.SGD)


def numpy_readout(net) -> bool:
    """Whether :func:`readout_step` can update ``net``'s output layer: a float32 layer on the
    CPU, trained by plain Adam or SGD steps (no output rule of its own, no weight decay,
    momentum or AMSGrad)."""
    out = net.output_index
    optimizer = net.optimizers[out]
    groups = optimizer.param_groups
    layer = net.layers[out]
    return (
        type(optimizer) in _PLAIN
        and len(groups) == 1
        and not any(groups[0].get(k) for k in ("weight_decay", "amsgrad", "momentum"))
        and net.rules[out] is None
        and layer.weight.device.type == "cpu"
        and layer.weight.dtype == torch.float32
    )


class _Views:
    """numpy views of an output layer's weight and bias and of their Adam moments and step
    count (one ``Tensor.numpy()`` costs microseconds: made once, kept while the same tensors
    hold the same memory; growth or a loaded state replaces them), and the arrays each step
    writes its intermediate values and float32 constants into (a numpy call on small arrays
    costs about a microsecond, twice that when it allocates or takes a numpy scalar)."""

    def __init__(self, net, optimizer, layer):
        self.optimizer = optimizer
        self.params = (layer.weight, layer.bias)
        self.supported = numpy_readout(net)
        if not self.supported:
            return
        self.adam = not isinstance(optimizer, torch.optim.SGD)
        self.tensors = list(self.params)
        if self.adam:
            states = [_adam_state(optimizer, p) for p in self.params]
            self.tensors += [s[k] for s in states for k in ("exp_avg", "exp_avg_sq", "step")]
        self.pointers = [p.data_ptr() for p in self.params]
        arrays = [t.detach().numpy() for t in self.tensors]
        self.weight, self.bias = arrays[:2]
        self.moments = [arrays[2:5], arrays[5:8]] if self.adam else []
        self.grad = np.empty_like(self.weight)  # (the bias's gradient is delta itself)
        # per parameter: its squared gradient and a work array
        self.scratch = [(np.empty_like(a), np.empty_like(a)) for a in (self.weight, self.bias)]
        # 1 - beta1, 1 - beta2, eps, sqrt(1 - beta2^t) and -lr / (1 - beta1^t), in float32
        self.constants = [np.zeros((), np.float32) for _ in range(5)]

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
            tensors = self.tensors
            if (
                state.get(params[0], _NONE).get("exp_avg") is not tensors[2]
                or state.get(params[1], _NONE).get("exp_avg") is not tensors[5]
            ):
                return False
        return params[0].data_ptr() == self.pointers[0] and params[1].data_ptr() == self.pointers[1]


_NONE: dict = {}
_VIEWS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # network -> _Views


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
        np.subtract(z, z.max(), z)
        np.exp(z, z)
        np.divide(z, z.sum(), z)
        return np.subtract(z, target, z)
    if loss == "mse":
        return 2.0 * (z - target)
    return np.clip(z - target, -1.0, 1.0)  # huber (delta 1)


def _finite(*arrays: np.ndarray) -> bool:
    """Whether every entry is finite: one sum each, element by element only when a sum is
    not (finite values can overflow a sum)."""
    return all(math.isfinite(a.sum()) or np.isfinite(a).all() for a in arrays)


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
    weight, bias = views.weight, views.bias
    z = weight @ features
    z += bias
    delta = _delta(z, target, net.loss).astype(np.float32, copy=False)
    grads = (np.multiply(delta[:, None], features, views.grad), delta)
    if not views.adam:
        lr = np.float32(views.optimizer.param_groups[0]["lr"])
        with np.errstate(over="ignore", invalid="ignore"):  # (refused just below)
            new = [p - lr * g for p, g in zip((weight, bias), grads)]
        if not _finite(*new):
            return False
        weight[...], bias[...] = new
        return True
    return _adam(views, grads)


def _adam(views: _Views, grads: tuple[np.ndarray, np.ndarray]) -> bool:
    """``torch.optim.Adam``'s step with ``grads`` on the weight and bias that ``views``
    shows, in place. Refused (``False``) when a squared gradient is not finite; otherwise
    every new value is finite: an Adam step moves a weight by at most a few times ``lr``."""
    scratch = views.scratch
    with np.errstate(over="ignore", invalid="ignore"):  # (an overflow is refused just below)
        for grad, (square, _) in zip(grads, scratch):
            np.multiply(grad, grad, square)
    if not _finite(scratch[0][0], scratch[1][0]):
        return False
    # the float32 constants, rounded from Python floats as numpy rounds them in arithmetic
    group = views.optimizer.param_groups[0]
    beta1, beta2 = group["betas"]
    step = float(views.moments[0][2]) + 1.0
    constants = views.constants
    for constant, value in zip(
        constants,
        (
            1 - beta1,
            1 - beta2,
            group["eps"],
            math.sqrt(1.0 - beta2**step),
            -group["lr"] / (1.0 - beta1**step),
        ),
    ):
        constant[()] = value
    keep1, keep2, eps, root_bias2, step_size = constants
    values = (views.weight, views.bias)
    for value, grad, (square, work), (exp_avg, exp_avg_sq, count) in zip(
        values, grads, scratch, views.moments
    ):
        # exp_avg += (grad - exp_avg) * (1 - beta1), and exp_avg_sq likewise with square
        np.subtract(grad, exp_avg, work)
        np.multiply(work, keep1, work)
        np.add(exp_avg, work, exp_avg)
        np.subtract(square, exp_avg_sq, work)
        np.multiply(work, keep2, work)
        np.add(exp_avg_sq, work, exp_avg_sq)
        # value += exp_avg / (sqrt(exp_avg_sq) / root_bias2 + eps) * step_size
        np.sqrt(exp_avg_sq, work)
        np.divide(work, root_bias2, work)
        np.add(work, eps, work)
        np.divide(exp_avg, work, work)
        np.multiply(work, step_size, work)
        np.add(value, work, value)
        # count += 1 in float32: the exact sum in a Python float, rounded once to float32
        count[()] = float(count) + 1.0
    return True


def _adam_state(optimizer, param: torch.nn.Parameter) -> dict:
    """``param``'s Adam state, made as ``torch.optim.Adam`` makes it on a first step."""
    state = optimizer.state[param]
    if not state:
        state["step"] = torch.zeros((), dtype=torch.float32)
        state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
    return state
