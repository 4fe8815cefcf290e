"""TPSGDClassifier behaviour beyond river's checks: classes, features, buffering, speed paths."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from river import datasets

from tpsgd_stream.models import TPSGDClassifier

torch.set_num_threads(1)  # see tests/test_estimators.py


def _stream(n=96, n_features=4, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5).astype(int) * (n_classes > 2)
    return [({f"f{j}": float(v) for j, v in enumerate(row)}, int(t)) for row, t in zip(X, y)]


def _weights(model):
    return [p.detach().clone() for p in model.network.parameters()]


def test_before_learning_returns_empty():
    model = TPSGDClassifier(seed=0)
    assert model.predict_proba_one({"a": 1.0}) == {}
    assert model.predict_one({"a": 1.0}) is None
    frame = pd.DataFrame({"a": [1.0, 2.0]})
    assert model.predict_proba_many(frame).shape == (2, 0)
    assert model.predict_many(frame).isna().all()


@pytest.mark.parametrize(
    "labels",
    [(0, 1, 2), ("cat", "dog", "eel"), (False, True), (np.int64(3), np.int64(7), np.int64(9))],
    ids=["int", "str", "bool", "numpy"],
)
def test_labels_of_any_hashable_type(labels):
    model = TPSGDClassifier(seed=0, batch_size=4)
    for i, (x, _) in enumerate(_stream(40)):
        model.learn_one(x, labels[i % len(labels)])
    proba = model.predict_proba_one({"f0": 0.3})
    assert set(proba) == set(labels)
    assert abs(sum(proba.values()) - 1.0) < 1e-9
    assert model.predict_one({"f0": 0.3}) in labels


def test_new_class_keeps_old_logits():
    # (a readout learning per sample would move on the new sample itself)
    model = TPSGDClassifier(seed=0, batch_size=8, batch_ramp=0, readout_per_sample=False)
    for x, y in _stream(64, n_classes=2):
        model.learn_one(x, y)
    probe = model._row({"f0": 0.5, "f1": -1.0, "f2": 0.1, "f3": 2.0})
    before = model._forward(probe)
    model.learn_one({"f0": 0.0}, "new")  # buffered: no update yet, one more output unit
    after = model._forward(probe)
    assert after.shape == (3,) and np.array_equal(after[:2], before)
    assert after[2] == 0.0  # zero weights and bias for the new unit
    assert set(model.predict_proba_one({"f0": 0.5})) == {0, 1, "new"}


def test_new_feature_keeps_outputs_and_order_does_not_matter():
    model = TPSGDClassifier(seed=0, batch_size=8, batch_ramp=0, readout_per_sample=False)
    for x, y in _stream(48):
        model.learn_one(x, y)
    x = {"f0": 0.2, "f1": -0.4, "f2": 1.0, "f3": 0.0}
    before = model.predict_proba_one(x)
    model.learn_one({**x, "late": 3.0}, 1)  # adds a column, no update yet
    assert model.predict_proba_one(x) == before
    shuffled = dict(reversed(list(x.items())))
    assert model.predict_proba_one(shuffled) == before
    # missing features count as 0, unknown ones are ignored
    assert model.predict_proba_one({"f0": 0.2, "f1": -0.4, "f2": 1.0}) == model.predict_proba_one(
        {"f0": 0.2, "f1": -0.4, "f2": 1.0, "f3": 0.0, "never_seen": 5.0}
    )


def test_updates_only_when_the_buffer_is_full():
    # (every layer on the minibatch; tests/test_readout_cadence.py: the per-sample readout)
    model = TPSGDClassifier(seed=0, batch_size=8, batch_ramp=0, readout_per_sample=False)
    data = _stream(16)
    for x, y in data[:2]:
        model.learn_one(x, y)
    start = _weights(model)
    for x, y in data[2:7]:  # 7 samples buffered
        model.learn_one(x, y)
    assert all(torch.equal(a, b) for a, b in zip(start, _weights(model)))
    model.learn_one(*data[7])  # 8th: one update
    assert model._n_updates == 1 and model._n_buffered == 0
    assert not all(torch.equal(a, b) for a, b in zip(start, _weights(model)))


def test_batch_size_one_learns():
    model = TPSGDClassifier(seed=0, batch_size=1, hidden_layer_sizes=(16,))
    data = _stream(300, n_classes=2)
    correct = 0
    for i, (x, y) in enumerate(data):
        correct += i >= 200 and model.predict_one(x) == y
        model.learn_one(x, y)
    assert model._n_updates == 300
    assert correct / 100 > 0.8


def test_learn_many_takes_the_same_steps_as_learn_one():
    data = _stream(70)
    one, many = (
        TPSGDClassifier(seed=3, batch_size=16, batch_ramp=0),
        TPSGDClassifier(seed=3, batch_size=16, batch_ramp=0),
    )
    for x, y in data:
        one.learn_one(x, y)
    for start in range(0, 70, 20):  # frames that do not line up with the batches
        chunk = data[start : start + 20]
        many.learn_many(pd.DataFrame([x for x, _ in chunk]), pd.Series([y for _, y in chunk]))
    assert one._classes == many._classes and one._n_updates == many._n_updates == 4
    assert all(torch.equal(a, b) for a, b in zip(_weights(one), _weights(many)))
    assert np.array_equal(one._buffer, many._buffer)


def test_several_new_labels_in_one_frame_grow_as_one_at_a_time():
    """learn_many grows the output layer once for all the new labels of a frame: the units,
    weights, heads and Adam moments must be those of learn_one's growth one label at a time."""
    data = _stream(48)
    late = [(x, label) for (x, _), label in zip(_stream(12, seed=1), ["d", "e", "d", 9] * 3)]
    one, many = (
        TPSGDClassifier(seed=2, batch_size=8, batch_ramp=0),
        TPSGDClassifier(seed=2, batch_size=8, batch_ramp=0),
    )
    for x, y in data + late:
        one.learn_one(x, y)
    many.learn_many(pd.DataFrame([x for x, _ in data]), pd.Series([y for _, y in data]))
    many.learn_many(pd.DataFrame([x for x, _ in late]), pd.Series([y for _, y in late]))
    assert one._classes == many._classes and one._classes[3:] == ["d", "e", 9]
    assert one._n_updates == many._n_updates == 7
    assert all(torch.equal(a, b) for a, b in zip(_weights(one), _weights(many)))
    moments = [
        [state["exp_avg_sq"] for state in model.network.optimizers[0].state.values()]
        for model in (one, many)
    ]
    assert all(torch.equal(a, b) for a, b in zip(*moments))


def test_many_matches_one_on_a_real_stream():
    model = TPSGDClassifier(seed=0)
    data = list(datasets.ImageSegments().take(120))
    for x, y in data[:100]:
        model.learn_one(x, y)
    frame = pd.DataFrame([x for x, _ in data[100:]])
    proba = model.predict_proba_many(frame)
    labels = model.predict_many(frame)
    for i, (x, _) in enumerate(data[100:]):
        one = model.predict_proba_one(x)
        assert np.allclose([one[c] for c in proba.columns], proba.iloc[i].to_numpy(), atol=1e-12)
        assert labels.iloc[i] == model.predict_one(x)


def test_numpy_prediction_matches_the_torch_network():
    model = TPSGDClassifier(seed=0, activation="tanh", hidden_layer_sizes=(16, 8), batch_size=8)
    for x, y in _stream(64):
        model.learn_one(x, y)
    rows = model._rows(pd.DataFrame([x for x, _ in _stream(10, seed=1)]))
    expected = model.network.forward(torch.tensor(rows, dtype=torch.float32)).numpy()
    assert np.allclose(model._forward(rows), expected, atol=1e-5)


def test_local_rule_never_calls_backward(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("a local rule must not back-propagate across layers")

    monkeypatch.setattr(torch.Tensor, "backward", forbidden)
    monkeypatch.setattr(torch.autograd, "backward", forbidden)
    model = TPSGDClassifier(seed=0, hidden_layer_sizes=(8, 8), batch_size=4, batch_ramp=0)
    for x, y in _stream(16):
        model.learn_one(x, y)
    assert model._n_updates == 4


def test_memory_usage_counts_tensor_bytes():
    model = TPSGDClassifier(seed=0, hidden_layer_sizes=(256,), batch_size=4)
    for x, y in _stream(8):
        model.learn_one(x, y)
    weights = sum(p.numel() * 4 for p in model.network.parameters())
    assert model._tensor_bytes() >= 3 * weights  # weights + two Adam moments
    assert model._raw_memory_usage > model._tensor_bytes()


@pytest.mark.parametrize(
    "params, message",
    [
        ({"rule": "nope"}, "rule"),
        ({"hidden_layer_sizes": [64]}, "hidden_layer_sizes"),
        ({"hidden_layer_sizes": (0,)}, "hidden_layer_sizes"),
        ({"activation": "softplus"}, "activation"),
        ({"optimizer": "rmsprop"}, "optimizer"),
        ({"lr": 0.0}, "lr"),
        ({"batch_size": 0}, "batch_size"),
        ({"seed": -1}, "seed"),
        ({"non_finite": "drop"}, "non_finite"),
        ({"device": "no-such-device"}, "evice"),
    ],
)
def test_bad_parameters(params, message):
    with pytest.raises(ValueError, match=message):
        TPSGDClassifier(**params)


def _wide(i, n=64):
    return {f"p{j}": float(i * n + j) for j in range(n)}


def test_wide_dict_rows_in_any_key_order_with_missing_and_new_features():
    model = TPSGDClassifier(seed=0, batch_size=4, batch_ramp=0, hidden_layer_sizes=(8,))
    for i in range(4):  # one update: the buffer's rows now hold stale values
        model.learn_one(_wide(i), i % 2)
    reordered = dict(reversed(list(_wide(4).items())))
    missing = {k: v for k, v in _wide(5).items() if k != "p7"}
    grown = {"zz": -1.0, **_wide(6)}
    for x in (reordered, missing, grown):
        model.learn_one(x, 0)
    features = model._features
    for row, x in zip(model._buffer[:3], (reordered, missing, grown)):
        expected = np.zeros(len(features), dtype=np.float32)
        for name, value in x.items():
            expected[features[name]] = value
        assert np.array_equal(row, expected)
    assert model._buffer[1, features["p7"]] == 0.0  # missing: 0, not the stale value


def test_frame_with_a_repeated_column_name_is_rejected_and_changes_nothing():
    model = TPSGDClassifier(seed=0, batch_size=4, hidden_layer_sizes=(8,))
    model.learn_many(pd.DataFrame({"a": [1.0] * 4, "b": [2.0] * 4}), pd.Series([0, 1, 0, 1]))
    before = pickle.dumps(model)
    for repeated in (
        pd.DataFrame([[3.0, 4.0]], columns=["a", "a"]),
        pd.DataFrame([[3.0, "s"]], columns=["a", "a"]),  # an object column too
    ):
        with pytest.raises(ValueError, match=r"repeated column name\(s\) \['a'\]"):
            model.learn_many(repeated, pd.Series([1]))
        with pytest.raises(ValueError, match="repeated column"):
            model.predict_many(repeated)
    assert pickle.dumps(model) == before


def test_learn_many_with_known_and_new_labels_takes_the_same_steps_as_learn_one():
    data = _stream(64)
    data[40] = (data[40][0], 7)  # a new class in the middle of a frame of known ones
    one, many = TPSGDClassifier(seed=1, batch_size=8), TPSGDClassifier(seed=1, batch_size=8)
    for x, y in data:
        one.learn_one(x, y)
    for start in range(0, 64, 12):
        chunk = data[start : start + 12]
        frame = pd.DataFrame([x for x, _ in chunk])
        many.learn_many(frame[frame.columns[::-1]], pd.Series([y for _, y in chunk]))
    assert one._classes == many._classes
    assert all(torch.equal(a, b) for a, b in zip(_weights(one), _weights(many)))
    assert np.array_equal(one._buffer, many._buffer)


def test_the_optimizer_parameter_reaches_every_layer():
    adam, sgd = (
        TPSGDClassifier(seed=0, batch_size=4, optimizer=name, hidden_layer_sizes=(8,))
        for name in ("adam", "sgd")
    )
    for model in (adam, sgd):
        for x, y in _stream(8):
            model.learn_one(x, y)
    assert {type(o).__name__ for o in sgd.network.optimizers.values()} == {"SGD"}
    assert "SGD" not in {type(o).__name__ for o in adam.network.optimizers.values()}
    assert not all(torch.equal(a, b) for a, b in zip(_weights(adam), _weights(sgd)))


def test_train_only_freezes_the_other_layers_and_checks_its_indices():
    model = TPSGDClassifier(seed=0, hidden_layer_sizes=(8, 8), batch_size=4)
    for x, y in _stream(8):
        model.learn_one(x, y)
    net = model.network
    with pytest.raises(ValueError, match="not trainable"):
        model.train_only([99])
    model.train_only(net.trainable_indices[-1:])
    assert model.train_layers == (net.output_index,)
    start = _weights(model)
    for x, y in _stream(8, seed=1):
        model.learn_one(x, y)
    now = _weights(model)
    assert all(torch.equal(a, b) for a, b in zip(start[:4], now[:4]))  # two hidden layers
    assert not torch.equal(start[-1], now[-1])
    model.train_only(None)
    assert model.train_layers is None


def test_wrappers_reach_the_estimators_through_public_names_only():
    import pathlib
    import re

    import tpsgd_stream

    root = pathlib.Path(tpsgd_stream.__file__).parent
    for path in [*root.glob("drift/*.py"), *root.glob("fleet/*.py")]:
        found = re.findall(r"model\._[a-z]\w*", path.read_text())
        assert not found, f"{path.name} reads private estimator fields: {found}"


def test_predict_many_keeps_the_labels_dtype():
    X = pd.DataFrame({"a": [0.0, 1.0, 0.0, 1.0]})
    for labels in ([0, 1, 0, 1], [True, False] * 2, list("abab")):
        model = TPSGDClassifier(hidden_layer_sizes=(4,), batch_size=2, seed=0)
        model.learn_many(X, pd.Series(labels))
        assert model.predict_many(X).dtype == pd.Series(labels).dtype  # (not object for ints)
