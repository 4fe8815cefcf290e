"""Sequence estimators: whole sequences, one step of a stream, bad input, persistence."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from river import checks

from tpsgd_stream.models import TPSGDSequenceClassifier, TPSGDStreamingSequenceClassifier

torch.set_num_threads(1)  # see tests/test_estimators.py


def _sequences(n=64, seed=0, steps=5):
    """Label = the sign of the first step's first feature; the rest is noise."""
    rng = np.random.default_rng(seed)
    data = []
    for _ in range(n):
        y = int(rng.integers(2))
        x = rng.normal(size=(int(rng.integers(2, steps + 1)), 2)) * 0.3
        x[0, 0] = 1.0 if y else -1.0
        data.append((x, y))
    return data


def _regimes(n=600, seed=0):
    rng = np.random.default_rng(seed)
    state, out = 0, []
    for _ in range(n):
        state = state if rng.random() > 0.02 else 1 - state
        out.append(({"a": rng.normal() + (1.0 if state else -1.0), "b": rng.normal()}, state))
    return out


def _snapshot(model):
    net = model.network
    weights = [] if net is None else [p.detach().clone() for p in net.parameters()]
    if isinstance(model, TPSGDSequenceClassifier):
        pending = [(keys, v.tobytes(), y) for keys, v, y in model._buffer]
    else:
        pending = [(x.tobytes(), h.tobytes(), y, t) for x, h, y, t in model._steps]
    return weights, pending, list(model._classes), dict(model._features)


def _same(a, b):
    return (
        len(a[0]) == len(b[0])
        and all(torch.equal(x, y) for x, y in zip(a[0], b[0]))
        and a[1:] == b[1:]
    )


# ------------------------------------------------------------------ whole sequences
def test_learns_to_remember_the_first_step():
    model = TPSGDSequenceClassifier(encoder="elman", hidden_size=16, batch_size=8, lr=3e-2, seed=0)
    data = _sequences(400)
    for x, y in data:
        model.learn_one(x, y)
    correct = sum(model.predict_one(x) == y for x, y in _sequences(100, seed=1))
    assert correct >= 90


def test_lists_of_dicts_and_key_order():
    model = TPSGDSequenceClassifier(encoder="elman", hidden_size=8, batch_size=4, seed=0)
    for x, y in _sequences(16):
        model.learn_one([{"u": a, "v": b} for a, b in x], y)
    steps = [{"u": 0.5, "v": -0.2}, {"u": 0.1, "v": 0.3}]
    proba = model.predict_proba_one(steps)
    assert set(proba) == {0, 1} and abs(sum(proba.values()) - 1) < 1e-9
    assert model.predict_proba_one([dict(reversed(s.items())) for s in steps]) == proba
    # a step without "v" reads it as 0; unknown names are ignored
    assert model.predict_proba_one([{"u": 0.5}]) == model.predict_proba_one(
        [{"u": 0.5, "v": 0.0, "never_seen": 3.0}]
    )


def test_updates_when_the_buffer_is_full_with_mixed_lengths():
    model = TPSGDSequenceClassifier(encoder="elman", hidden_size=8, batch_size=4, seed=0)
    data = _sequences(8)
    for x, y in data[:3]:
        model.learn_one(x, y)
    start = _snapshot(model)[0]
    assert model._n_updates == 0 and len(model._buffer) == 3
    model.learn_one(*data[3])
    assert model._n_updates == 1 and model._buffer == []
    assert not all(torch.equal(a, b) for a, b in zip(start, _snapshot(model)[0]))


def test_new_class_keeps_old_logits():
    model = TPSGDSequenceClassifier(encoder="elman", hidden_size=8, batch_size=4, seed=0)
    for x, y in _sequences(16):
        model.learn_one(x, y)
    probe = np.ones((3, 2))
    with torch.inference_mode():
        before = model.network.forward(torch.ones(1, 3, 2))[0]
    model.learn_one(probe, "new")  # buffered: the readout grows, no update yet
    with torch.inference_mode():
        after = model.network.forward(torch.ones(1, 3, 2))[0]
    assert torch.equal(after[:2], before) and after[2] == 0
    assert set(model.predict_proba_one(probe)) == {0, 1, "new"}


def test_local_rule_never_calls_backward(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("a local rule must not back-propagate through time")

    monkeypatch.setattr(torch.Tensor, "backward", forbidden)
    monkeypatch.setattr(torch.autograd, "backward", forbidden)
    model = TPSGDSequenceClassifier(
        encoder="elman", hidden_size=8, batch_size=4, num_layers=2, seed=0
    )
    for x, y in _sequences(8):
        model.learn_one(x, y)
    assert model._n_updates == 2


@pytest.mark.parametrize(
    "x, error, match",
    [
        (np.zeros(5), ValueError, r"shape \(T, d\).*reshape"),
        (np.zeros((2, 3, 2)), ValueError, r"shape \(T, d\)"),
        (np.zeros((4, 3)), ValueError, "2 features per step; got an array of 3"),
        (np.zeros((0, 2)), ValueError, "empty"),
        ([], ValueError, "empty"),
        (np.array([[0.0, 1.0], [np.nan, 0.0]]), ValueError, r"NaN, infinite .*step\(s\) \[1\]"),
        ([{"a": 1.0}, {"a": np.inf}], ValueError, "NaN, infinite"),
        ({"a": 1.0}, TypeError, "list of dicts"),
        ([{"a": "x"}], TypeError, "real number"),
        (np.array([["a", "b"]]), TypeError, "numeric"),
    ],
)
def test_bad_sequences_are_named_and_change_nothing(x, error, match):
    model = TPSGDSequenceClassifier(encoder="elman", hidden_size=8, batch_size=4, seed=0)
    for seq, y in _sequences(6):
        model.learn_one(seq, y)
    before = _snapshot(model)
    with pytest.raises(error, match=match):
        model.learn_one(x, 1)
    with pytest.raises(error, match=match):
        model.predict_proba_one(x)
    assert _same(before, _snapshot(model))


def test_bad_label_changes_nothing():
    model = TPSGDSequenceClassifier(encoder="elman", hidden_size=8, batch_size=4, seed=0)
    with pytest.raises(ValueError, match="label"):
        model.learn_one(np.zeros((2, 2)), None)
    assert model.network is None and model._features == {}


@pytest.mark.parametrize(
    "params, message",
    [
        ({"rule": "nope"}, "rule"),
        ({"hidden_size": 0}, "hidden_size"),
        ({"num_layers": 0}, "num_layers"),
        ({"credit_steps": 0}, "credit_steps"),
        ({"readout_hidden": [8]}, "readout_hidden"),
        ({"activation": "relu"}, "activation"),
        ({"optimizer": "rmsprop"}, "optimizer"),
        ({"lr": 0.0}, "lr"),
        ({"batch_size": 0}, "batch_size"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_parameters(params, message):
    with pytest.raises(ValueError, match=message):
        TPSGDSequenceClassifier(**params)


def test_save_load_and_pickle_round_trips(tmp_path):
    model = TPSGDSequenceClassifier(
        encoder="elman", hidden_size=8, batch_size=4, bidirectional=True, seed=0
    )
    data = _sequences(30)
    for x, y in data[:10]:  # two updates, two sequences pending
        model.learn_one([{"f": a, "g": b} for a, b in x], y)
    model.save(tmp_path / "m.pt")
    loaded = TPSGDSequenceClassifier.load(tmp_path / "m.pt")
    pickled = pickle.loads(pickle.dumps(model))
    for copy in (loaded, pickled):
        assert _same(_snapshot(model), _snapshot(copy))
    for x, y in data[10:]:  # the optimizer state and buffer carry on identically
        for m in (model, loaded, pickled):
            m.learn_one([{"f": a, "g": b} for a, b in x], y)
    probe = [{"f": 0.3, "g": 0.1}]
    assert model.predict_proba_one(probe) == loaded.predict_proba_one(probe)
    assert model.predict_proba_one(probe) == pickled.predict_proba_one(probe)
    with pytest.raises(ValueError, match="TPSGDStreamingSequenceClassifier.load|not a"):
        TPSGDStreamingSequenceClassifier.load(tmp_path / "m.pt")


NO_DATA_CHECKS = {  # river's checks that feed dicts as samples: a sequence model takes lists
    "check_learn_one",
    "check_pickling",
    "check_shuffle_features_no_impact",
    "check_emerging_features",
    "check_disappearing_features",
    "check_radically_disappearing_features",
    "check_predict_one_pure",
    "check_predict_one_before_any_learn",
    "check_no_state_aliasing_with_input",
    "check_clone_is_independent",
    "check_seeding_is_idempotent",
    "check_predict_proba_one",
    "check_classifier_tracks_seen_labels",
    "check_bounded_memory_growth",
}


def _river_cases():
    for cls in (TPSGDSequenceClassifier, TPSGDStreamingSequenceClassifier):
        for i, params in enumerate(cls._unit_test_params()):
            estimator = cls(**params)
            for check in checks.yield_checks(estimator):
                if cls is TPSGDSequenceClassifier and check.__name__ in NO_DATA_CHECKS:
                    continue
                if i > 0 and check.__name__ == "check_bounded_memory_growth":
                    continue  # the slowest check (seconds); the first parameter set runs it
                    # and test_stream_learns_regimes_with_bounded_memory covers windows
                yield pytest.param(estimator, check, id=f"{cls.__name__}{i}-{check.__name__}")


@pytest.mark.parametrize("estimator, check", list(_river_cases()))
def test_river_check(estimator, check):
    check(estimator.clone())


# ---------------------------------------------------------------------- streaming
def test_stream_learns_regimes_with_bounded_memory():
    model = TPSGDStreamingSequenceClassifier(
        encoder="elman", hidden_size=16, batch_size=8, lr=1e-2, seed=0
    )
    data = _regimes(2400)
    correct = 0
    for t, (x, y) in enumerate(data):
        correct += t >= 1600 and model.predict_one(x) == y
        model.learn_one(x, y)
        if t == 800:
            memory = model._raw_memory_usage
    assert correct / 800 > 0.92  # (a memoryless rule on x["a"] alone reaches 0.82)
    assert len(model._steps) < model.batch_size
    assert model._raw_memory_usage <= memory + 2_000


def test_stream_prediction_has_no_side_effects_and_state_is_carried():
    model = TPSGDStreamingSequenceClassifier(encoder="elman", hidden_size=8, batch_size=4, seed=0)
    for x, y in _regimes(10):
        model.learn_one(x, y)
    h = model._h.copy()
    p = model.predict_proba_one({"a": 1.0, "b": 0.0})
    assert np.array_equal(model._h, h) and model.predict_proba_one({"a": 1.0, "b": 0.0}) == p
    model.learn_one({"a": 1.0, "b": 0.0}, 1)
    assert not np.array_equal(model._h, h)  # the state moved on
    assert model.predict_proba_one({"a": 1.0, "b": 0.0}) != p


def test_stream_window_resets_the_state():
    model = TPSGDStreamingSequenceClassifier(
        encoder="elman", hidden_size=8, batch_size=4, window=3, seed=0
    )
    for i, (x, y) in enumerate(_regimes(9)):
        model.learn_one(x, y)
        assert model._t == (i + 1) % 3
        assert (not np.any(model._h)) == ((i + 1) % 3 == 0)


@pytest.mark.parametrize(
    "x, error, match",
    [
        ({"a": np.nan}, ValueError, "NaN, infinite"),
        ({"a": "high"}, TypeError, "real number"),
        (np.zeros(2), TypeError, "dict"),
    ],
)
def test_stream_bad_steps_change_nothing(x, error, match):
    model = TPSGDStreamingSequenceClassifier(encoder="elman", hidden_size=8, batch_size=4, seed=0)
    for step, y in _regimes(6):
        model.learn_one(step, y)
    before, h = _snapshot(model), model._h.copy()
    with pytest.raises(error, match=match):
        model.learn_one(x, 0)
    assert _same(before, _snapshot(model)) and np.array_equal(h, model._h)


def test_stream_rejects_bptt_and_bad_window():
    with pytest.raises(ValueError, match="bp"):
        TPSGDStreamingSequenceClassifier(rule="bp")
    with pytest.raises(ValueError, match="window"):
        TPSGDStreamingSequenceClassifier(window=0)


def _saved_elman_stream(tmp_path) -> tuple[TPSGDStreamingSequenceClassifier, list]:
    """An Elman stream model saved to ``tmp_path / "s.pt"`` mid-buffer, and its data."""
    model = TPSGDStreamingSequenceClassifier(
        encoder="elman", hidden_size=8, batch_size=4, window=5, seed=0
    )
    data = _regimes(40)
    for x, y in data[:18]:
        model.learn_one(x, y)
    model.save(tmp_path / "s.pt")
    return model, data


def test_stream_save_load_mid_buffer_continues_identically(tmp_path):
    model, data = _saved_elman_stream(tmp_path)
    loaded = TPSGDStreamingSequenceClassifier.load(tmp_path / "s.pt")
    for x, y in data[18:]:
        model.learn_one(x, y)
        loaded.learn_one(x, y)
    assert _same(_snapshot(model), _snapshot(loaded))
    assert np.array_equal(model._h, loaded._h)


@pytest.mark.parametrize(
    "cls, rule",
    [
        (TPSGDSequenceClassifier, "local_head"),
        (TPSGDSequenceClassifier, "forward_grad"),
        (TPSGDStreamingSequenceClassifier, "local_head"),
        (TPSGDStreamingSequenceClassifier, "dfa"),  # no output error one step at a time
        (TPSGDStreamingSequenceClassifier, "sdfa"),
    ],
)
def test_rules_a_sequence_model_cannot_train_with_are_refused_when_built(cls, rule):
    with pytest.raises(ValueError, match=f"{cls.__name__}: unsupported rule '{rule}'"):
        cls(rule=rule)


def test_bidirectional_must_be_a_bool():
    with pytest.raises(ValueError, match="bidirectional must be True or False"):
        TPSGDSequenceClassifier(bidirectional="no")


def _old_layout_file(path, old_path):
    """The file at ``path`` rewritten as a release before ``weight_x`` was (hidden, in) wrote
    it: each cell's ``weight_x`` and its Adam moments transposed, no ``weight_layout`` entry,
    the checksum signed again."""
    from tpsgd_stream.models import _persistence

    payload = torch.load(path, weights_only=True)
    assert payload.pop("weight_layout") == 2
    payload.pop("checksum")
    n_cells = 0
    for key, value in payload["network"].items():
        if key.startswith("cells.") and key.endswith(".weight_x"):
            payload["network"][key] = value.T.contiguous()
            n_cells += 1
    for opt in payload["optimizers"][:n_cells]:  # a cell's weight_x is its first parameter
        state = opt["state"][opt["param_groups"][0]["params"][0]]
        for key in ("exp_avg", "exp_avg_sq"):
            state[key] = state[key].T.contiguous()
    payload["checksum"] = _persistence.digest(payload)
    torch.save(payload, old_path)


@pytest.mark.parametrize("hidden", [8, 2])  # 2: weight_x is square, only the entry tells
def test_old_layout_file_loads_and_trains_identically(tmp_path, hidden):
    model = TPSGDSequenceClassifier(
        encoder="elman", hidden_size=hidden, batch_size=4, bidirectional=True, seed=0
    )
    data = _sequences(30)
    for x, y in data[:10]:
        model.learn_one([{"f": a, "g": b} for a, b in x], y)
    model.save(tmp_path / "m.pt")
    _old_layout_file(tmp_path / "m.pt", tmp_path / "old.pt")
    loaded = TPSGDSequenceClassifier.load(tmp_path / "old.pt")
    assert loaded.network.cells[0].weight_x.shape == (hidden, 2)
    assert _same(_snapshot(model), _snapshot(loaded))
    probe = [{"f": 0.3, "g": 0.1}, {"f": -0.2, "g": 0.4}]
    assert model.predict_proba_one(probe) == loaded.predict_proba_one(probe)
    for x, y in data[10:]:  # Adam's moments were transposed with the weights
        for m in (model, loaded):
            m.learn_one([{"f": a, "g": b} for a, b in x], y)
    assert _same(_snapshot(model), _snapshot(loaded))
    assert model.predict_proba_one(probe) == loaded.predict_proba_one(probe)


def test_stream_old_layout_file_loads_and_trains_identically(tmp_path):
    model, data = _saved_elman_stream(tmp_path)
    _old_layout_file(tmp_path / "s.pt", tmp_path / "old.pt")
    loaded = TPSGDStreamingSequenceClassifier.load(tmp_path / "old.pt")
    assert _same(_snapshot(model), _snapshot(loaded))
    for x, y in data[18:]:
        model.learn_one(x, y)
        loaded.learn_one(x, y)
    assert _same(_snapshot(model), _snapshot(loaded))
    assert model.predict_proba_one(data[0][0]) == loaded.predict_proba_one(data[0][0])
