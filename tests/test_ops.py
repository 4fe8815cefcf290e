"""The private torch kernels and their public fallbacks give the same results."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch.nn import functional as F

from tpsgd_stream.engine import _ops
from tpsgd_stream.engine.optim import LayerAdam
from tpsgd_stream.models import TPSGDClassifier

PRIVATE = (
    "_LEAKY_RELU_BACKWARD",
    "_THRESHOLD_BACKWARD",
    "_TANH_BACKWARD",
    "_SIGMOID_BACKWARD",
    "_ADAPTIVE_AVG_POOL2D_BACKWARD",
    "_FOREACH_ADD",
    "_FUSED_ADAM",
)


@pytest.fixture
def without_private_ops(monkeypatch):
    """As on a torch that has none of the private kernels."""
    for name in PRIVATE:
        monkeypatch.setattr(_ops, name, None)


def test_this_torch_has_the_fast_kernels():
    """The fast path is what CI measures: a torch that drops one shows up here."""
    assert all(getattr(_ops, name) is not None for name in PRIVATE)


def _z():
    z = torch.randn(64, 9, generator=torch.Generator().manual_seed(0))
    z[0] = 0.0  # the kink
    return z


@pytest.mark.parametrize(
    "call",
    [
        lambda g, z: _ops.leaky_relu_backward(g, z, 0.1),
        lambda g, z: _ops.threshold_backward(g, z, 0.0),
        lambda g, z: _ops.tanh_backward(g, torch.tanh(z)),
        lambda g, z: _ops.sigmoid_backward(g, torch.sigmoid(z)),
    ],
    ids=["leaky_relu", "threshold", "tanh", "sigmoid"],
)
def test_each_fallback_matches_its_kernel(call, monkeypatch):
    grad = torch.randn(64, 9, generator=torch.Generator().manual_seed(1))
    z = _z()
    fast = call(grad, z)
    for name in PRIVATE:
        monkeypatch.setattr(_ops, name, None)
    torch.testing.assert_close(call(grad, z), fast, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("size", [1, 2, 4])
def test_pool_fallback_matches_the_kernel_and_is_the_pool_adjoint(size, monkeypatch):
    x = torch.randn(2, 3, 6, 6, requires_grad=True)
    grad = torch.randn(2, 3, size, size)
    fast = _ops.adaptive_avg_pool2d_backward(grad, x.detach())
    (adjoint,) = torch.autograd.grad(F.adaptive_avg_pool2d(x, size), x, grad)
    monkeypatch.setattr(_ops, "_ADAPTIVE_AVG_POOL2D_BACKWARD", None)
    torch.testing.assert_close(_ops.adaptive_avg_pool2d_backward(grad, x.detach()), fast)
    torch.testing.assert_close(fast, adjoint)


def test_step_counters_without_foreach(without_private_ops):
    steps = [torch.zeros(()), torch.full((), 4.0)]
    _ops.increment(steps)
    assert [float(s) for s in steps] == [1.0, 5.0]


def _adam_run() -> list[torch.Tensor]:
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(5, 3)), torch.nn.Parameter(torch.randn(5))]
    optimizer = LayerAdam(params, lr=0.05)
    for i in range(20):
        for p in params:
            p.grad = torch.sin(p.detach() * (i + 1))
        optimizer.step()
    return [p.detach().clone() for p in params]


def test_layer_adam_without_the_fused_kernel(monkeypatch):
    fast = _adam_run()
    monkeypatch.setattr(_ops, "_FUSED_ADAM", None)
    monkeypatch.setattr(_ops, "_FOREACH_ADD", None)
    for got, expected in zip(_adam_run(), fast):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def _trained_probabilities(activation: str) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(256, 6)), columns=list("abcdef"))
    y = pd.Series((X["a"] + X["b"] > 0).astype(int) + (X["c"] > 1).astype(int))
    model = TPSGDClassifier(hidden_layer_sizes=(16, 8), activation=activation, seed=0)
    for start in range(0, len(X), 32):
        model.learn_many(X[start : start + 32], y[start : start + 32])
    return model.predict_proba_many(X)


@pytest.mark.parametrize("activation", ["leaky_relu", "relu", "tanh", "sigmoid"])
def test_an_estimator_trains_the_same_without_private_ops(activation, monkeypatch):
    fast = _trained_probabilities(activation)
    for name in PRIVATE:
        monkeypatch.setattr(_ops, name, None)
    pd.testing.assert_frame_equal(_trained_probabilities(activation), fast, atol=1e-5)
