"""torch's thread count is scoped to the estimators' own calls (``torch_threads``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tpsgd_stream.engine import threads
from tpsgd_stream.engine.threads import SMALL_WORK, intra_op_threads, threads_for
from tpsgd_stream.models import TPSGDClassifier, TPSGDRegressor

USER_THREADS = 3  # what the user set; neither 1 nor the library's choice


@pytest.fixture
def user_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(USER_THREADS)
    yield USER_THREADS
    torch.set_num_threads(before)


def _rows(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return [({"a": float(a), "b": float(b)}, int(a > 0)) for a, b in rng.normal(size=(n, 2))]


def _threads_during_updates(model) -> list[int]:
    """Have the model's network record torch's thread count at each of its updates."""
    seen, step = [], model.network.train_step

    def recording(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return step(*args, **kwargs)

    model.network.train_step = recording
    return seen


@pytest.mark.parametrize("make", [TPSGDClassifier, TPSGDRegressor])
def test_the_users_setting_is_unchanged_after_every_call(user_threads, make):
    model = make(hidden_layer_sizes=(8,), batch_size=4, seed=0)
    frame = pd.DataFrame({"a": [0.5, -1.0, 2.0], "b": [1.0, 0.0, -0.5]})
    for x, y in _rows():
        model.learn_one(x, y)
        assert torch.get_num_threads() == user_threads
        model.predict_one(x)
        assert torch.get_num_threads() == user_threads
    model.learn_many(frame, pd.Series([1, 0, 1]))
    model.predict_many(frame)
    if isinstance(model, TPSGDClassifier):
        model.predict_proba_one({"a": 1.0})
        model.predict_proba_many(frame)
    assert torch.get_num_threads() == user_threads


def test_small_updates_run_on_one_thread(user_threads):
    model = TPSGDClassifier(hidden_layer_sizes=(8,), batch_size=4, seed=0)
    model.learn_one({"a": 1.0, "b": 0.0}, 1)  # builds the network (one sample: one update)
    seen = _threads_during_updates(model)
    for x, y in _rows():
        model.learn_one(x, y)
    assert seen and set(seen) == {1}


@pytest.mark.parametrize("setting, expected", [(None, USER_THREADS), (2, 2)])
def test_torch_threads_none_leaves_torch_alone_and_an_int_is_used(user_threads, setting, expected):
    model = TPSGDClassifier(hidden_layer_sizes=(8,), batch_size=4, seed=0, torch_threads=setting)
    model.learn_one({"a": 1.0, "b": 0.0}, 1)
    seen = _threads_during_updates(model)
    for x, y in _rows():
        model.learn_one(x, y)
    assert seen and set(seen) == {expected}
    assert torch.get_num_threads() == user_threads


def test_large_work_keeps_the_users_threads(user_threads, monkeypatch):
    """An update of SMALL_WORK multiply-adds or more runs on the user's threads."""
    monkeypatch.setattr(threads, "SMALL_WORK", 2 * (2 * 8 + 8 * 2))  # 2 rows, 2-8-2: at it
    model = TPSGDClassifier(hidden_layer_sizes=(8,), batch_size=2, batch_ramp=0, seed=0)
    model.learn_one({"a": 1.0, "b": 0.0}, 0)
    model.learn_one({"a": 0.0, "b": 1.0}, 1)
    seen = _threads_during_updates(model)
    for x, y in _rows(4):
        model.learn_one(x, y)
    assert seen == [user_threads, user_threads]


def test_the_rule_against_the_threshold():
    assert threads_for("auto", SMALL_WORK - 1) == 1
    assert threads_for("auto", SMALL_WORK) is None
    assert threads_for(None, 1) is None and threads_for(4, 10**12) == 4


def test_the_setting_comes_back_when_the_call_fails(user_threads):
    with pytest.raises(RuntimeError, match="boom"), intra_op_threads(1):
        assert torch.get_num_threads() == 1
        raise RuntimeError("boom")
    assert torch.get_num_threads() == user_threads


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "many"])
def test_a_bad_torch_threads_is_named(bad):
    with pytest.raises(ValueError, match="torch_threads must be 'auto', None or an int >= 1"):
        TPSGDClassifier(torch_threads=bad)


def _blas_threads() -> list[int]:
    from threadpoolctl import threadpool_info

    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


def test_the_least_squares_readout_runs_blas_on_one_thread_and_restores_it():
    """BLAS calls of the per-sample readout run on one thread (a threaded rank-one update
    stalls on a busy machine); the caller's counts come back after each call."""
    from threadpoolctl import threadpool_limits

    from tpsgd_stream.engine import least_squares

    seen = []
    update = least_squares._rls_update

    def spy(*args):
        seen.append(_blas_threads())
        return update(*args)

    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        assert before and all(n == 2 for n in before)
        model = TPSGDClassifier(hidden_layer_sizes=(4,), seed=0)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(least_squares, "_rls_update", spy)
            for x, y in _rows(6):
                model.learn_one(x, y)
        assert _blas_threads() == before
    assert seen and all(counts == [1] * len(before) for counts in seen)
