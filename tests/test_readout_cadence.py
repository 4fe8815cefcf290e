"""The readout that learns from every sample while the hidden layers learn per minibatch
(``readout_per_sample``, ``hidden_lr_scale``; ``tpsgd_stream.engine.readout``)."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import as_old_file

from tpsgd_stream.engine import readout as readout_module
from tpsgd_stream.engine.network import Network
from tpsgd_stream.engine.readout import numpy_readout, readout_step
from tpsgd_stream.models import TPSGDClassifier

torch.set_num_threads(1)  # see tests/test_estimators.py


def _stream(n=40, seed=0, n_classes=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    return [
        ({f"f{j}": float(v) for j, v in enumerate(row)}, i % n_classes) for i, row in enumerate(X)
    ]


def _hidden(model) -> list[torch.Tensor]:
    first = model.network.layers[0]
    return [first.weight.detach().clone(), first.bias.detach().clone()]


def _readout(model) -> list[torch.Tensor]:
    out = model.network.layers[model.network.output_index]
    return [out.weight.detach().clone(), out.bias.detach().clone()]


def _same(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


def test_the_readout_learns_every_sample_and_the_hidden_layer_every_minibatch():
    model = TPSGDClassifier(hidden_layer_sizes=(6,), batch_size=4, seed=0)
    data = _stream(9)
    model.learn_one(*data[0])
    for i, (x, y) in enumerate(data[1:], start=1):
        hidden, readout = _hidden(model), _readout(model)
        model.learn_one(x, y)
        assert not _same(readout, _readout(model))  # every sample
        boundary = (i + 1) % 4 == 0
        assert _same(hidden, _hidden(model)) is not boundary  # only when 4 are in
    assert model._n_updates == 2  # two minibatches, of the hidden layer alone


def test_the_hidden_layers_learn_at_a_scaled_rate():
    model = TPSGDClassifier(hidden_layer_sizes=(6,), lr=0.02, hidden_lr_scale=0.25, seed=0)
    model.learn_one({"a": 1.0}, 0)
    lrs = [model.network.optimizers[i].param_groups[0]["lr"] for i in (0, 1)]
    assert lrs == pytest.approx([0.005, 0.02])


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_a_readout_step_against_torch(optimizer):
    """The numpy step equals torch's step of the output layer alone on the same sample."""
    net = Network.mlp(3, (5,), 4, optimizer=optimizer, lr=0.05, seed=0)
    x = torch.randn(6, 3)
    net.train_step(x, net.one_hot(torch.arange(6) % 4))  # moments and a step count to go on
    reference = copy.deepcopy(net)
    assert numpy_readout(net)
    out = net.output_index
    for i in range(3):
        h = net.forward(x[i : i + 1], stop=out)
        target = net.one_hot(torch.tensor([i]))
        assert readout_step(net, h[0].numpy(), target[0].numpy()) is True
        reference.train_step(h, target, layers=[out], start=out)
    for a, b in zip(net.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for p, q in zip(net.layers[out].parameters(), reference.layers[out].parameters()):
        state, expected = net.optimizers[out].state[p], reference.optimizers[out].state[q]
        for key in expected:
            torch.testing.assert_close(state[key], expected[key], rtol=1e-5, atol=1e-7)


def test_a_readout_step_against_the_adam_formula():
    net = Network.mlp(2, (3,), 2, lr=0.1, seed=0)
    out = net.layers[-1]
    w, b = out.weight.detach().double().clone(), out.bias.detach().double().clone()
    h, t = np.array([1.0, -2.0, 0.5], np.float32), np.array([0.0, 1.0], np.float32)
    assert readout_step(net, h, t)
    hd = torch.tensor(h, dtype=torch.float64)
    delta = torch.softmax(w @ hd + b, 0) - torch.tensor(t, dtype=torch.float64)
    for param, grad in ((w, torch.outer(delta, hd)), (b, delta)):  # first step: m/(1-b1) = g
        m, v = 0.1 * grad / (1 - 0.9), 0.001 * grad**2 / (1 - 0.999)
        param -= 0.1 * m / (v.sqrt() + 1e-8)
    torch.testing.assert_close(out.weight.detach().double(), w, rtol=0, atol=1e-6)
    torch.testing.assert_close(out.bias.detach().double(), b, rtol=0, atol=1e-6)


def test_learn_many_reaches_the_learn_one_model():
    data = _stream(30, n_classes=4)
    one = TPSGDClassifier(hidden_layer_sizes=(6,), batch_size=8, seed=1)
    many = TPSGDClassifier(hidden_layer_sizes=(6,), batch_size=8, seed=1)
    for x, y in data:
        one.learn_one(x, y)
    for start in range(0, 30, 7):  # new labels mid-frame, frames across the minibatches
        chunk = data[start : start + 7]
        many.learn_many(pd.DataFrame([x for x, _ in chunk]), pd.Series([y for _, y in chunk]))
    assert one._n_updates == many._n_updates == 3 and one._n_buffered == many._n_buffered
    assert _same(list(one.network.parameters()), list(many.network.parameters()))


def test_train_only_decides_which_cadence_runs():
    model = TPSGDClassifier(hidden_layer_sizes=(6,), batch_size=2, seed=0)
    data = _stream(8)
    for x, y in data[:4]:
        model.learn_one(x, y)
    net = model.network
    hidden, readout = _hidden(model), _readout(model)
    with model.train_only([net.output_index]):  # a frozen encoder: the readout still learns
        for x, y in data[4:6]:
            model.learn_one(x, y)
    assert _same(hidden, _hidden(model)) and not _same(readout, _readout(model))
    readout = _readout(model)
    with model.train_only([0]):  # the hidden layer alone
        for x, y in data[6:8]:
            model.learn_one(x, y)
    assert not _same(hidden, _hidden(model)) and _same(readout, _readout(model))


def test_predictions_follow_each_readout_step():
    model = TPSGDClassifier(hidden_layer_sizes=(6,), seed=0)
    data = _stream(5)
    for x, y in data:
        model.learn_one(x, y)
        expected = model.network(model.network_inputs([x]))[0].double().numpy()
        proba = model._probabilities(expected).tolist()  # (see tests/test_least_squares.py)
        assert list(model.predict_proba_one(x).values()) == pytest.approx(proba, abs=1e-6)


def test_an_old_file_and_an_old_pickle_keep_the_minibatch_readout(tmp_path):
    model = TPSGDClassifier(hidden_layer_sizes=(4,), batch_size=4, seed=0)
    for x, y in _stream(10):
        model.learn_one(x, y)
    loaded = as_old_file(model, tmp_path, ("readout_per_sample", "hidden_lr_scale"))
    assert loaded.readout_per_sample is False and loaded.hidden_lr_scale == 1.0
    state = model.__getstate__()
    for key in ("readout_per_sample", "hidden_lr_scale", "_hidden_pass", "_readout_pass"):
        del state[key]
    state["_weights"] = None  # (the previous release's prediction cache)
    old = pickle.loads(pickle.dumps(model))
    old.__dict__.clear()
    old.__setstate__(state)
    assert old.readout_per_sample is False and old.clone().readout_per_sample is False
    x = {"f0": 0.5, "f1": -1.0}
    # the same scores (their probabilities: a softmax for the old model's minibatch readout)
    assert np.array_equal(old._forward(old._row(x)), model._forward(model._row(x)))
    readout = _readout(old)
    old.learn_one(x, 1)  # buffered: the readout waits for the minibatch, as it did
    assert _same(readout, _readout(old))


@pytest.mark.parametrize("bad", [-1, 2.5, "yes", None])
def test_a_bad_readout_per_sample_is_named(bad):
    with pytest.raises(ValueError, match="readout_per_sample must be True, False or an int"):
        TPSGDClassifier(readout_per_sample=bad)


@pytest.mark.parametrize("learn", ["one", "many"])
def test_after_its_first_samples_the_readout_learns_with_the_minibatch(learn):
    """``readout_per_sample=8`` with minibatches of 4: the readout steps on each of the first
    8 samples, then only when a minibatch completes, through learn_one and learn_many."""
    model = TPSGDClassifier(hidden_layer_sizes=(4,), batch_size=4, readout_per_sample=8, seed=0)
    data = _stream(16)
    changed = []
    for x, y in data:
        before = _readout(model) if model.network is not None else None
        if learn == "one":
            model.learn_one(x, y)
        else:
            model.learn_many(pd.DataFrame([x]), pd.Series([y]))
        changed.append(before is None or not _same(before, _readout(model)))
    assert changed[:8] == [True] * 8
    assert changed[8:] == [False, False, False, True] * 2  # only at minibatch boundaries


@pytest.mark.parametrize("bad", [0, -0.1, float("inf"), True, "x"])
def test_a_bad_hidden_lr_scale_is_named(bad):
    with pytest.raises(ValueError, match="hidden_lr_scale must be a positive number"):
        TPSGDClassifier(hidden_lr_scale=bad)


@pytest.mark.parametrize("rule", ["forward_grad", "bitflip"])
def test_a_rule_that_trains_the_output_keeps_the_minibatch_readout(rule):
    model = TPSGDClassifier(hidden_layer_sizes=(6,), batch_size=4, rule=rule, seed=0)
    data = _stream(3, n_classes=1)  # (no new class: the output layer keeps its shape)
    model.learn_one(*data[0])
    readout = _readout(model)
    for x, y in data[1:]:
        model.learn_one(x, y)
    assert _same(readout, _readout(model))  # 3 samples buffered: no update yet
    lrs = {g["lr"] for opt in model.network.optimizers.values() for g in opt.param_groups}
    assert len(lrs) == 1  # one rate, as the rule was tuned


def test_the_torch_fallback_takes_the_same_steps(monkeypatch):
    """Where the numpy step cannot run (another device, another optimizer), a torch step of
    the output layer alone replaces it."""
    data = _stream(20)
    params = {"hidden_layer_sizes": (6,), "batch_size": 8, "seed": 0, "readout_solver": "optimizer"}
    numpy_model = TPSGDClassifier(**params)
    for x, y in data:
        numpy_model.learn_one(x, y)
    monkeypatch.setattr("tpsgd_stream.models.base.readout_step", lambda *args: None)
    torch_model = TPSGDClassifier(**params)
    for x, y in data:
        torch_model.learn_one(x, y)
    for a, b in zip(numpy_model.network.parameters(), torch_model.network.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def _plain_readout_step(net, features, target):
    """The per-sample step as first written: the gradient in numpy (a new array per
    operation), then the layer's own optimizer's step on it, which the in-place step must
    reproduce bit for bit."""
    out = net.layers[net.output_index]
    optimizer = net.optimizers[net.output_index]
    weight, bias = out.weight.detach().numpy(), out.bias.detach().numpy()
    z = weight @ features + bias
    e = np.exp(z - z.max())
    delta = (e / e.sum() - target).astype(np.float32)
    out.weight.grad = torch.from_numpy(delta[:, None] * features)
    out.bias.grad = torch.from_numpy(delta)
    with torch.no_grad():
        optimizer.step()
    out.weight.grad = out.bias.grad = None
    return True


def _trained(data, *, fresh_copies=False):
    """A model after ``learn_one`` on ``data``, with the probabilities ``predict_proba_one``
    gave before each sample; ``fresh_copies``: from a new copy of the weights every time."""
    model = TPSGDClassifier(
        hidden_layer_sizes=(16,), batch_size=8, seed=3, readout_solver="optimizer"
    )
    probas = []
    for x, y in data:
        probas.append(model.predict_proba_one(x))
        model.learn_one(x, y)
        if fresh_copies:
            model.invalidate_cache()
    return model, probas


@pytest.mark.parametrize("identity_max", [256, 1])  # targets: rows of an identity, or not
def test_the_estimator_reaches_the_plain_steps_weights_bit_for_bit(monkeypatch, identity_max):
    """300 samples, a third class from sample 120 on (the readout grows midway): the weights,
    the readout's Adam state and every prediction equal those of the plain step."""
    monkeypatch.setattr("tpsgd_stream.models.classifier._IDENTITY_MAX", identity_max)
    data = _stream(300, seed=5, n_classes=2)
    data[120:] = [(x, i % 3) for i, (x, _) in enumerate(data[120:])]
    model, probas = _trained(data)
    with monkeypatch.context() as patch:
        patch.setattr("tpsgd_stream.models.base.readout_step", _plain_readout_step)
        reference, expected = _trained(data, fresh_copies=True)
    net, ref = model.network, reference.network
    assert model._n_updates == reference._n_updates == 300 // 8
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), ref.parameters()))
    out = net.output_index
    for p, q in zip(net.layers[out].parameters(), ref.layers[out].parameters()):
        state, want = net.optimizers[out].state[p], ref.optimizers[out].state[q]
        assert all(torch.equal(state[key], want[key]) for key in want)
    assert probas == expected


def test_a_readout_step_runs_on_one_thread_and_gives_the_setting_back(monkeypatch):
    """The fused Adam call of one sample runs on one thread (a pool only waits on a busy
    machine) and the caller's thread count comes back."""
    net = Network.mlp(3, (5,), 4, seed=0)
    seen = []
    kernel = readout_module._ops.adam_kernel
    monkeypatch.setattr(
        readout_module._ops,
        "adam_kernel",
        lambda *a, **k: seen.append(torch.get_num_threads()) or kernel(*a, **k),
    )
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert readout_step(net, np.ones(5, np.float32), np.eye(4, dtype=np.float32)[1])
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_across_the_per_sample_phase_learn_many_reaches_the_learn_one_model():
    """Past ``readout_per_sample`` the readout is solved once per minibatch (block least
    squares); a class and a feature new after the phase grow the model on both paths alike."""
    data = _stream(60, n_classes=2)
    late = _stream(20, seed=1, n_classes=3)  # a third class...
    late = [({**x, "g": 1.0}, y) for x, y in late]  # ...and a new feature, after the phase
    data += late
    one = TPSGDClassifier(hidden_layer_sizes=(6,), batch_size=8, seed=1, readout_per_sample=24)
    many = TPSGDClassifier(hidden_layer_sizes=(6,), batch_size=8, seed=1, readout_per_sample=24)
    for x, y in data:
        one.learn_one(x, y)
    for start in range(0, len(data), 10):  # (frames of 10 across the minibatches of 8; none
        chunk = data[start : start + 10]  # mixes rows with and without "g": NaN in a frame)
        many.learn_many(pd.DataFrame([x for x, _ in chunk]), pd.Series([y for _, y in chunk]))
    assert set(one.classes) == set(many.classes) == {0, 1, 2}
    assert one.n_inputs == many.n_inputs == 5
    assert one._n_updates == many._n_updates == 10 and one.skipped_updates == 0
    assert _same(list(one.network.parameters()), list(many.network.parameters()))
    net = one.network
    state = net.optimizers[net.output_index].state[net.layers[-1].weight]
    assert state["rls_inverse"].shape == (7, 7)  # (the hidden width + 1)
    assert float(state["step"]) == 0  # (least squares throughout: no optimizer step)
    assert sum(one.predict_one(x) == y for x, y in late[-10:]) >= 5
