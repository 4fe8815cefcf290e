"""The minibatch that grows over the first ``batch_ramp`` samples of a stream."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import as_old_file

from tpsgd_stream.models import TPSGDClassifier, TPSGDRegressor
from tpsgd_stream.models.base import ramped_batch

torch.set_num_threads(1)  # see tests/test_estimators.py


def _stream(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    return [({f"f{j}": float(v) for j, v in enumerate(row)}, int(row[0] > 0)) for row in X]


def _update_sizes(model) -> list[int]:
    """Have the model's network record the rows of each of its updates."""
    sizes, step = [], model.network.train_step

    def recording(x, *args, **kwargs):
        sizes.append(len(x))
        return step(x, *args, **kwargs)

    model.network.train_step = recording
    return sizes


@pytest.mark.parametrize("batch, ramp", [(32, 1024), (8, 100), (5, 3), (4, 0)])
def test_the_schedule_against_its_formula(batch, ramp):
    for n in range(0, 3 * max(ramp, 1)):
        expected = batch if n >= ramp else min(batch, 1 + n * batch // ramp)
        assert ramped_batch(n, batch, ramp) == expected


def test_updates_grow_from_one_sample_to_the_batch():
    model = TPSGDClassifier(hidden_layer_sizes=(4,), batch_size=4, batch_ramp=8, seed=0)
    stream = _stream(40)
    model.learn_one(*stream[0])  # the first update: one sample
    sizes = _update_sizes(model)
    for x, y in stream[1:]:
        model.learn_one(x, y)
    assert sizes == [1, 2, 3] + [4] * 8  # 1 + 4n // 8 after n samples; one sample left over
    assert model._n_batched == 1 + sum(sizes) == 39 and model._n_buffered == 1


def test_learn_many_takes_the_same_steps_as_learn_one():
    stream = _stream(90)
    one = TPSGDClassifier(hidden_layer_sizes=(6,), batch_size=8, batch_ramp=40, seed=3)
    many = TPSGDClassifier(hidden_layer_sizes=(6,), batch_size=8, batch_ramp=40, seed=3)
    for x, y in stream:
        one.learn_one(x, y)
    for start in (0, 7, 40):  # frames that cut across minibatches
        part = stream[start : {0: 7, 7: 40, 40: 90}[start]]
        many.learn_many(pd.DataFrame([x for x, _ in part]), pd.Series([y for _, y in part]))
    assert one._n_updates == many._n_updates
    for a, b in zip(one.network.parameters(), many.network.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("make", [TPSGDClassifier, TPSGDRegressor])
def test_a_saved_model_resumes_its_ramp(tmp_path, make):
    stream = _stream(100)
    model = make(hidden_layer_sizes=(6,), batch_size=8, batch_ramp=64, seed=1)
    for x, y in stream[:30]:
        model.learn_one(x, y)
    model.save(tmp_path / "m.pt")
    loaded = make.load(tmp_path / "m.pt")
    unpickled = pickle.loads(pickle.dumps(model))
    for x, y in stream[30:]:
        for m in (model, loaded, unpickled):
            m.learn_one(x, y)
    for other in (loaded, unpickled):
        assert other._n_updates == model._n_updates
        for a, b in zip(model.network.parameters(), other.network.parameters()):
            assert torch.equal(a, b)


def test_a_file_saved_before_the_ramp_keeps_a_fixed_batch(tmp_path):
    model = TPSGDClassifier(hidden_layer_sizes=(4,), batch_size=4, batch_ramp=0, seed=0)
    for x, y in _stream(10):
        model.learn_one(x, y)
    loaded = as_old_file(model, tmp_path, ("batch_ramp", "torch_threads"), ("n_batched",))
    assert loaded.batch_ramp == 0 and loaded.current_batch_size == 4
    assert loaded._n_batched == 8 and loaded._n_buffered == 2


def test_a_pickle_made_before_the_ramp_keeps_a_fixed_batch():
    model = TPSGDClassifier(hidden_layer_sizes=(4,), batch_size=4, seed=0)
    for x, y in _stream(10):
        model.learn_one(x, y)
    state = model.__getstate__()
    for key in ("batch_ramp", "torch_threads", "_n_batched", "_batch_target", "_work"):
        del state[key]  # as the old release pickled it
    old = TPSGDClassifier.__new__(TPSGDClassifier)
    old.__setstate__(state)
    assert old.batch_ramp == 0 and old.current_batch_size == 4
    assert old.clone().batch_ramp == 0
    old.learn_one({"f0": 1.0}, 1)  # and it learns on
    assert old._n_updates == model._n_updates


@pytest.mark.parametrize("bad", [-1, 1.5, True, "auto"])
def test_a_bad_batch_ramp_is_named(bad):
    with pytest.raises(ValueError, match="batch_ramp must be an int >= 0"):
        TPSGDClassifier(batch_ramp=bad)
