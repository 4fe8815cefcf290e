"""Domain-shift streams: each planted shift does what it says, deterministically."""

import numpy as np
import pytest
from conftest import skip_without_data
from sklearn.datasets import load_digits

from tpsgd_stream.datasets import load_elec2
from tpsgd_stream.drift import Shift, ShiftStream, digits_shift_stream, elec2_stream

X, Y = load_digits(return_X_y=True)
ROWS = {row.tobytes(): label for row, label in zip(X.astype(np.float32), Y)}


def _source_label(row):
    return ROWS.get(row.astype(np.float32).tobytes())


def test_same_seed_same_stream_other_seed_other_stream():
    a = digits_shift_stream(n_samples=500, seed=1).arrays()
    b = digits_shift_stream(n_samples=500, seed=1).arrays()
    c = digits_shift_stream(n_samples=500, seed=2).arrays()
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not np.array_equal(a[0], c[0])


def test_abrupt_rotation_rotates_exactly_from_its_position():
    stream = ShiftStream(X, Y, [Shift("rotate", 50)], n_samples=100, image_shape=(8, 8))
    Xs, ys, regime = stream.arrays()
    assert (regime[:50] == 0).all() and (regime[50:] == 1).all()
    assert all(_source_label(row) == label for row, label in zip(Xs[:50], ys[:50]))
    for row, label in zip(Xs[50:], ys[50:]):
        unrotated = np.rot90(row.reshape(8, 8), k=-1).reshape(-1)
        assert _source_label(unrotated) == label


def test_label_swap_changes_every_label_and_keeps_the_inputs():
    stream = ShiftStream(X, Y, [Shift("label_swap", 100)], n_samples=400, seed=3)
    Xs, ys, _ = stream.arrays()
    assert all(_source_label(row) == label for row, label in zip(Xs[:100], ys[:100]))
    after = [(_source_label(row), label) for row, label in zip(Xs[100:], ys[100:])]
    assert all(old is not None and old != new for old, new in after)
    mapping = dict(after)
    assert len(set(mapping.values())) == len(mapping)  # a permutation


def test_chosen_pairs_swap():
    stream = ShiftStream(X, Y, [Shift("label_swap", 0, classes=((0, 1),))], n_samples=300)
    Xs, ys, _ = stream.arrays()
    for row, label in zip(Xs, ys):
        old = _source_label(row)
        assert label == {0: 1, 1: 0}.get(old, old)


def test_gradual_shift_ramps_linearly():
    stream = ShiftStream(
        X, Y, [Shift("invert", 1000, width=2000)], n_samples=4000, image_shape=(8, 8)
    )
    regime = stream.regimes()
    assert regime[:1000].sum() == 0 and regime[3000:].all()
    # the share of shifted samples grows linearly over the 2,000-sample ramp
    for centre, share in ((1200, 0.1), (1500, 0.25), (2000, 0.5), (2500, 0.75), (2800, 0.9)):
        assert abs(regime[centre - 100 : centre + 100].mean() - share) < 0.1, centre


def test_new_classes_are_withheld_until_their_shift():
    stream = ShiftStream(X, Y, [Shift("new_classes", 300, classes=(8, 9))], n_samples=600)
    _, ys, _ = stream.arrays()
    assert not np.isin(ys[:300], [8, 9]).any()
    assert np.isin(ys[300:], [8, 9]).mean() > 0.1


def test_tabular_shifts_scale_offset_and_bias_the_covariates():
    shifts = [Shift("scale", 100, amount=3.0), Shift("offset", 200, amount=-1.0)]
    Xs, _, _ = ShiftStream(X, Y, shifts, n_samples=300, seed=0).arrays()
    assert all(_source_label(row / 3.0) is not None for row in Xs[100:200])
    assert all(_source_label((row + 1.0) / 3.0) is not None for row in Xs[200:])
    stream = ShiftStream(X, Y, [Shift("covariate", 1000, amount=2.0)], n_samples=2000)
    Xs, _, _ = stream.arrays()
    score = stream._principal_score()
    index = {row.tobytes(): i for i, row in enumerate(stream.X)}
    before = np.mean([score[index[r.tobytes()]] for r in Xs[:1000]])
    after = np.mean([score[index[r.tobytes()]] for r in Xs[1000:]])
    assert after > before + 1.0


def test_iteration_yields_river_pairs():
    x, y = next(iter(digits_shift_stream(n_samples=10)))
    assert isinstance(x, dict) and len(x) == 64 and isinstance(y, int)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: Shift("melt", 0), "Unknown shift kind"),
        (lambda: Shift("rotate", -1), ">= 0"),
        (lambda: ShiftStream(X, Y, [Shift("rotate", 5)]), "image_shape"),
        (lambda: ShiftStream(X[:0], Y[:0]), "non-empty"),
        (
            lambda: ShiftStream(X, Y, [Shift("new_classes", 5, classes=(1,))], order="original"),
            "order='random'",
        ),
    ],
)
def test_bad_configurations_are_named(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_elec2_keeps_its_order():
    skip_without_data("elec2.npz")
    X_train, y_train, _, _ = load_elec2()
    Xs, ys, regime = elec2_stream().arrays()
    assert np.array_equal(Xs[:100], X_train[:100]) and np.array_equal(ys[:100], y_train[:100])
    assert (regime == 0).all()
