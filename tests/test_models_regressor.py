"""TPSGDRegressor: online target standardisation, losses, rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tpsgd_stream.models import TPSGDRegressor

torch.set_num_threads(1)  # see tests/test_estimators.py


def _stream(n, scale=1.0, offset=0.0, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = offset + scale * (X[:, 0] - 0.5 * X[:, 1] + 0.1 * rng.normal(size=n))
    return [({f"x{j}": float(v) for j, v in enumerate(row)}, float(t)) for row, t in zip(X, y)]


@pytest.mark.parametrize("rule", ["tpsgd_l2", "drtp", "bp"])
def test_learns_a_target_of_large_scale_with_the_default_lr(rule):
    data = _stream(1200, scale=500.0, offset=10_000.0)
    model = TPSGDRegressor(seed=0, rule=rule, hidden_layer_sizes=(32,), batch_size=8)
    errors = []
    for x, y in data:
        errors.append(abs(model.predict_one(x) - y))
        model.learn_one(x, y)
    # the target's own spread is ~560: the model must be far better than predicting the mean
    assert np.mean(errors[-200:]) < 150.0
    assert model._y_mean == pytest.approx(np.mean([y for _, y in data]))


def test_standardised_targets_are_what_the_network_sees():
    data = _stream(4, scale=100.0, offset=50.0)
    ys = np.array([y for _, y in data])
    model = TPSGDRegressor(seed=0, batch_size=4)
    for x, y in data[:3]:
        model.learn_one(x, y)
    seen = []
    step = model.network.train_step
    model.network.train_step = lambda x, target, **kw: (seen.append(target), step(x, target, **kw))
    model.learn_one(*data[3])  # fills the buffer: one update on the four targets
    expected = (ys - ys.mean()) / ys.std()  # the statistics of every target seen so far
    assert model._y_count == 4 and len(seen) == 1
    assert np.allclose(seen[0][:, 0].numpy(), expected, atol=1e-6)


def test_huber_and_learn_many():
    data = _stream(64)
    one = TPSGDRegressor(seed=1, loss="huber", batch_size=8)
    many = TPSGDRegressor(seed=1, loss="huber", batch_size=8)
    for x, y in data:
        one.learn_one(x, y)
    many.learn_many(pd.DataFrame([x for x, _ in data]), pd.Series([y for _, y in data]))
    frame = pd.DataFrame([x for x, _ in data[:5]])
    assert np.allclose(one.predict_many(frame), many.predict_many(frame), rtol=1e-9)
    assert [one.predict_one(x) for x, _ in data[:5]] == pytest.approx(
        list(one.predict_many(frame)), rel=1e-12
    )
    # the Huber loss is in use: on the same stream, with an outlier, MSE learns otherwise
    outlier = [*data[:8], (data[8][0], 1e4), *data[9:]]
    huber, mse = TPSGDRegressor(seed=1, loss="huber"), TPSGDRegressor(seed=1, loss="mse")
    for x, y in outlier:
        huber.learn_one(x, y)
        mse.learn_one(x, y)
    assert huber.predict_one(data[0][0]) != pytest.approx(mse.predict_one(data[0][0]), rel=1e-3)


def test_classification_rule_and_unknown_loss_are_rejected():
    with pytest.raises(ValueError, match="fixed_readout_ce"):
        TPSGDRegressor(rule="fixed_readout_ce")
    with pytest.raises(ValueError, match="loss"):
        TPSGDRegressor(loss="cross_entropy")


@pytest.mark.parametrize("rule", ["fixed_readout_ce", "fixed_readout_ce_ls", "local_head"])
def test_rules_that_read_out_classes_are_refused_when_built(rule):
    with pytest.raises(ValueError, match=f"TPSGDRegressor: unsupported rule '{rule}'"):
        TPSGDRegressor(rule=rule)


def test_huge_targets_are_refused_and_learn_many_needs_labels_per_row():
    model = TPSGDRegressor(seed=0, batch_size=2)
    model.learn_one({"a": 1.0}, 2.0)
    before = [p.detach().clone() for p in model.network.parameters()], model._task_state()
    with pytest.raises(ValueError, match="float32"):
        model.learn_one({"a": 1.0}, 1e200)  # (its square would overflow the running variance)
    for y in (None, 3.0):
        with pytest.raises(TypeError, match="y must be a pandas Series"):
            model.learn_many(pd.DataFrame({"a": [1.0]}), y)
    assert all(torch.equal(a, b) for a, b in zip(before[0], model.network.parameters()))
    assert model._task_state() == before[1]
