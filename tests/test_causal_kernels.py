"""Causal random kernels: incremental features against a direct computation over the window,
the streaming classifier's default front-end learning what a memoryless model cannot, bad
input, persistence."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from river import linear_model, preprocessing

from tpsgd_stream.engine.causal_kernels import CausalKernelReadout, CausalKernels
from tpsgd_stream.engine.guard import NonFiniteUpdateError
from tpsgd_stream.models import TPSGDStreamingSequenceClassifier

torch.set_num_threads(1)  # see tests/test_estimators.py


def _direct_features(ck: CausalKernels, stream: np.ndarray, t: int) -> np.ndarray:
    """PPV features after step ``t`` from the whole stream: every kernel convolved causally
    (zeros before step 0) by ``conv1d``, then the proportion of the last ``lookback``
    outputs up to ``t`` above each bias, in the transform's feature order."""
    rk = ck.kernels
    x = torch.from_numpy(stream[: t + 1].T.copy()).double()[None]  # (1, c, t + 1)
    window = slice(max(0, t + 1 - ck.lookback), t + 1)
    features = []
    for i, dilation in enumerate(rk.dilations):
        weights = rk.weights.double()[:, None, :] * rk.channel_masks[i].double()[:, :, None]
        padded = torch.nn.functional.pad(x, (8 * dilation, 0))
        out = torch.nn.functional.conv1d(padded, weights, dilation=dilation)[0]  # (84, t + 1)
        seen = out[:, window]
        bias = rk.biases[i].double()  # (84, n_biases)
        features.append((seen[:, None, :] > bias[:, :, None]).double().mean(2).flatten())
    return torch.cat(features).numpy()


@pytest.mark.parametrize("n_channels", [1, 3])
def test_incremental_features_equal_a_direct_computation_over_the_window(n_channels):
    rng = np.random.default_rng(n_channels)
    stream = rng.integers(-5, 6, size=(100, n_channels)).astype(np.float64)  # exact sums
    ck = CausalKernels(n_channels, lookback=40, n_features=336, seed=3)
    ck.fit(stream[:40])
    assert max(ck.kernels.dilations) > 1  # (dilated taps are exercised)
    for t, row in enumerate(stream):
        peeked = ck.peek(row)
        stepped = ck.step(row)
        np.testing.assert_array_equal(peeked, stepped)
        np.testing.assert_allclose(stepped, _direct_features(ck, stream, t), rtol=0, atol=1e-12)


def test_peek_changes_nothing_and_reset_starts_the_stream_again():
    rng = np.random.default_rng(0)
    stream = rng.normal(size=(40, 1))
    ck = CausalKernels(1, lookback=8, n_features=168, seed=0)
    ck.fit(stream)
    first = [ck.step(row) for row in stream[:10]]
    state = ck.state_dict()
    ck.peek(stream[20])
    assert all(torch.equal(v, ck.state_dict()[k]) for k, v in state.items())
    ck.reset()
    again = [ck.step(row) for row in stream[:10]]
    np.testing.assert_array_equal(np.stack(first), np.stack(again))


def test_transform_state_round_trip_continues_identically():
    rng = np.random.default_rng(1)
    stream = rng.normal(size=(60, 2))
    ck = CausalKernels(2, lookback=10, n_features=168, seed=5)
    ck.fit(stream[:20])
    for row in stream[:33]:
        ck.step(row)
    twin = CausalKernels.from_state(ck.state_dict())
    for mine, theirs in zip(ck.kernels.biases, twin.kernels.biases, strict=True):
        assert torch.equal(mine, theirs)
    for row in stream[33:]:
        np.testing.assert_array_equal(ck.step(row), twin.step(row))


def test_transform_refuses_a_step_of_the_wrong_width_or_before_fit():
    ck = CausalKernels(2, lookback=8, n_features=84)
    with pytest.raises(RuntimeError, match="fit"):
        ck.step(np.zeros(2))
    ck.fit(np.ones((8, 2)))
    with pytest.raises(ValueError, match="2 channels"):
        ck.step(np.zeros(3))
    assert ck.n_steps == 0


def test_readout_undoes_a_non_finite_step():
    head = CausalKernelReadout(1, 2, lookback=4, n_features=84, warmup=4, seed=0)
    ready = [head.step(np.array([v]), v > 0) for v in (-1.0, 1.0, -2.0, 2.0)][-1]
    f = torch.from_numpy(np.stack([r for r, _ in ready]))
    head.train_step(f, head.one_hot(torch.tensor([0, 1, 0, 1])))
    before = {k: v.clone() for k, v in head.state_dict().items()}
    with pytest.raises(NonFiniteUpdateError):
        head.train_step(f * np.inf, head.one_hot(torch.tensor([0, 1, 0, 1])))
    after = head.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


# --------------------------------------------------------------------- the estimator
def _rhythms(n: int, seed: int = 0):
    """Two rhythms in turn, a change every ~200 steps; the value alone says nothing of which."""
    rng = np.random.default_rng(seed)
    state, phase, out = 0, 0.0, []
    for _ in range(n):
        state = state if rng.random() > 0.005 else 1 - state
        phase += 0.25 if state else 1.2
        out.append(({"v": np.sin(phase) + 0.3 * rng.normal()}, state))
    return out


def test_causal_kernels_learn_a_rhythm_a_memoryless_model_cannot():
    data = _rhythms(4000)
    model = TPSGDStreamingSequenceClassifier(lookback=32, n_features=336, seed=0)
    memoryless = preprocessing.StandardScaler() | linear_model.SoftmaxRegression()
    correct = baseline = 0
    for t, (x, y) in enumerate(data):
        if t >= 3000:
            correct += model.predict_one(x) == y
            baseline += memoryless.predict_one(x) == y
        model.learn_one(x, y)
        memoryless.learn_one(x, y)
    assert baseline / 1000 < 0.7
    assert correct / 1000 > 0.9


def test_it_is_the_default_and_the_elman_front_end_stays_reachable():
    assert TPSGDStreamingSequenceClassifier().encoder == "causal_kernels"
    model = TPSGDStreamingSequenceClassifier(encoder="elman", hidden_size=4, seed=0)
    model.learn_one({"a": 1.0}, 0)
    assert model.network.cells[0].weight_h.shape == (4, 4)


def test_memory_is_bounded_by_lookback_and_batch():
    model = TPSGDStreamingSequenceClassifier(lookback=16, n_features=168, batch_size=8, seed=0)
    data = _rhythms(1200)
    for t, (x, y) in enumerate(data):
        model.learn_one(x, y)
        if t == 400:
            memory = model._raw_memory_usage
    assert len(model._steps) < model.batch_size
    assert model._raw_memory_usage <= memory + 1_000


@pytest.mark.parametrize(
    "params, match",
    [
        ({"encoder": "lstm"}, "unknown encoder"),
        ({"lookback": 0}, "lookback"),
        ({"n_features": 50}, "n_features"),
        ({"window": 8}, "window is for encoder='elman'"),
        ({"readout_hidden": (8,)}, "readout_hidden is for encoder='elman'"),
        ({"lr": -1.0}, "lr"),
    ],
)
def test_bad_parameters_are_refused(params, match):
    with pytest.raises(ValueError, match=match):
        TPSGDStreamingSequenceClassifier(**params)


@pytest.mark.parametrize(
    "x, error, match",
    [
        ({"v": np.nan}, ValueError, "NaN, infinite"),
        ({"v": "high"}, TypeError, "real number"),
        (np.zeros(2), TypeError, "dict"),
    ],
)
@pytest.mark.parametrize("n_steps", [5, 30])  # warming up, then running
def test_bad_steps_change_nothing(x, error, match, n_steps):
    model = TPSGDStreamingSequenceClassifier(lookback=16, n_features=84, batch_size=4, seed=0)
    for step, y in _rhythms(n_steps):
        model.learn_one(step, y)
    before = pickle.dumps(model)
    with pytest.raises(error, match=match):
        model.learn_one(x, 0)
    with pytest.raises(error, match=match):
        model.predict_one(x)
    assert pickle.dumps(model) == before


def _feed(model, data, start=0):
    """Learn the steps, every seventh one observed without its label."""
    for i, (x, y) in enumerate(data, start):
        if i % 7 == 3:
            model.observe_one(x)
        else:
            model.learn_one(x, y)


@pytest.mark.parametrize("encoder", ["causal_kernels", "elman"])
def test_observe_one_moves_the_state_on_and_learns_nothing(encoder):
    model = TPSGDStreamingSequenceClassifier(
        encoder=encoder, lookback=8, n_features=84, hidden_size=4, batch_size=4, seed=0
    )
    for t, (x, _) in enumerate(_rhythms(30)):
        model.learn_one(x, t // 10 % 2)
    probe = {"v": 0.5}
    before, learned = model.predict_proba_one(probe), pickle.dumps(model.network.state_dict())
    updates, pending = model._n_updates, len(model._steps)
    for x, _ in _rhythms(10, seed=1):
        model.observe_one(x)
    assert model._n_updates == updates and len(model._steps) == pending
    assert model.predict_proba_one(probe) != before  # the state moved on
    if encoder == "elman":  # (the kernels' rings are in their state dict)
        assert pickle.dumps(model.network.state_dict()) == learned


@pytest.mark.parametrize("n_steps", [7, 45])  # mid warm-up, then mid batch
def test_save_load_and_pickle_continue_identically(tmp_path, n_steps):
    model = TPSGDStreamingSequenceClassifier(lookback=16, n_features=168, batch_size=6, seed=0)
    data = _rhythms(120, seed=2)
    _feed(model, data[:n_steps])
    model.save(tmp_path / "s.pt")
    copies = [
        TPSGDStreamingSequenceClassifier.load(tmp_path / "s.pt"),
        pickle.loads(pickle.dumps(model)),
    ]
    for i, (x, y) in enumerate(data[n_steps:], n_steps):
        expected = model.predict_proba_one(x)
        assert all(c.predict_proba_one(x) == expected for c in copies)
        for m in (model, *copies):
            _feed(m, [(x, y)], start=i)
    assert model._n_updates > 3
    probe = {"v": 0.25}
    assert all(c.predict_proba_one(probe) == model.predict_proba_one(probe) for c in copies)
