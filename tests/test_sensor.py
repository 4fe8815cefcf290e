"""The random-kernel encoder: the transform against numpy, seeds, the array layout, saving."""

from __future__ import annotations

import itertools
import pickle

import numpy as np
import pytest
import torch

from tpsgd_stream.engine.random_kernels import RandomKernels, dilations_for
from tpsgd_stream.models import TPSGDSequenceClassifier, _persistence

torch.set_num_threads(1)  # see tests/test_estimators.py


# ------------------------------------------------------------------------- the transform
def _numpy_features(rk: RandomKernels, x: np.ndarray, lengths: list[int]) -> np.ndarray:
    """PPV features computed directly: loops over kernels, biases and positions."""
    taps = list(itertools.combinations(range(9), 3))
    rows = []
    for n, length in enumerate(lengths):
        seq = x[n, :, :length].astype(np.float64)
        row = []
        for i, dilation in enumerate(rk.dilations):
            mask = rk.channel_masks[i].numpy().astype(bool)
            biases = rk.biases[i].numpy().astype(np.float64)
            pad = 4 * dilation
            for k, chosen in enumerate(taps):
                w = np.full(9, -1.0)
                w[list(chosen)] = 2.0
                signal = np.concatenate([np.zeros(pad), seq[mask[k]].sum(0), np.zeros(pad)])
                conv = np.array(
                    [sum(w[j] * signal[t + j * dilation] for j in range(9)) for t in range(length)]
                )
                if (i + k) % 2 == 1 and length > 2 * pad:  # pooled away from the edges
                    conv = conv[pad : length - pad]
                row += [[(conv > b + tie).mean() for tie in (1e-5, -1e-5)] for b in biases[k]]
        rows.append(row)
    return np.array(rows)


def test_features_equal_a_direct_numpy_computation_on_ragged_sequences():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 3, 40)).astype(np.float32)
    lengths = [40, 23, 9]  # the last shorter than most kernels' span
    for n, length in enumerate(lengths):
        x[n, :, length:] = 0.0
    rk = RandomKernels(n_channels=3, length=40, n_features=168, seed=1)
    rk.fit(torch.from_numpy(x), torch.tensor(lengths))
    ours = rk.transform(torch.from_numpy(x), torch.tensor(lengths)).numpy()
    reference = _numpy_features(rk, x, lengths)  # (3, 168, 2): below and above each bias
    assert ours.shape == reference.shape[:2] == (3, 168)
    # float32 against float64 sums: an output within 1e-5 of its bias (such as the 0 of a
    # kernel wholly in the padding, against a bias of 0) may fall either side
    assert ((ours >= reference[..., 0] - 1e-6) & (ours <= reference[..., 1] + 1e-6)).all()
    assert np.mean(reference[..., 0] == reference[..., 1]) > 0.95
    # each sequence alone gives its own row of the batch
    for n, length in enumerate(lengths):
        alone = rk.transform(torch.from_numpy(x[n : n + 1, :, :length]))
        np.testing.assert_allclose(alone.numpy()[0], ours[n], atol=1e-6)


def test_kernels_regenerate_from_the_seed_and_the_state_holds_none():
    x = torch.randn(8, 4, 60)
    a = RandomKernels(4, 60, n_features=840, seed=3)
    b = RandomKernels(4, 60, n_features=840, seed=3)
    c = RandomKernels(4, 60, n_features=840, seed=4)
    for rk in (a, b, c):
        rk.fit(x)
    assert torch.equal(a.transform(x), b.transform(x))
    assert not all(torch.equal(p, q) for p, q in zip(a.channel_masks, c.channel_masks))
    state = a.state_dict()
    tensors = [v for v in state["biases"]] + [v for v in state.values() if torch.is_tensor(v)]
    assert sum(t.numel() for t in tensors) == a.n_features  # the biases, nothing else
    assert torch.equal(RandomKernels.from_state(state).transform(x), a.transform(x))


def test_dilations_span_the_length_and_share_out_the_features():
    dilations, per = dilations_for(2000, 119)
    assert dilations[0] == 1 and 8 * dilations[-1] <= 1999 < 8 * 2 * dilations[-1]
    assert sum(per) == 119 and len(dilations) == len(per)


# ------------------------------------------------------------------ the sequence model
def _motif_task(n, seed, length=300):
    """Label 1: a short motif occurs somewhere in a noisy sequence; 0: noise alone."""
    rng = np.random.default_rng(seed)
    motif = 1.5 * np.array([0.0, 1.0, 2.0, 1.0, 0.0, -1.0, -2.0, -1.0, 0.0])
    x = rng.normal(size=(n, 1, length)).astype(np.float32)
    y = rng.integers(2, size=n)
    for i in np.flatnonzero(y):
        start = rng.integers(length - len(motif))
        x[i, 0, start : start + len(motif)] += motif
    return x, y


def _accuracy(model, x, y):
    return float((model.predict_many(x).to_numpy() == y).mean())


def test_default_finds_a_motif_anywhere_and_a_last_state_elman_does_not():
    x, y = _motif_task(200, seed=0)
    x_test, y_test = _motif_task(200, seed=1)
    default = TPSGDSequenceClassifier(seed=0)
    elman = TPSGDSequenceClassifier(encoder="elman", seed=0)
    for _ in range(2):
        default.learn_many(x, y)
        elman.learn_many(x, y)
    assert _accuracy(default, x_test, y_test) >= 0.75  # measured: 0.785 (ridge on the same
    # features: 0.805)
    assert _accuracy(elman, x_test, y_test) <= 0.6  # measured: 0.5


def _learned_state(model):
    return {k: v.clone() for k, v in model._net.state_dict().items()}


def test_learn_many_on_arrays_and_ragged_lists_equals_learn_one():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 2, 50))
    y = rng.integers(3, size=20)
    ragged = [rng.normal(size=(int(rng.integers(20, 60)), 2)) for _ in range(20)]
    for many_input, one_input in ((x, [case.T for case in x]), (ragged, ragged)):
        one = TPSGDSequenceClassifier(n_features=168, batch_size=4, seed=0)
        many = TPSGDSequenceClassifier(n_features=168, batch_size=4, seed=0)
        for seq, label in zip(one_input, y):
            one.learn_one(seq, label)
        many.learn_many(many_input, y)
        a, b = _learned_state(one), _learned_state(many)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        probe = one_input[:5]
        expected = [one.predict_proba_one(seq) for seq in probe]
        got = many.predict_proba_many(probe).to_dict("records")
        assert all(e.keys() == g.keys() for e, g in zip(expected, got))
        for e, g in zip(expected, got):
            np.testing.assert_allclose(list(g.values()), [e[k] for k in g], atol=1e-6)
        assert many.predict_many(probe).tolist() == [one.predict_one(s) for s in probe]


@pytest.mark.parametrize(
    "x, error, match",
    [
        (np.zeros((4, 50)), ValueError, r"3-D array .*X\[:, None, :\]"),
        (np.zeros((2, 1, 3, 50)), ValueError, "3-D array"),
        ([np.zeros(50)], ValueError, r"sequence 0 .*\(T, d\)"),
        ("abc", TypeError, "3-D numpy array"),
        (np.zeros((2, 3, 50)), ValueError, "2 features per step; got an array of 3"),
    ],
)
def test_bad_arrays_are_refused_before_anything_changes(x, error, match):
    model = TPSGDSequenceClassifier(n_features=168, batch_size=4, seed=0)
    model.learn_many(np.random.default_rng(0).normal(size=(6, 2, 50)), [0, 1, 0, 1, 0, 1])
    before = _learned_state(model), len(model._buffer)
    with pytest.raises(error, match=match):
        model.learn_many(x, [0] * 2)
    with pytest.raises(error, match=match):
        model.predict_many(x)
    after = _learned_state(model), len(model._buffer)
    assert all(torch.equal(before[0][k], after[0][k]) for k in before[0])
    assert before[1] == after[1]


def test_a_bad_sequence_late_in_a_batch_stops_the_whole_batch():
    model = TPSGDSequenceClassifier(n_features=168, batch_size=2, seed=0)
    good = [np.zeros((30, 1))] * 3
    with pytest.raises(ValueError, match="NaN"):
        model.learn_many([*good, np.full((30, 1), np.nan)], [0, 1, 0, 1])
    with pytest.raises(ValueError, match="label"):
        model.learn_many(good, [0, None, 1])
    assert model._net is None and model._classes == []


def test_save_load_and_pickle_of_the_kernel_encoder_continue_identically(tmp_path):
    x, y = _motif_task(30, seed=0, length=80)
    model = TPSGDSequenceClassifier(n_features=168, batch_size=4, seed=0)
    model.learn_many(x[:10], y[:10])  # two updates, two pending
    model.save(tmp_path / "m.pt")
    loaded = TPSGDSequenceClassifier.load(tmp_path / "m.pt")
    pickled = pickle.loads(pickle.dumps(model))
    saved = torch.load(tmp_path / "m.pt", weights_only=True)
    assert not any(k.startswith("kernels.weight") for k in saved["network"])
    assert saved["params"]["encoder"] == "random_kernels"
    for copy in (model, loaded, pickled):
        copy.learn_many(x[10:], y[10:])
    reference = _learned_state(model)
    for copy in (loaded, pickled):
        state = _learned_state(copy)
        assert all(torch.equal(reference[k], state[k]) for k in reference)
        assert len(copy._buffer) == len(model._buffer)
    assert model.predict_many(x).tolist() == loaded.predict_many(x).tolist()


def test_files_saved_before_the_encoder_parameter_load_as_elman(tmp_path):
    model = TPSGDSequenceClassifier(encoder="elman", hidden_size=8, batch_size=4, seed=0)
    model.learn_many(np.zeros((4, 1, 5)), [0, 1, 0, 1])
    model.save(tmp_path / "m.pt")
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    del payload["params"]["encoder"], payload["params"]["n_features"]  # as a file of before
    payload["checksum"] = _persistence.digest(payload)
    torch.save(payload, tmp_path / "old.pt")
    old = TPSGDSequenceClassifier.load(tmp_path / "old.pt")
    assert old.encoder == "elman"
    probe = np.ones((3, 1))
    assert old.predict_proba_one(probe) == model.predict_proba_one(probe)


def test_the_local_rule_never_calls_backward_and_bp_gives_the_same_step(monkeypatch):
    x, y = _motif_task(16, seed=0, length=60)
    bp = TPSGDSequenceClassifier(n_features=168, batch_size=4, rule="bp", seed=0)
    bp.learn_many(x, y)

    def forbidden(*args, **kwargs):
        raise AssertionError("a local rule must not back-propagate")

    monkeypatch.setattr(torch.Tensor, "backward", forbidden)
    monkeypatch.setattr(torch.autograd, "backward", forbidden)
    local = TPSGDSequenceClassifier(n_features=168, batch_size=4, seed=0)
    local.learn_many(x, y)
    torch.testing.assert_close(local._net.weight, bp._net.weight, rtol=1e-4, atol=1e-5)


def test_held_memory_does_not_grow_with_sequence_length():
    held = []
    for length in (100, 1000):
        x, y = _motif_task(8, seed=0, length=length)
        model = TPSGDSequenceClassifier(n_features=840, batch_size=4, seed=0)
        model.learn_many(x, y)
        assert model._buffer == []
        held.append(model._tensor_bytes())  # biases, moments, readout: no kernel, no buffer
    assert held[0] == held[1] > 0


def test_new_class_keeps_the_old_scores_and_unknown_encoder_is_refused():
    x, y = _motif_task(8, seed=0, length=40)
    model = TPSGDSequenceClassifier(n_features=168, batch_size=4, seed=0)
    model.learn_many(x, y)
    before = model._net.forward(torch.from_numpy(x[:2].transpose(0, 2, 1)))
    model.learn_one(x[0].T, "new")  # buffered: only the readout grows
    after = model._net.forward(torch.from_numpy(x[:2].transpose(0, 2, 1)))
    assert torch.equal(after[:, :2], before) and not after[:, 2].any()
    with pytest.raises(ValueError, match="encoder"):
        TPSGDSequenceClassifier(encoder="lstm")
    with pytest.raises(ValueError, match="readout_hidden is for encoder='elman'"):
        TPSGDSequenceClassifier(readout_hidden=(8,))
    with pytest.raises(ValueError, match="n_features"):
        TPSGDSequenceClassifier(n_features=10)
