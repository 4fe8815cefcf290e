"""A seeded property-style fuzz of the public API (issue 20).

Over every estimator, the drift wrapper and a local fleet, random good and bad samples are
learned and predicted: huge finite values, NaN and infinities, masked values, numbers beyond any
float, wrong types, odd labels. Two properties must hold for every call:

- a call that raises (``TypeError`` or ``ValueError``, nothing else) leaves the model exactly
  as it was (its pickle is byte for byte the same);
- after a call that is accepted, every weight and optimizer state is finite, and so are the
  predictions for an ordinary sample.
"""

from __future__ import annotations

import math
import pickle
import warnings
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
import torch

from tpsgd_stream.drift import DriftAdaptiveClassifier
from tpsgd_stream.fleet import StreamFleet
from tpsgd_stream.models import (
    TPSGDClassifier,
    TPSGDImageClassifier,
    TPSGDRegressor,
    TPSGDSequenceClassifier,
    TPSGDStreamingSequenceClassifier,
)

KEYS = ("a", "b", "c", "d")
STEPS = 70


class _RaisingEq:
    def __hash__(self):
        return 1

    def __eq__(self, other):
        raise RuntimeError("no comparison")


def _values(rng) -> list:
    """Feature values: ordinary ones most often, then every kind of trouble."""
    good = [float(rng.normal()), int(rng.integers(-3, 3)), bool(rng.integers(2)), 0.5]
    bad = [
        1e30,
        -3e38,
        3.4e38,
        1e8,
        math.nan,
        math.inf,
        -math.inf,
        np.float32("nan"),
        "text",
        None,
        complex(1, 1),
        np.ma.masked,
        Fraction(10**400),
        10**400,
        Decimal("NaN"),
        [1.0],
    ]
    return good * 6 + bad


def _labels(rng) -> list:
    good = [0, 1, 2, "cat", np.int64(1), True]
    bad = [math.nan, None, torch.tensor(1), Decimal("NaN"), Decimal("sNaN"), [1], _RaisingEq()]
    return good * 4 + bad


def _targets(rng) -> list:
    good = [float(rng.normal()), 1.0, -2, 3.5]
    bad = [1e30, 3e38, math.nan, math.inf, "x", None, Decimal("NaN"), complex(1, 0)]
    return good * 4 + bad


def _pick(rng, pool):
    return pool[int(rng.integers(len(pool)))]


def _dict(rng, keys=KEYS) -> dict:
    x = {k: _pick(rng, _values(rng)) for k in keys if rng.random() < 0.9}
    if rng.random() < 0.05:
        x[_pick(rng, ["new", math.nan, 7])] = 1.0
    return x


def _sequence(rng):
    kind = rng.integers(6)
    if kind == 0:  # a list of dicts, one per step
        return [_dict(rng, ("a", "b")) for _ in range(int(rng.integers(1, 4)))]
    if kind == 1:
        return np.ma.masked_invalid([[1.0, math.nan], [0.5, 0.5]])
    if kind == 2:
        return _pick(rng, [np.zeros(3), np.zeros((0, 2)), np.array([["a", "b"]]), {"a": 1.0}])
    values = rng.normal(size=(int(rng.integers(1, 4)), 2))
    if kind == 3:
        values[0, int(rng.integers(2))] = _pick(rng, [1e30, math.nan, math.inf, 3e38])
    return values


def _probe(name):
    return np.full((2, 2), 0.5) if name.startswith("sequence") else {k: 0.5 for k in KEYS}


ESTIMATORS = {
    "classifier": lambda: TPSGDClassifier(hidden_layer_sizes=(4,), batch_size=2, seed=0),
    "regressor": lambda: TPSGDRegressor(hidden_layer_sizes=(4,), batch_size=2, seed=0),
    "image": lambda: TPSGDImageClassifier(channels=(2,), batch_size=2, seed=0),
    "sequence": lambda: TPSGDSequenceClassifier(n_features=84, batch_size=2, seed=0),
    "sequence_elman": lambda: TPSGDSequenceClassifier(
        encoder="elman", hidden_size=4, batch_size=2, seed=0
    ),
    "streaming": lambda: TPSGDStreamingSequenceClassifier(
        lookback=4, n_features=84, batch_size=2, seed=0
    ),
    "streaming_elman": lambda: TPSGDStreamingSequenceClassifier(
        encoder="elman", hidden_size=4, batch_size=2, seed=0
    ),
    "drift": lambda: DriftAdaptiveClassifier(
        TPSGDClassifier(hidden_layer_sizes=(4,), batch_size=2, seed=0), seed=0
    ),
    "fleet": lambda: StreamFleet(
        TPSGDClassifier(hidden_layer_sizes=(4,), batch_size=2, seed=0), n_shards=2
    ),
}


def _networks(model) -> list:
    if isinstance(model, StreamFleet):
        return [m._net for shard in model._shards for m in shard.models.values()]
    if isinstance(model, DriftAdaptiveClassifier):
        return [model.model._net]
    return [model._net]


def _finite_state(model) -> bool:
    for net in _networks(model):
        if net is None:
            continue
        if not isinstance(net, torch.nn.Module):  # the random-kernel readout: its state
            if not all(bool(torch.isfinite(t).all()) for t in net.state_dict().values()):
                return False
            continue
        tensors = list(net.parameters())
        optimizers = net.optimizers.values() if isinstance(net.optimizers, dict) else []
        if not isinstance(net.optimizers, dict):
            optimizers = [*net.optimizers, *net.readout.optimizers.values()]
        for optimizer in optimizers:
            for state in optimizer.state.values():
                tensors += [v for v in state.values() if torch.is_tensor(v)]
        if not all(bool(torch.isfinite(t).all()) for t in tensors):
            return False
    return True


def _prediction(name, model):
    if name == "fleet":
        return [model.predict_proba_one(key, _probe(name)) for key in ("k0", "k1")]
    if name == "regressor":
        return model.predict_one(_probe(name))
    return model.predict_proba_one(_probe(name))


def _finite(prediction) -> bool:
    if isinstance(prediction, dict):
        return all(math.isfinite(v) for v in prediction.values())
    if isinstance(prediction, list):
        return all(_finite(p) for p in prediction)
    return math.isfinite(prediction)


def _call(name, model, rng):
    """One random call: learn (mostly) or predict, with a random sample."""
    x = _sequence(rng) if name.startswith("sequence") else _dict(rng)
    y = _pick(rng, _targets(rng) if name == "regressor" else _labels(rng))
    predict = rng.random() < 0.25
    if name == "fleet":
        key = _pick(rng, ["k0", "k1", "k0", math.nan, torch.tensor(0), Decimal("NaN")])
        if predict:
            return lambda: model.predict_one(key, x)
        if rng.random() < 0.3:
            records = [("k0", _dict(rng), 0), ("k1", _dict(rng), 1), (key, x, y)]
            return lambda: model.learn_many(records)
        return lambda: model.learn_one(key, x, y)
    if predict:
        return lambda: model.predict_one(x)
    return lambda: model.learn_one(x, y)


def _warm(name, model):
    for i in range(4):
        x = _probe(name)
        if name == "fleet":
            model.learn_one(f"k{i % 2}", x, i % 2)
        else:
            model.learn_one(x, float(i) if name == "regressor" else i % 2)


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_bad_input_changes_nothing_and_accepted_input_stays_finite(name):
    rng = np.random.default_rng(list(ESTIMATORS).index(name))
    model = ESTIMATORS[name]()
    _warm(name, model)
    accepted = refused = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # (counted skips warn: allowed)
        for step in range(STEPS):
            call = _call(name, model, rng)
            before = pickle.dumps(model)
            try:
                call()
            except (TypeError, ValueError):
                refused += 1
                assert pickle.dumps(model) == before, f"step {step}: a refused call changed it"
                continue
            accepted += 1
            assert _finite_state(model), f"step {step}: a weight or a state is not finite"
            assert _finite(_prediction(name, model)), f"step {step}: a prediction is not finite"
    assert accepted > 3 and refused > 3  # (both kinds of call were tried)
