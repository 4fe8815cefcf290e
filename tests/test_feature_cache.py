"""The feature cache: bounded, least recently used first, and invisible in what is learned."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from tpsgd_stream.engine.feature_cache import FeatureCache
from tpsgd_stream.models import TPSGDSequenceClassifier

torch.set_num_threads(1)  # see tests/test_estimators.py


def test_rows_are_kept_in_the_narrowest_type_and_the_oldest_go_first():
    row = torch.arange(100, dtype=torch.int32)
    cost = 100 * 2 + 200  # int16 values and the per-row overhead
    cache = FeatureCache(max_bytes=2 * cost)
    keys = [cache.key(torch.full((1, 300), float(i))) for i in range(3)]
    cache.put(keys[0], row, largest=300)
    cache.put(keys[1], row, largest=300)
    assert cache.get(keys[0]).dtype == torch.int32  # (read back as int32, stored as int16)
    cache.put(keys[2], row, largest=300)  # evicts keys[1]: keys[0] was used since
    assert cache.get(keys[1]) is None and torch.equal(cache.get(keys[0]), row)
    assert len(cache) == 2 and cache.nbytes == 2 * cost <= cache.max_bytes
    assert next(iter(cache._rows.values())).dtype == torch.int16
    small = FeatureCache(max_bytes=10_000)
    small.put(keys[0], row, largest=255)
    assert next(iter(small._rows.values())).dtype == torch.uint8
    assert FeatureCache(max_bytes=0).put(keys[0], row, largest=9) is None
    with pytest.raises(ValueError, match="max_bytes"):
        FeatureCache(max_bytes=-1)


def _ragged(n, seed):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(int(rng.integers(20, 70)), 2)) for _ in range(n)], rng.integers(
        3, size=n
    )


@pytest.mark.parametrize("ragged", [False, True])
def test_cached_and_uncached_training_learn_the_same_model(ragged):
    if ragged:
        x, y = _ragged(24, seed=0)
    else:
        rng = np.random.default_rng(0)
        x, y = rng.normal(size=(24, 2, 60)), rng.integers(3, size=24)
    models = {
        mb: TPSGDSequenceClassifier(n_features=168, batch_size=4, seed=0, feature_cache_mb=mb)
        for mb in (0, 1)
    }
    for model in models.values():
        order = np.random.default_rng(1)
        for _ in range(3):  # each epoch in another order: other batch companions
            perm = order.permutation(len(y))
            model.learn_many([x[i] for i in perm] if ragged else x[perm], y[perm])
    plain, cached = models[0]._net, models[1]._net
    for name in ("weight", "mean", "m2"):
        assert torch.equal(getattr(plain, name), getattr(cached, name))
    assert cached.cache.hits == 2 * len(y) and len(cached.cache) == len(y)
    assert len(plain.cache) == 0
    probe = x[:6]
    assert models[0].predict_proba_many(probe).equals(models[1].predict_proba_many(probe))


def test_a_copy_starts_with_an_empty_cache_and_predicts_the_same():
    x, y = _ragged(12, seed=1)
    model = TPSGDSequenceClassifier(n_features=168, batch_size=4, seed=0, feature_cache_mb=1)
    model.learn_many(x, y)
    assert len(model._net.cache) == 12
    twin = pickle.loads(pickle.dumps(model))
    assert len(twin._net.cache) == 0 and twin._net.cache.max_bytes == 2**20
    assert twin.predict_many(x).tolist() == model.predict_many(x).tolist()
    assert len(twin._net.cache) == 12  # prediction fills it too: test-then-train reuses it


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "64", True])
def test_a_bad_cache_size_is_refused(bad):
    with pytest.raises(ValueError, match="feature_cache_mb"):
        TPSGDSequenceClassifier(feature_cache_mb=bad)
