"""Fixed random projections: shapes, seeding, growth, the statistics of each kind, pickling."""

from __future__ import annotations

import math
import pickle

import pytest
import torch

from tpsgd_stream import PROJECTION_KINDS, Projection
from tpsgd_stream.engine.projection import step_matrix

FLAT_KINDS = ("normal", "uniform", "binary", "orthogonal")
CONV_SHAPE = (4, 5, 5)


def unit_shape(kind):
    return CONV_SHAPE if kind == "filter" else (16,)


@pytest.mark.parametrize("kind", PROJECTION_KINDS)
def test_shape_and_dtype(kind):
    m = Projection(kind, seed=1).matrix(3, unit_shape(kind))
    assert m.shape == (3, *unit_shape(kind))
    assert m.dtype == torch.float32
    assert torch.isfinite(m).all()


@pytest.mark.parametrize("kind", FLAT_KINDS)
def test_flat_kinds_accept_conv_shapes(kind):
    assert Projection(kind).matrix(2, CONV_SHAPE).shape == (2, *CONV_SHAPE)


@pytest.mark.parametrize("kind", PROJECTION_KINDS)
def test_reproducible_from_seed(kind):
    a = Projection(kind, scale=0.7, seed=5, stream=2).matrix(4, unit_shape(kind))
    b = Projection(kind, scale=0.7, seed=5, stream=2).matrix(4, unit_shape(kind))
    assert torch.equal(a, b)


@pytest.mark.parametrize("kind", PROJECTION_KINDS)
@pytest.mark.parametrize("change", [{"seed": 6}, {"stream": 3}])
def test_other_seed_or_stream_differs(kind, change):
    base = {"seed": 5, "stream": 2}
    a = Projection(kind, **base).matrix(4, unit_shape(kind))
    b = Projection(kind, **{**base, **change}).matrix(4, unit_shape(kind))
    assert not torch.equal(a, b)
    # not merely a reordering or sign flip of the same rows
    a, b = a.reshape(4, -1).double(), b.reshape(4, -1).double()
    cross = (a / a.norm(dim=1, keepdim=True)) @ (b / b.norm(dim=1, keepdim=True)).T
    assert float(cross.abs().max()) < 0.99


@pytest.mark.parametrize("kind", PROJECTION_KINDS)
def test_growth_keeps_old_rows(kind):
    shape = unit_shape(kind)
    small = Projection(kind, seed=3, stream=1).matrix(5, shape).clone()
    fresh = Projection(kind, seed=3, stream=1).matrix(8, shape)
    assert torch.equal(fresh[:5], small)
    # the same instance, cached at 5 rows, grows to 8 and back
    p = Projection(kind, seed=3, stream=1)
    p.matrix(5, shape)
    assert torch.equal(p.matrix(8, shape)[:5], small)
    assert torch.equal(p.matrix(5, shape), small)
    assert not torch.equal(fresh[5], fresh[4])


@pytest.mark.parametrize("kind", PROJECTION_KINDS)
def test_scale_multiplies_every_entry(kind):
    one = Projection(kind, scale=1.0, seed=2).matrix(3, unit_shape(kind))
    two = Projection(kind, scale=2.5, seed=2).matrix(3, unit_shape(kind))
    torch.testing.assert_close(two, 2.5 * one)


def max_abs_cos(m: torch.Tensor) -> float:
    m = m.reshape(m.shape[0], -1).double()
    unit = m / m.norm(dim=1, keepdim=True)
    cos = unit @ unit.T
    return float((cos - torch.eye(len(m), dtype=cos.dtype)).abs().max())


def test_binary_entries_are_pm1_and_rows_near_orthogonal():
    m = Projection("binary", seed=0, stream=0).matrix(10, (256,))
    assert set(m.unique().tolist()) == {-1.0, 1.0}
    assert max_abs_cos(m) < 0.2


def _mean_abs_cos(m: torch.Tensor) -> float:
    unit = m.double() / m.double().norm(dim=1, keepdim=True)
    cos = (unit @ unit.T).abs()
    return float((cos.sum() - len(m)) / (len(m) * (len(m) - 1)))


def test_binary_rows_closer_to_orthogonal_than_chance():
    """Signs of orthogonalised rows: mean |cos| 0.039 over 12 seeds, against 0.048-0.050 for
    random +-1 rows (whose 12-seed mean varies by about 0.0016): one seed cannot tell them
    apart, twelve can."""
    binary = [Projection("binary", seed=s, stream=1).matrix(10, (256,)) for s in range(12)]
    assert sum(map(_mean_abs_cos, binary)) / 12 < 0.044


@pytest.mark.parametrize("n_units", [8, 256])
def test_orthogonal_rows_are_exactly_orthogonal_with_unit_variance_entries(n_units):
    m = Projection("orthogonal", seed=4).matrix(min(10, n_units), (n_units,)).double()
    gram = m @ m.T
    torch.testing.assert_close(
        gram, n_units * torch.eye(len(m), dtype=gram.dtype), rtol=0, atol=1e-5 * n_units
    )
    assert max_abs_cos(m) < 1e-5


def test_normal_and_uniform_statistics():
    normal = Projection("normal", scale=0.5, seed=0).matrix(10, (1000,))
    assert float(normal.mean()) == pytest.approx(0.0, abs=0.02)
    assert float(normal.std()) == pytest.approx(0.5, rel=0.05)
    uniform = Projection("uniform", scale=0.5, seed=0).matrix(10, (1000,))
    assert float(uniform.abs().max()) <= 0.5
    assert float(uniform.std()) == pytest.approx(0.5 / math.sqrt(3), rel=0.05)


@pytest.mark.parametrize("scale", [1.0, 0.3])
def test_filter_std_grows_with_filter_index(scale):
    n_filters = 4
    m = Projection("filter", scale=scale, seed=1).matrix(10, (n_filters, 16, 16))
    stds = m.transpose(0, 1).reshape(n_filters, -1).std(dim=1)
    expected = scale * (torch.arange(n_filters) + 1.0) / n_filters
    # 2,560 draws per filter: the std estimate is within ~1.5 %, allow 8 %
    torch.testing.assert_close(stds, expected, rtol=0.08, atol=0)
    assert (stds[1:] > stds[:-1]).all()


def test_filter_needs_conv_unit_shape():
    with pytest.raises(ValueError, match="channels, height, width"):
        Projection("filter").matrix(3, (16,))


def test_pickling_drops_the_cache_and_regenerates_the_same_matrix():
    p = Projection("orthogonal", seed=7, stream=3)
    empty_bytes = pickle.dumps(p)
    m = p.matrix(5, (32,)).clone()
    data = pickle.dumps(p)
    assert data == empty_bytes  # pickled bytes do not depend on the cache
    assert len(data) < m.numel() * m.element_size()
    q = pickle.loads(data)
    assert q.cached_bytes == 0
    assert torch.equal(q.matrix(5, (32,)), m)
    assert p.cached_bytes > 0  # pickling did not clear the live instance's cache


@pytest.mark.parametrize("kind", ["gaussian", "", None, "Binary"])
def test_bad_kind_raises(kind):
    with pytest.raises(ValueError, match="Unknown projection kind"):
        Projection(kind)


@pytest.mark.parametrize("scale", [0, -1.0, float("nan"), float("inf"), "1", None])
def test_bad_scale_raises(scale):
    with pytest.raises(ValueError, match="scale"):
        Projection("normal", scale=scale)


# ------------------------------------------------------------ per-step matrices (recurrent)
STEP_KINDS = ("normal", "uniform", "binary", "orthogonal")


@pytest.mark.parametrize("kind", STEP_KINDS)
def test_step_matrix_reproducible_growable_and_distinct_per_step(kind):
    small = step_matrix(kind, 4, 32, seed=1, stream=2, step=5)
    assert small.shape == (4, 32) and small.dtype == torch.float32
    assert torch.equal(small, step_matrix(kind, 4, 32, seed=1, stream=2, step=5))
    torch.testing.assert_close(step_matrix(kind, 6, 32, seed=1, stream=2, step=5)[:4], small)
    for change in ({"step": 6}, {"stream": 3}, {"seed": 2}):
        other = step_matrix(kind, 4, 32, **{"seed": 1, "stream": 2, "step": 5, **change})
        assert not torch.equal(other, small), change


def test_step_matrix_kinds_statistics():
    binary = step_matrix("binary", 10, 256, seed=0, stream=0, step=0, scale=0.5)
    assert set(binary.unique().tolist()) == {-0.5, 0.5}
    orth = step_matrix("orthogonal", 10, 256, seed=0, stream=0, step=0).double()
    gram = orth @ orth.T
    torch.testing.assert_close(gram, 256 * torch.eye(10, dtype=gram.dtype), rtol=0, atol=256e-5)
    uniform = step_matrix("uniform", 10, 256, seed=0, stream=0, step=0, scale=0.5)
    assert float(uniform.abs().max()) <= 0.5  # U(-scale, scale): std scale / sqrt(3)
    assert float(uniform.std()) == pytest.approx(0.5 / 3**0.5, rel=0.05)
    normal = step_matrix("normal", 10, 256, seed=0, stream=0, step=0, scale=0.5)
    assert float(normal.std()) == pytest.approx(0.5, rel=0.05)


def test_step_matrix_rejects_filter_kind():
    with pytest.raises(ValueError, match="filter"):
        step_matrix("filter", 3, 16, seed=0, stream=0, step=0)


def test_step_matrices_follow_the_projection_kinds():
    """One generator: a kind names one distribution, for P and for every B_t alike."""
    # binary: signs of orthogonalised rows (closer to orthogonal than random +-1 rows)
    steps = [step_matrix("binary", 10, 256, seed=s, stream=1, step=0) for s in range(12)]
    assert sum(map(_mean_abs_cos, steps)) / 12 < 0.044
    # orthogonal past n_units rows: the first n_units stay orthogonal, a new class keeps them
    small = step_matrix("orthogonal", 8, 8, seed=0, stream=0, step=2)
    grown = step_matrix("orthogonal", 11, 8, seed=0, stream=0, step=2)
    assert torch.equal(grown[:8], small)
    torch.testing.assert_close(grown.norm(dim=1), torch.full((11,), 8**0.5))
    projection = Projection("orthogonal", seed=0, stream=0)
    assert torch.equal(projection.step_matrix(2, 8, 8), small)
