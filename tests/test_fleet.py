"""StreamFleet: one model per key, locally or on Ray actors, surviving a killed actor."""

import numpy as np
import pytest

from tpsgd_stream.fleet import HashRing, Shard, StreamFleet
from tpsgd_stream.models import TPSGDClassifier


def _template():
    return TPSGDClassifier(hidden_layer_sizes=(8,), batch_size=4, seed=0)


def _records(n=1200, n_keys=12, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x = {"a": float(rng.normal()), "b": float(rng.normal())}
        out.append((f"dev-{rng.integers(n_keys)}", x, bool(x["a"] + x["b"] > 0)))
    return out


PROBE = [(f"dev-{i}", {"a": 0.4, "b": -0.1}) for i in range(13)]  # dev-12: never seen


def test_adding_a_shard_moves_only_keys_to_the_new_shard():
    small, big = HashRing(3), HashRing(4)
    moved = [k for k in range(3000) if small.shard_of(k) != big.shard_of(k)]
    assert all(big.shard_of(k) == 3 for k in moved)
    assert 0.15 < len(moved) / 3000 < 0.35


def test_local_fleet_equals_one_independent_model_per_key():
    records = _records()
    fleet = StreamFleet(_template(), n_shards=3)
    alone = {}
    for key, x, y in records:
        fleet.learn_one(key, x, y)
        alone.setdefault(key, _template()).learn_one(x, y)
    assert sorted(fleet.keys()) == sorted(alone)
    for key, x in PROBE:
        expected = alone[key].predict_proba_one(x) if key in alone else {}
        assert fleet.predict_proba_one(key, x) == expected
    assert fleet.predict_many(PROBE) == [fleet.predict_one(k, x) for k, x in PROBE]


def test_learn_many_equals_learn_one():
    records = _records(400)
    one, many = StreamFleet(_template(), n_shards=2), StreamFleet(_template(), n_shards=2)
    for key, x, y in records:
        one.learn_one(key, x, y)
    many.learn_many(records)
    assert one.predict_many(PROBE) == many.predict_many(PROBE)


def test_a_shard_checkpoint_restores_every_model(tmp_path):
    shard = Shard(_template(), checkpoint_url=str(tmp_path))
    for key, x, y in _records(300):
        shard.learn_one(key, x, y)
    shard.checkpoint()
    restored = Shard(_template(), checkpoint_url=str(tmp_path))
    assert restored.n_learned == 300 and set(restored.models) == set(shard.models)
    for key, x in PROBE:
        assert restored.predict_proba_one(key, x) == shard.predict_proba_one(key, x)


def test_bad_backend_is_named():
    with pytest.raises(ValueError, match="backend"):
        StreamFleet(_template(), backend="spark")


def test_keys_that_compare_equal_share_one_model():
    fleet = StreamFleet(_template(), n_shards=4)
    for i in range(10):
        fleet.learn_one(np.int64(i), {"v": float(i)}, i % 2)
        fleet.learn_one(float(i), {"v": float(i)}, i % 2)
    assert len(fleet.keys()) == 10
    assert all(fleet.predict_one(i, {"v": 1.0}) is not None for i in range(10))


def test_a_rejected_first_sample_leaves_no_model_for_its_key():
    fleet = StreamFleet(_template())
    with pytest.raises(ValueError, match="'v'"):
        fleet.learn_one("dev-1", {"v": float("nan")}, 1)
    assert fleet.keys() == []


@pytest.mark.parametrize(
    "call",
    [
        lambda f: f.learn_one(["a"], {"v": 1.0}, 0),
        lambda f: f.predict_one({"a": 1}, {"v": 1.0}),
        lambda f: f.learn_many([(["a"], {"v": 1.0}, 0)]),
    ],
)
def test_an_unhashable_key_is_named(call):
    with pytest.raises(TypeError, match="fleet key must be hashable"):
        call(StreamFleet(_template()))


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"model": TPSGDClassifier}, TypeError, "estimator instance"),
        ({"model": "model"}, TypeError, "estimator instance"),
        ({"n_shards": "2"}, ValueError, "n_shards must be an int"),
        ({"n_shards": 2.0}, ValueError, "n_shards must be an int"),
    ],
)
def test_bad_fleet_arguments_are_named_when_built(kwargs, error, message):
    with pytest.raises(error, match=message):
        StreamFleet(**{"model": _template(), **kwargs})


@pytest.mark.parametrize("content", [b"", b"not a torch file", None])
def test_a_damaged_shard_checkpoint_is_a_clear_error(tmp_path, content):
    path = tmp_path / "shard-0.pt"
    if content is None:
        import torch

        torch.save(torch.zeros(2), path)  # a torch file, not a checkpoint
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match="shard checkpoint"):
        Shard(_template(), checkpoint_url=str(tmp_path))


ray = pytest.importorskip("ray", reason="the Ray backend needs ray (tpsgd-stream[ray])")


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    yield
    ray.shutdown()


def test_killed_actor_is_restored_and_replayed_without_loss(cluster, tmp_path):
    records = _records()
    reference = StreamFleet(_template(), n_shards=2)
    for key, x, y in records:
        reference.learn_one(key, x, y)
    fleet = StreamFleet(
        _template(),
        backend="ray",
        n_shards=2,
        checkpoint_url=str(tmp_path),
        checkpoint_every=300,
        max_in_flight=16,
        timeout=300,  # a loaded machine can take a minute to start an actor's worker
    )
    for i, (key, x, y) in enumerate(records):
        fleet.learn_one(key, x, y)
        assert max(len(q) for q in fleet._in_flight) <= 16  # backpressure
        if i == 700:
            ray.kill(fleet._shards[0], no_restart=False)
    assert fleet.predict_many(PROBE) == reference.predict_many(PROBE)
    for key, x in PROBE:  # (actors may run torch with another thread count: last-bit sums)
        assert fleet.predict_proba_one(key, x) == pytest.approx(
            reference.predict_proba_one(key, x), rel=1e-6
        )
    assert len(fleet.recovery_seconds) >= 1
    fleet.close()


def test_unreachable_cluster_is_a_clear_error_not_a_hang():
    with pytest.raises(ConnectionError, match="Could not reach a Ray cluster"):
        StreamFleet(_template(), backend="ray", ray_address="127.0.0.1:1", timeout=5)


def test_fleet_repr_names_its_template_backend_and_shards():
    fleet = StreamFleet(TPSGDClassifier(seed=0), n_shards=3)
    assert repr(fleet) == (
        "StreamFleet(TPSGDClassifier, backend='local', n_shards=3, checkpoint_url=None)"
    )
