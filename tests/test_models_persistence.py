"""Pickle and save/load: identical predictions, identical continued learning, clear errors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from tpsgd_stream.models import TPSGDClassifier, TPSGDRegressor, _persistence

torch.set_num_threads(1)  # see tests/test_estimators.py


def _stream(n, seed=0, labels=(0, 1, 2)):
    rng = np.random.default_rng(seed)
    for i in range(n):
        x = {f"f{j}": float(v) for j, v in enumerate(rng.normal(size=4))}
        if i % 7 == 0:
            del x["f2"]
        yield x, labels[int(x["f0"] > 0) + int(x["f1"] > 0.5)]


def _regression_stream(n, seed=0):
    for x, y in _stream(n, seed):
        yield x, 100.0 + 10.0 * x["f0"] + y


CASES = [
    (TPSGDClassifier, _stream),
    (TPSGDRegressor, _regression_stream),
    (TPSGDClassifier, lambda n, seed=0: _stream(n, seed, labels=("a", np.int64(5), True))),
]


def _predictions(model, data):
    if isinstance(model, TPSGDClassifier):
        return [model.predict_proba_one(x) for x, _ in data]
    return [model.predict_one(x) for x, _ in data]


def _weights(model):
    return [p.detach().clone() for p in model.network.parameters()]


def _same(a, b):
    assert _predictions(a, PROBE) == _predictions(b, PROBE)
    assert all(torch.equal(p, q) for p, q in zip(_weights(a), _weights(b)))


PROBE = list(_stream(20, seed=9))


@pytest.mark.parametrize("cls, stream", CASES)
def test_pickle_round_trip_predicts_and_learns_identically(cls, stream):
    model = cls(seed=0, batch_size=8)
    for x, y in stream(45):  # 5 samples left in the buffer
        model.learn_one(x, y)
    copy = pickle.loads(pickle.dumps(model))
    _same(model, copy)
    for x, y in stream(40, seed=1):
        model.learn_one(x, y)
        copy.learn_one(x, y)
    _same(model, copy)


@pytest.mark.parametrize("cls, stream", CASES)
def test_save_load_predicts_and_learns_identically(cls, stream, tmp_path):
    model = cls(seed=0, batch_size=8)
    for x, y in stream(45):
        model.learn_one(x, y)
    path = tmp_path / "model.pt"
    model.save(path)
    loaded = cls.load(path)
    assert repr(loaded) == repr(model)
    _same(model, loaded)
    for x, y in stream(40, seed=1):
        model.learn_one(x, y)
        loaded.learn_one(x, y)
    _same(model, loaded)
    if cls is TPSGDClassifier:
        assert [type(c) for c in loaded._classes] == [type(c) for c in model._classes]


def test_saved_file_loads_with_weights_only(tmp_path):
    model = TPSGDClassifier(rule="local_head", seed=0)
    for x, y in _stream(40):
        model.learn_one(x, y)
    model.save(tmp_path / "m.pt")
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    assert payload["format"] == "tpsgd-stream" and payload["version"] == _persistence.FORMAT_VERSION
    assert payload["params"]["rule"] == "local_head"
    assert set(payload["network"]) == {
        "layers.0.weight",
        "layers.0.bias",
        "layers.1.weight",
        "layers.1.bias",
        "heads.0",  # the default rule's learned local head of the hidden layer
    }


def test_file_saved_under_an_old_rule_name_loads(tmp_path):
    """A file written before the rules were renamed (``rule="tpsgd_head"``) loads as the
    renamed rule, with a DeprecationWarning, and predicts as it did."""
    model = TPSGDClassifier(rule="local_head", seed=0)
    for x, y in _stream(40):
        model.learn_one(x, y)
    model.save(tmp_path / "new.pt")
    payload = torch.load(tmp_path / "new.pt", weights_only=True)
    payload["params"]["rule"] = "tpsgd_head"  # as the old release wrote it
    payload["checksum"] = _persistence.digest(payload)  # (an intact file of that release)
    torch.save(payload, tmp_path / "old.pt")
    with pytest.warns(DeprecationWarning, match="tpsgd_head"):
        loaded = TPSGDClassifier.load(tmp_path / "old.pt")
    assert loaded.rule == "local_head"
    x = {"a": 0.3, "b": -1.0}
    assert loaded.predict_proba_one(x) == model.predict_proba_one(x)
    assert torch.equal(loaded._net.head(0), model._net.head(0))


def test_unfitted_model_round_trips(tmp_path):
    TPSGDRegressor(seed=4, loss="huber").save(tmp_path / "r.pt")
    loaded = TPSGDRegressor.load(tmp_path / "r.pt")
    assert loaded.loss == "huber" and loaded._seed == 4 and loaded.predict_one({"a": 1.0}) == 0.0


def test_incompatible_version_is_a_clear_error(tmp_path):
    model = TPSGDClassifier(seed=0)
    model.learn_one({"a": 1.0}, 0)
    model.save(tmp_path / "m.pt")
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    payload["version"] = 99
    torch.save(payload, tmp_path / "future.pt")
    with pytest.raises(ValueError, match="format version 99.*reads format version 1"):
        TPSGDClassifier.load(tmp_path / "future.pt")


def test_corrupted_file_is_a_clear_error(tmp_path):
    model = TPSGDClassifier(seed=0)
    model.learn_one({"a": 1.0}, 0)
    model.save(tmp_path / "m.pt")
    data = (tmp_path / "m.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable tpsgd-stream model"):
        TPSGDClassifier.load(tmp_path / "truncated.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a model at all")
    with pytest.raises(ValueError, match="not a readable tpsgd-stream model"):
        TPSGDClassifier.load(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a tpsgd-stream model"):
        TPSGDClassifier.load(tmp_path / "other.pt")


@pytest.mark.parametrize("keep", [0.1, 0.3, 0.5, 0.7, 0.9])
def test_a_file_cut_anywhere_is_a_clear_error(tmp_path, keep):
    """torch reads some cut archives as an OSError (EINVAL): still a damaged file."""
    model = TPSGDClassifier(seed=0, batch_size=1)
    model.learn_one({"a": 1.0}, 0)
    model.save(tmp_path / "m.pt")
    data = (tmp_path / "m.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ValueError, match="not a readable tpsgd-stream model"):
        TPSGDClassifier.load(tmp_path / "cut.pt")


def test_wrong_class_is_a_clear_error(tmp_path):
    TPSGDRegressor(seed=0).save(tmp_path / "r.pt")
    with pytest.raises(ValueError, match="TPSGDRegressor.load"):
        TPSGDClassifier.load(tmp_path / "r.pt")


def test_unsaveable_label_is_a_clear_error(tmp_path):
    model = TPSGDClassifier(seed=0)
    model.learn_one({"a": 1.0}, frozenset({1}))
    with pytest.raises(TypeError, match="frozenset"):
        model.save(tmp_path / "m.pt")


@pytest.mark.parametrize(
    "cls, params",
    [
        (TPSGDClassifier, {"lr": np.float64(0.01), "batch_size": np.int64(2), "seed": np.int32(3)}),
        (TPSGDRegressor, {"hidden_layer_sizes": (np.int64(4),), "lr": np.float32(0.01)}),
    ],
)
def test_numpy_scalar_params_survive_a_save_and_load(tmp_path, cls, params):
    model = cls(**params)
    for i in range(5):
        model.learn_one({"a": float(i)}, i % 2)
    model.save(tmp_path / "m.pt")
    loaded = cls.load(tmp_path / "m.pt")
    assert loaded._get_params() == model._get_params()
    assert loaded.predict_one({"a": 1.0}) == model.predict_one({"a": 1.0})


def test_save_to_a_directory_is_a_clear_error(tmp_path):
    model = TPSGDClassifier(seed=0)
    model.learn_one({"a": 1.0}, 0)
    with pytest.raises(IsADirectoryError, match="needs a file path"):
        model.save(tmp_path)
