"""The estimators' float64 prediction pass computes what ``Network.forward`` computes."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from tpsgd_stream.engine.activations import ACTIVATIONS
from tpsgd_stream.engine.inference import Float64Forward
from tpsgd_stream.engine.network import Network
from tpsgd_stream.models import TPSGDClassifier, TPSGDImageClassifier, TPSGDRegressor

torch.set_num_threads(1)  # see tests/test_estimators.py

NETWORKS = {
    "mlp": (lambda act: Network.mlp(6, (16, 8), 4, activation=act, seed=1), None),
    "cnn": (
        lambda act: Network.cnn(
            (2, 6, 6), 4, channels=(3, 5), kernel_size=3, pool=2, hidden=(7,), activation=act
        ),
        (2, 6, 6),
    ),
}


def _trained(net: Network, shape: tuple[int, ...]) -> Network:
    """``net`` after a few steps, so that no layer keeps its initial (zero) output weights."""
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = torch.tensor(rng.normal(size=(16, *shape)), dtype=torch.float32)
        net.train_step(x, net.one_hot(torch.tensor(rng.integers(0, 4, 16))))
    return net


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("kind", sorted(NETWORKS))
def test_float64_forward_equals_network_forward(kind, activation):
    build, shape = NETWORKS[kind]
    n_inputs = 6 if shape is None else int(np.prod(shape))
    net = _trained(build(activation), (n_inputs,) if shape is None else shape)
    rows = np.random.default_rng(1).normal(size=(9, n_inputs)) * 2.0
    out = Float64Forward(net.layers, shape)(rows)
    # the same network in float64 through Network.forward: the same function, to rounding
    net64 = copy.deepcopy(net).double()
    x64 = torch.from_numpy(rows if shape is None else rows.reshape(-1, *shape))
    assert np.allclose(out, net64.forward(x64).numpy(), rtol=0, atol=1e-6)
    # and the live float32 network, to float32's precision
    x32 = x64.float()
    assert np.allclose(out, net.forward(x32).double().numpy(), rtol=1e-4, atol=1e-5)
    # one row at a time gives the rows of the frame
    assert np.allclose(np.stack([Float64Forward(net.layers, shape)(r) for r in rows]), out)


@pytest.mark.parametrize("kind", sorted(NETWORKS))
def test_a_refreshed_forward_equals_a_new_one(kind):
    """After updates, refreshing a snapshot in place gives exactly a new snapshot's outputs;
    after growth it refuses (``False``), and a new snapshot is needed."""
    build, shape = NETWORKS[kind]
    n_inputs = 6 if shape is None else int(np.prod(shape))
    sample = (n_inputs,) if shape is None else shape
    net = _trained(build("tanh"), sample)
    forward = Float64Forward(net.layers, shape)
    rows = np.random.default_rng(2).normal(size=(5, n_inputs))
    before = forward(rows)
    _trained(net, sample)  # five more updates
    assert forward.refresh(net.layers)
    after = forward(rows)
    assert not np.array_equal(after, before)
    np.testing.assert_array_equal(after, Float64Forward(net.layers, shape)(rows))
    net.grow_outputs(1)
    assert not forward.refresh(net.layers)
    assert not Float64Forward(net.layers[:-1], shape).refresh(net.layers)


def _samples(n, n_features, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5).astype(int)
    return [({f"x{j}": float(v) for j, v in enumerate(row)}, int(t)) for row, t in zip(X, y)]


ESTIMATORS = {
    "tabular": lambda act: TPSGDClassifier(hidden_layer_sizes=(16, 8), activation=act, seed=0),
    "image": lambda act: TPSGDImageClassifier(
        channels=(3,), hidden_layer_sizes=(8,), activation=act, seed=0
    ),
}


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("kind", sorted(ESTIMATORS))
def test_estimator_probabilities_equal_the_network_forward(kind, activation):
    model = ESTIMATORS[kind](activation)
    for x, y in _samples(96, 16):
        model.learn_one(x, y)
    probe = [x for x, _ in _samples(10, 16, seed=1)]
    net64 = copy.deepcopy(model.network).double()
    logits = net64.forward(model.network_inputs(probe).double())
    # (probabilities from the readout's scores as the estimator makes them: a softmax, or the
    # least-squares readout's clipped scores: tests/test_least_squares.py)
    expected = model._probabilities(logits.numpy())
    got = np.array([[model.predict_proba_one(x)[c] for c in model.classes] for x in probe])
    assert np.allclose(got, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_regressor_prediction_equals_the_network_forward(activation):
    model = TPSGDRegressor(hidden_layer_sizes=(8,), activation=activation, seed=0)
    for x, y in _samples(64, 4):
        model.learn_one(x, float(y))
    probe = [x for x, _ in _samples(5, 4, seed=1)]
    net64 = copy.deepcopy(model.network).double()
    z = net64.forward(model.network_inputs(probe).double())[:, 0].numpy()
    expected = z * model._y_std + model._y_mean
    assert np.allclose([model.predict_one(x) for x in probe], expected, rtol=0, atol=1e-6)
