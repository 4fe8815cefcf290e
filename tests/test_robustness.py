"""Bad input, damaged files and overflowing updates never corrupt a model silently (issue 20).

Each test pins one defect of the public-API fuzz: the input is refused before anything
changes, or accepted without leaving a NaN or an infinity anywhere.
"""

from __future__ import annotations

import io
import math
import pickle

import numpy as np
import pytest
import torch

from tpsgd_stream.engine.guard import NonFiniteUpdateError
from tpsgd_stream.engine.network import Network
from tpsgd_stream.models import (
    TPSGDClassifier,
    TPSGDRegressor,
    TPSGDSequenceClassifier,
    TPSGDStreamingSequenceClassifier,
)


def _state(model) -> bytes:
    """What a tabular model has learned, as bytes: weights, optimizer state, maps, counters and
    the buffered samples (not the unused rows of the buffer)."""
    net, n = model._net, model._n_buffered
    return pickle.dumps(
        (
            net.state_dict(),
            [opt.state_dict() for opt in net.optimizers.values()],
            model._features,
            model._task_state(),
            (model._n_updates, n, model._buffer[:n], model._buffer_y[:n]),
        )
    )


def _all_finite(model) -> bool:
    net = model._net
    tensors = list(net.parameters())
    if isinstance(net.optimizers, dict):
        optimizers = list(net.optimizers.values())
    else:  # a recurrent network: its cells' optimizers and its readout's
        optimizers = [*net.optimizers, *net.readout.optimizers.values()]
    for optimizer in optimizers:
        for state in optimizer.state.values():
            tensors += [v for v in state.values() if torch.is_tensor(v)]
    return all(bool(torch.isfinite(t).all()) for t in tensors)


# ----------------------------------------------------------------- 1. non-finite updates
@pytest.mark.parametrize(
    "make, big",
    [
        (lambda: TPSGDRegressor(batch_size=1, seed=0, optimizer="sgd"), 1e30),
        (lambda: TPSGDRegressor(batch_size=1, seed=0), 1e20),
        # (the gradient readout refuses it; the least-squares readout, the default, takes
        # it without overflowing: tests/test_least_squares.py)
        (lambda: TPSGDClassifier(batch_size=1, seed=0, readout_solver="optimizer"), 1e30),
        (
            lambda: TPSGDClassifier(
                batch_size=1, seed=0, readout_per_sample=False, readout_solver="optimizer"
            ),
            1e30,
        ),
        # (leaky ReLU: dfa's own tanh saturates, and 1e30 then makes no update to overflow)
        (
            lambda: TPSGDClassifier(
                batch_size=1,
                seed=0,
                rule="dfa",
                activation="leaky_relu",
                readout_solver="optimizer",
            ),
            1e30,
        ),
    ],
)
def test_an_overflowing_update_is_undone_counted_and_warned(make, big):
    model = make()
    y = (lambda i: float(i)) if isinstance(model, TPSGDRegressor) else (lambda i: i % 2)
    model.learn_one({"a": 1.0}, y(1))
    model.learn_one({"a": -1.0}, y(0))
    before = _state(model)
    with pytest.warns(RuntimeWarning, match="NaN or infinite.*skipped_updates"):
        model.learn_one({"a": big}, y(0))
    assert model.skipped_updates == 1
    # the model is exactly as it was: weights, optimizer state, counters (but the counter)
    model._n_skipped = 0
    if isinstance(model, TPSGDRegressor):  # (the target statistics saw the dropped sample)
        model._set_task_state(pickle.loads(before)[3])
    assert _state(model) == before
    model.learn_one({"a": 1.0}, y(1))  # and it keeps learning
    assert _all_finite(model)
    assert all(math.isfinite(v) for v in np.ravel(list(_predictions(model))))


def _predictions(model):
    if isinstance(model, TPSGDRegressor):
        return [model.predict_one({"a": 1.0})]
    return model.predict_proba_one({"a": 1.0}).values()


def test_adam_second_moment_never_becomes_infinite():
    model = TPSGDClassifier(batch_size=1, seed=0, readout_solver="optimizer")
    model.learn_one({"a": 1.0}, 1)
    with pytest.warns(RuntimeWarning):
        model.learn_one({"a": 1e30}, 0)
    assert _all_finite(model)
    before = model._net.layers[0].weight.clone()
    model.learn_one({"a": 1.0}, 0)
    assert (model._net.layers[0].weight != before).float().mean() > 0.9  # every weight learns


@pytest.mark.parametrize("rule, optimizer", [("tpsgd_l2_gated", "sgd"), ("bitflip", "adam")])
def test_growth_without_optimizer_state_still_trains(rule, optimizer):
    # plain SGD and bit flips keep no optimizer state: the guard's buffers, laid out for the
    # parameters before a new class or feature grew them in place, must be made again
    model = TPSGDClassifier(
        hidden_layer_sizes=(4,), rule=rule, optimizer=optimizer, batch_size=1, seed=0
    )
    for x, y in [({"a": 1.0}, 0), ({"a": -1.0}, 1), ({"a": 1.0, "b": 2.0}, 2)]:
        model.learn_one(x, y)
    assert model._n_updates == 3 and model.network.layers[0].weight.shape == (4, 2)


def test_network_train_step_raises_and_restores_on_overflow():
    net = Network.mlp(2, (4,), 2, rule="local_head", seed=0)
    x, target = torch.ones(2, 2), net.one_hot(torch.tensor([0, 1]))
    net.train_step(x, target)
    state = pickle.dumps(net)
    with pytest.raises(NonFiniteUpdateError, match="undone"):
        net.train_step(torch.full((2, 2), 1e30), target)
    assert pickle.dumps(net) == state


def test_an_sgd_network_steps_on_after_its_output_grows():
    """SGD keeps no state, so a grown output layer is the same tensor with a new shape: the
    guard's snapshot must follow the shape, not only the identity."""
    net = Network.mlp(3, (4,), 1, optimizer="sgd", lr=0.1, seed=0)
    net.train_step(torch.ones(2, 3), torch.ones(2, 1))
    net.grow_outputs(1)
    before = net.layers[-1].weight.clone()
    net.train_step(torch.ones(2, 3), torch.tensor([[0.0, 1.0], [0.0, 1.0]]))
    assert net.layers[-1].weight.shape == (2, 4)
    assert not torch.equal(net.layers[-1].weight, before)


def test_a_first_update_that_overflows_leaves_no_state_or_head_behind():
    net = Network.mlp(2, (4,), 2, rule="local_head", seed=0)
    fresh = pickle.dumps(net)
    with pytest.raises(NonFiniteUpdateError):
        net.train_step(torch.full((2, 2), 1e30), net.one_hot(torch.tensor([0, 1])))
    assert pickle.dumps(net) == fresh and not net.heads
    assert all(not opt.state for opt in net.optimizers.values())


def _net_state(net) -> bytes:
    optimizers = [*net.optimizers, *net.readout.optimizers.values()]
    return pickle.dumps((net.state_dict(), [o.state_dict() for o in optimizers]))


def test_sequence_models_undo_count_and_survive_a_non_finite_update(monkeypatch):
    """Tanh cells saturate, so an input hardly overflows them: a step that poisons a weight
    stands in for one that would."""
    for model, good in [
        (
            TPSGDSequenceClassifier(encoder="elman", hidden_size=4, batch_size=1, seed=0),
            np.zeros((2, 2)),
        ),
        (
            TPSGDStreamingSequenceClassifier(encoder="elman", hidden_size=4, batch_size=1, seed=0),
            {"a": 0.0},
        ),
    ]:
        model.learn_one(good, 0)
        before = _net_state(model._net)
        name = "_train" if hasattr(model, "_train") else None
        original = getattr(model, name) if name else model._net.train_step

        def poisoned(*args, original=original, model=model):
            original(*args)
            model._net.cells[0].weight_h.data.fill_(float("nan"))

        if name:
            monkeypatch.setattr(model, name, poisoned)
        else:
            monkeypatch.setattr(model._net, "train_step", poisoned)
        with pytest.warns(RuntimeWarning, match="skipped_updates"):
            model.learn_one(good, 0)  # (a known label: nothing grows before the update)
        assert model.skipped_updates == 1 and _net_state(model._net) == before
        monkeypatch.undo()
        model.learn_one(good, 0)  # never jammed
        assert _all_finite(model)
        assert all(math.isfinite(p) for p in model.predict_proba_one(good).values())


def test_the_random_kernel_readout_undoes_a_non_finite_step(monkeypatch):
    from tpsgd_stream.engine.kernel_readout import KernelReadout

    model = TPSGDSequenceClassifier(n_features=84, batch_size=1, seed=0)
    good = np.linspace(0, 1, 20).reshape(10, 2)
    model.learn_one(good, 0)
    before = {k: v.clone() for k, v in model.network.state_dict().items()}
    original = KernelReadout._step

    def poisoned(self, *args):
        original(self, *args)
        self.weight = self.weight * float("nan")

    monkeypatch.setattr(KernelReadout, "_step", poisoned)
    with pytest.warns(RuntimeWarning, match="skipped_updates"):
        model.learn_one(good, 0)
    after = model.network.state_dict()
    assert model.skipped_updates == 1
    assert all(torch.equal(before[k], after[k]) for k in before)
    monkeypatch.undo()
    model.learn_one(good, 1)  # never jammed
    assert all(math.isfinite(p) for p in model.predict_proba_one(good).values())


def test_one_target_outlier_does_not_wreck_the_regressor_scale():
    rng = np.random.default_rng(0)
    model = TPSGDRegressor(batch_size=1, seed=0, hidden_layer_sizes=(8,))
    for _ in range(200):
        a = rng.normal()
        model.learn_one({"a": a}, 2.0 * a)
    model.learn_one({"a": 0.0}, 1e30)
    assert model._y_std < 100.0 and abs(model._y_mean) < 100.0
    for _ in range(50):
        a = rng.normal()
        model.learn_one({"a": a}, 2.0 * a)
    assert abs(model.predict_one({"a": 1.0}) - 2.0) < 10.0


def test_skipped_updates_survive_save_and_load(tmp_path):
    model = TPSGDClassifier(batch_size=1, seed=0, readout_solver="optimizer")
    model.learn_one({"a": 1.0}, 1)
    with pytest.warns(RuntimeWarning):
        model.learn_one({"a": 1e30}, 0)
    model.save(tmp_path / "m.pt")
    assert TPSGDClassifier.load(tmp_path / "m.pt").skipped_updates == 1
    buffer = io.BytesIO()
    pickle.dump(model, buffer)
    assert pickle.loads(buffer.getvalue()).skipped_updates == 1


# --------------------------------------------------------------- 3. saved-file integrity
def _trained_classifier() -> TPSGDClassifier:
    model = TPSGDClassifier(hidden_layer_sizes=(4,), batch_size=3, batch_ramp=0, seed=0)
    rng = np.random.default_rng(0)
    for i in range(10):
        model.learn_one({"a": rng.normal(), "b": rng.normal()}, i % 3)
    return model


def _fingerprint(model) -> tuple:
    """Predictions and the whole saved state (its checksum over every entry)."""
    buffer = io.BytesIO()
    model.save(buffer)
    payload = torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)
    probe = [{"a": 0.5, "b": -1.0}, {"a": -2.0}, {"b": 3.0}]
    return [model.predict_proba_one(x) for x in probe], payload["checksum"]


def test_every_single_bit_flip_is_refused_or_harmless():
    model = _trained_classifier()
    buffer = io.BytesIO()
    model.save(buffer)
    data, expected = buffer.getvalue(), _fingerprint(model)
    rng = np.random.default_rng(20)
    outcomes = {"refused": 0, "identical": 0}
    for position in rng.integers(0, len(data) * 8, 300):
        flipped = bytearray(data)
        flipped[position // 8] ^= 1 << (position % 8)
        try:
            loaded = TPSGDClassifier.load(io.BytesIO(bytes(flipped)))
        except ValueError as err:
            assert "tpsgd-stream model" in str(err) or "format version" in str(err), err
            outcomes["refused"] += 1
            continue
        assert _fingerprint(loaded) == expected, f"bit {position} changed the model silently"
        outcomes["identical"] += 1
    assert outcomes["refused"] > 100  # (most bits matter: the checksum sees them)


def _payload(model) -> dict:
    buffer = io.BytesIO()
    model.save(buffer)
    return torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)


def _load(payload: dict, *, rechecksum: bool = True):
    from tpsgd_stream.models import _persistence

    if rechecksum:
        payload["checksum"] = _persistence.digest(payload)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return TPSGDClassifier.load(io.BytesIO(buffer.getvalue()))


@pytest.mark.parametrize(
    "edit",
    [
        lambda p: p.pop("n_buffered"),
        lambda p: p.pop("params"),
        lambda p: p.update(n_buffered=7),
        lambda p: p.update(n_buffered=-1),
        lambda p: p["network"]["layers.0.weight"].fill_(float("nan")),
        lambda p: p["network"]["layers.1.bias"].__setitem__(0, float("inf")),
        lambda p: p.update(buffer=torch.zeros(2, 2)),
        lambda p: p.update(features=p["features"] + [("py", "extra"), ("py", "more")]),
        lambda p: p["task"].update(classes=p["task"]["classes"] + [("py", 9), ("py", 10)]),
        lambda p: p["buffer_y"].fill_(99),
        lambda p: p.update(train_layers=[7]),
        lambda p: p.update(seed="zero"),
    ],
)
def test_a_hand_edited_payload_is_refused_with_the_clear_error(edit):
    payload = _payload(_trained_classifier())
    edit(payload)
    with pytest.raises(ValueError, match="not a readable tpsgd-stream model file"):
        _load(payload)


def test_a_payload_edited_without_its_checksum_is_refused():
    payload = _payload(_trained_classifier())
    payload["network"]["layers.0.weight"][0, 0] = 0.123
    with pytest.raises(ValueError, match="checksum does not match"):
        _load(payload, rechecksum=False)


def test_a_file_of_format_version_1_without_checksum_still_loads():
    model = _trained_classifier()
    payload = _payload(model)
    for key in ("checksum", "n_skipped"):
        del payload[key]
    payload["version"] = 1
    loaded = _load(payload, rechecksum=False)
    assert _fingerprint(loaded) == _fingerprint(model)


def test_a_damaged_sequence_model_file_is_refused():
    model = TPSGDSequenceClassifier(hidden_size=4, batch_size=3, seed=0)
    for i in range(4):
        model.learn_one(np.full((2, 2), float(i)), i % 2)
    buffer = io.BytesIO()
    model.save(buffer)
    payload = torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)
    keys, values, _ = payload["pending"]["buffer"][0]
    payload["pending"]["buffer"][0] = (keys, values, 5)  # a label beyond the classes
    from tpsgd_stream.models import _persistence

    payload["checksum"] = _persistence.digest(payload)
    damaged = io.BytesIO()
    torch.save(payload, damaged)
    with pytest.raises(ValueError, match="not a readable tpsgd-stream model file"):
        TPSGDSequenceClassifier.load(io.BytesIO(damaged.getvalue()))


def test_a_shard_checkpoint_with_a_flipped_weight_is_refused(tmp_path):
    from tpsgd_stream.fleet.stream_fleet import Shard

    shard = Shard(TPSGDClassifier(batch_size=1, seed=0), checkpoint_url=str(tmp_path))
    for i in range(4):
        shard.learn_one(f"k{i % 2}", {"a": float(i)}, i % 2)
    shard.checkpoint()
    path = tmp_path / "shard-0.pt"
    payload = torch.load(path, weights_only=True)
    tag, blob = payload["models"][0]
    model = torch.load(io.BytesIO(blob), weights_only=True)
    model["network"]["layers.0.weight"][0, 0] += 1.0  # the model's own checksum now fails
    edited = io.BytesIO()
    torch.save(model, edited)
    payload["models"][0] = (tag, edited.getvalue())
    torch.save(payload, path)  # (the shard's checksum is stale as well)
    with pytest.raises(ValueError, match="shard checkpoint.*checksum"):
        Shard(TPSGDClassifier(batch_size=1, seed=0), checkpoint_url=str(tmp_path))
    from tpsgd_stream.models import _persistence

    payload["checksum"] = _persistence.digest(payload)  # the shard's fixed: the model's fails
    torch.save(payload, path)
    with pytest.raises(ValueError, match="shard checkpoint.*checksum"):
        Shard(TPSGDClassifier(batch_size=1, seed=0), checkpoint_url=str(tmp_path))


# ------------------------------------------------------------------- 2. masked arrays
def test_a_masked_sequence_is_refused_and_never_jams_the_model():
    model = TPSGDSequenceClassifier(hidden_size=8, batch_size=3, seed=0)
    model.learn_one(np.zeros((2, 2)), 0)
    x = np.ma.masked_invalid([[1, np.nan], [0.5, 0.5]])
    for call in (model.predict_proba_one, lambda x: model.learn_one(x, 1)):
        with pytest.raises(ValueError, match="masked array.*filled"):
            call(x)
    assert len(model._buffer) == 1
    for _ in range(4):
        model.learn_one(np.zeros((2, 2)), 0)
    assert len(model._buffer) < 3 and model._n_updates == 1
    unmasked = np.ma.masked_invalid([[1.0, 0.0], [0.5, 0.5]])  # nothing masked: its data
    assert model.predict_proba_one(unmasked) == model.predict_proba_one(unmasked.data)


def test_masked_labels_are_refused_by_learn_many():
    import pandas as pd

    model = TPSGDClassifier(seed=0)
    y = np.ma.masked_array([0, 1], mask=[False, True])
    with pytest.raises(ValueError, match="masked"):
        model.learn_many(pd.DataFrame({"a": [1.0, 2.0]}), y)
    assert model._net is None


def test_a_list_of_dicts_with_int_keys_does_not_change_the_array_width():
    model = TPSGDSequenceClassifier(hidden_size=4, batch_size=2, seed=0)
    model.learn_one(np.zeros((3, 2)), 0)
    model.learn_one([{0: 1.0, 5: 2.0}], 1)
    model.learn_one(np.ones((3, 2)), 1)  # the arrays it was trained on are still accepted
    with pytest.raises(ValueError, match="2 features per step; got an array of 3"):
        model.learn_one(np.ones((3, 3)), 1)
    buffer = io.BytesIO()
    model.save(buffer)
    loaded = TPSGDSequenceClassifier.load(io.BytesIO(buffer.getvalue()))
    assert loaded._array_width == 2
    assert pickle.loads(pickle.dumps(model))._array_width == 2


# ----------------------------------------------------------- 6. growth cost per new class
def test_the_rows_made_for_a_new_class_do_not_grow_with_the_classes(monkeypatch):
    from tpsgd_stream.engine import projection

    made = []  # the index of every row drawn
    original = projection.Projection._draws
    monkeypatch.setattr(
        projection.Projection,
        "_draws",
        lambda self, first, stop, *args: (
            made.extend(range(first, stop)) or original(self, first, stop, *args)
        ),
    )
    model = TPSGDClassifier(hidden_layer_sizes=(8,), batch_size=1, seed=0)
    counts = []
    for label in range(200):
        before = len(made)
        model.learn_one({"a": float(label % 3)}, label)
        counts.append(len(made) - before)
    # the new class's head row, plus at most the 8 unit rows it is orthogonalised against
    assert max(counts) <= 1 + 8 and max(counts[100:]) <= max(counts[10:20])


def test_grown_rows_equal_the_rows_made_at_once():
    from tpsgd_stream.engine.projection import PROJECTION_KINDS, Projection

    for kind in PROJECTION_KINDS:
        shape = (2, 3, 3) if kind == "filter" else (5,)
        grown = Projection(kind, scale=0.5, seed=3, stream=1)
        for n in range(1, 12):
            rows = grown.matrix(n, shape)
        at_once = Projection(kind, scale=0.5, seed=3, stream=1).matrix(11, shape)
        assert torch.equal(rows, at_once)
        fresh = Projection(kind, scale=0.5, seed=3, stream=1)
        assert torch.equal(fresh.rows(7, 11, shape), rows[7:])


# ------------------------------------------------------------------------- 4, 5. fleet
def _fleet():
    from tpsgd_stream.fleet import StreamFleet

    return StreamFleet(TPSGDClassifier(batch_size=1, seed=0), n_shards=2)


@pytest.mark.parametrize(
    "key", [float("nan"), np.float32("nan"), torch.tensor(1), ("a", float("nan"))]
)
def test_fleet_keys_that_hash_by_identity_are_refused(key):
    from decimal import Decimal

    fleet = _fleet()
    for bad in (key, Decimal("NaN")):
        for call in (
            lambda k: fleet.learn_one(k, {"a": 1.0}, 0),
            lambda k: fleet.learn_many([(k, {"a": 1.0}, 0)]),
            lambda k: fleet.predict_one(k, {"a": 1.0}),
        ):
            with pytest.raises(TypeError, match="equal itself"):
                call(bad)
    assert fleet.keys() == []


def test_fleet_learn_many_is_all_or_nothing():
    fleet = _fleet()
    records = [("k1", {"a": 1.0}, 0), ("k2", {"a": 2.0}, 1), ("k3", {"a": float("nan")}, 0)]
    with pytest.raises(ValueError, match="Record 2.*k3.*NaN"):
        fleet.learn_many(records)
    assert fleet.keys() == []
    with pytest.raises(TypeError, match="Record 1.*label"):
        fleet.learn_many([("k1", {"a": 1.0}, 0), ("k2", {"a": 1.0}, [1])])
    with pytest.raises(TypeError, match=r"\(key, x, y\)"):
        fleet.learn_many([("k1", {"a": 1.0})])
    assert fleet.keys() == []
    fleet.learn_many(records[:2])
    assert sorted(fleet.keys()) == ["k1", "k2"]


def test_fleet_predict_on_an_unknown_key_checks_x():
    fleet = _fleet()
    with pytest.raises(ValueError, match="NaN"):
        fleet.predict_one("never", {"a": float("nan")})
    with pytest.raises(TypeError, match="real number"):
        fleet.predict_proba_one("never", {"a": "text"})
    assert fleet.predict_one("never", {"a": 1.0}) is None


# ------------------------------------------------------------ 10. labels and feature names
def test_labels_and_names_not_equal_to_themselves_are_refused():
    from decimal import Decimal

    model = TPSGDClassifier(batch_size=1, seed=0)
    model.learn_one({"a": 1.0}, 0)
    with pytest.raises(ValueError, match="every sample needs a label|not equal to itself"):
        model.learn_one({"a": 1.0}, Decimal("NaN"))
    with pytest.raises(TypeError, match="feature name nan"):
        model.learn_one({float("nan"): 1.0}, 0)
    assert model._classes == [0] and list(model._features) == ["a"]


def test_a_label_whose_comparison_raises_leaves_no_new_feature():
    class Raising:
        def __hash__(self):
            return 0

        def __eq__(self, other):
            raise RuntimeError("no comparison")

    model = TPSGDClassifier(batch_size=1, seed=0)
    model.learn_one({"a": 1.0}, 0)
    with pytest.raises(TypeError, match="comparison raises"):
        model.learn_one({"a": 1.0, "new": 2.0}, Raising())
    assert list(model._features) == ["a"]


def test_the_drift_wrapper_refuses_a_signalling_nan_label_as_the_classifier_does():
    from decimal import Decimal

    from tpsgd_stream.drift import DriftAdaptiveClassifier

    wrapper = DriftAdaptiveClassifier(TPSGDClassifier(batch_size=1, seed=0), seed=0)
    wrapper.learn_one({"a": 1.0}, 0)
    with pytest.raises(TypeError, match="hashable"):
        wrapper.learn_one({"a": 1.0}, Decimal("sNaN"))
    with pytest.raises(TypeError, match="hashable"):
        TPSGDClassifier(seed=0).learn_one({"a": 1.0}, Decimal("sNaN"))


# ----------------------------------------------------------------- 7, 8, 10. small crashes
def test_image_predict_many_on_no_rows_returns_an_empty_result():
    import pandas as pd

    from tpsgd_stream.models import TPSGDImageClassifier

    model = TPSGDImageClassifier(channels=(2,), batch_size=1, seed=0)
    model.learn_one({f"x{i}": float(i) for i in range(4)}, 0)
    empty = pd.DataFrame(columns=[f"x{i}" for i in range(4)], dtype=float)
    assert len(model.predict_many(empty)) == 0
    assert model.predict_proba_many(empty).shape == (0, 1)


def test_save_to_an_unwritable_path_or_none_is_a_clear_error(tmp_path):
    model = _trained_classifier()
    with pytest.raises(TypeError, match="file path.*NoneType"):
        model.save(None)
    with pytest.raises(OSError, match="save\\(\\) cannot write .*no_such_folder"):
        model.save(tmp_path / "no_such_folder" / "m.pt")
    with pytest.raises(OSError, match="cannot write"):
        model.save("/proc/no-model-here.pt")


def test_a_very_long_path_makes_a_short_message(tmp_path):
    path = tmp_path / ("x" * 200) / ("y" * 200) / "m.pt"
    with pytest.raises(OSError) as caught:
        TPSGDClassifier.load(str(path) * 50)
    assert len(str(caught.value)) < 600


@pytest.mark.parametrize("mode", ["raise", "zero"])
def test_numbers_beyond_any_float_are_named(mode):
    from fractions import Fraction

    import pandas as pd

    model = TPSGDClassifier(batch_size=1, seed=0, non_finite=mode)
    frame = pd.DataFrame({"a": [1.0, 2.0], "big": pd.Series([1, 10**400], dtype=object)})
    if mode == "raise":
        with pytest.raises(ValueError, match=r"\['big'\]"):
            model.learn_one({"a": 1.0, "big": Fraction(10**400)}, 0)
        with pytest.raises(ValueError, match=r"\['big'\]"):
            model.learn_many(frame, pd.Series([0, 1]))
        assert model._net is None
    else:
        model.learn_one({"a": 1.0, "big": Fraction(10**400)}, 0)
        model.learn_many(frame, pd.Series([0, 1]))
        assert _all_finite(model)


# ---------------------------------------------------------------------------- 9. the CLI
@pytest.fixture
def small_csv(tmp_path):
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(60, 2)), columns=["a", "b"])
    frame["label"] = (frame["a"] > 0).astype(int)
    path = tmp_path / "good.csv"
    frame.to_csv(path, index=False)
    return path


def _run_cli(capsys, *args) -> tuple[int, str]:
    from tpsgd_stream.cli import main

    code = main(["run", *map(str, args), "--quiet"])
    err = capsys.readouterr().err
    return code, err


def test_cli_os_errors_are_one_line_and_exit_2_before_training(capsys, small_csv, tmp_path):
    code, err = _run_cli(capsys, "x" * 300 + ".csv")
    assert code == 2 and err.count("\n") == 1 and "cannot read" in err
    code, err = _run_cli(capsys, small_csv, "--out", "/proc/x")
    assert code == 2 and err.count("\n") == 1 and "cannot write to --out /proc/x" in err


def test_cli_refuses_a_target_with_missing_values(capsys, small_csv, tmp_path):
    import pandas as pd

    frame = pd.read_csv(small_csv)
    frame.loc[5, "label"] = np.nan  # an integer column with one NaN reads as float
    path = tmp_path / "nan.csv"
    frame.to_csv(path, index=False)
    code, err = _run_cli(capsys, path, "--out", tmp_path / "out")
    assert code == 2 and "1 missing value(s), at rows [5]" in err


def test_cli_bounds_what_a_run_may_ask_for(capsys, small_csv, tmp_path):
    code, err = _run_cli(capsys, small_csv, "--batch-size", 10**9, "--out", tmp_path / "o")
    assert code == 2 and "never update" in err
    code, err = _run_cli(capsys, small_csv, "--layers", 10**8, "--out", tmp_path / "o")
    assert code == 2 and "at most 50,000,000" in err


# -------------------------------------------------------- nothing in a file is executed
EXECUTED: list = []


def _mark() -> None:
    EXECUTED.append("ran")


class _Crafted:
    def __reduce__(self):
        return (_mark, ())


def test_a_crafted_pickle_is_refused_and_never_executed():
    from tpsgd_stream.fleet.stream_fleet import Shard

    payload = _payload(_trained_classifier())
    payload["task"] = _Crafted()
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    with pytest.raises(ValueError, match="not a readable tpsgd-stream model file"):
        TPSGDClassifier.load(io.BytesIO(buffer.getvalue()))
    assert EXECUTED == []
    checkpoint = {"format": "tpsgd-stream-shard", "version": 2, "models": _Crafted()}
    import tempfile

    folder = tempfile.mkdtemp()
    torch.save(checkpoint, f"{folder}/shard-0.pt")
    with pytest.raises(ValueError, match="shard checkpoint"):
        Shard(TPSGDClassifier(seed=0), checkpoint_url=folder)
    assert EXECUTED == []
