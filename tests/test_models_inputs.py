"""Bad input: clear errors, and a rejected sample leaves the model exactly as it was."""

from __future__ import annotations

import math
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from tpsgd_stream.models import TPSGDClassifier, TPSGDRegressor

torch.set_num_threads(1)  # see tests/test_estimators.py


def _trained(cls, n=10):
    model = cls(seed=0, batch_size=4)
    for i in range(n):  # leaves 2 samples in the buffer
        model.learn_one({"a": float(i), "b": 1.0 - i}, i % 2)
    return model


def _state(model):
    return (
        [p.detach().clone() for p in model.network.parameters()],
        model._buffer.copy(),
        model._buffer_y.copy(),
        model._n_buffered,
        dict(model._features),
        pickle.dumps(model),
    )


def _assert_unchanged(before, model):
    after = _state(model)
    assert all(torch.equal(a, b) for a, b in zip(before[0], after[0]))
    assert np.array_equal(before[1], after[1]) and np.array_equal(before[2], after[2])
    assert before[3:] == after[3:]


BAD_ROWS = [
    ({"a": 1.0, "b": math.nan}, ValueError, "'b'"),
    ({"a": math.inf, "new": 1.0}, ValueError, "'a'"),
    ({"a": 1.0, "color": "red"}, TypeError, "'color'.*str"),
    ({"a": None}, TypeError, "'a'.*NoneType"),
    ({"a": 1 + 2j}, TypeError, "'a'.*complex"),
    # finite in float64, infinite in the float32 the networks train in
    ({"a": 1.0, "b": 1e39}, ValueError, "'b'.*float32"),
    ({"a": -(10**400)}, ValueError, "'a'.*float32"),  # beyond any float
    ({"a": np.timedelta64(3, "s")}, TypeError, "'a'.*timedelta64"),
]


@pytest.mark.parametrize("cls", [TPSGDClassifier, TPSGDRegressor])
@pytest.mark.parametrize("x, error, message", BAD_ROWS)
def test_bad_row_is_rejected_and_model_unchanged(cls, x, error, message):
    model = _trained(cls)
    before = _state(model)
    with pytest.raises(error, match=message):
        model.learn_one(x, 1)
    with pytest.raises(error, match=message):
        model.predict_one(x)
    _assert_unchanged(before, model)


@pytest.mark.parametrize("cls", [TPSGDClassifier, TPSGDRegressor])
def test_none_label_is_rejected_and_model_unchanged(cls):
    model = _trained(cls)
    before = _state(model)
    with pytest.raises(ValueError, match="None"):
        model.learn_one({"a": 1.0, "brand_new": 2.0}, None)
    with pytest.raises(ValueError, match="None"):
        model.learn_many(pd.DataFrame({"a": [1.0, 2.0]}), pd.Series([1, None], dtype=object))
    _assert_unchanged(before, model)


def test_regressor_rejects_non_numeric_and_non_finite_targets():
    model = _trained(TPSGDRegressor)
    before = _state(model)
    with pytest.raises(TypeError, match="real number"):
        model.learn_one({"a": 1.0}, "3.5")
    with pytest.raises(ValueError, match="finite"):
        model.learn_one({"a": 1.0}, math.nan)
    _assert_unchanged(before, model)


@pytest.mark.parametrize("cls", [TPSGDClassifier, TPSGDRegressor])
def test_bad_frame_is_rejected_and_model_unchanged(cls):
    model = _trained(cls)
    before = _state(model)
    nan_frame = pd.DataFrame({"a": [1.0, np.nan], "new": [0.0, 1.0]})
    with pytest.raises(ValueError, match="'a'"):
        model.learn_many(nan_frame, pd.Series([0, 1]))
    text_frame = pd.DataFrame({"a": [1.0, 2.0], "word": ["x", "y"]})
    with pytest.raises(TypeError, match="'word'.*str"):
        model.learn_many(text_frame, pd.Series([0, 1]))
    with pytest.raises(TypeError, match="'word'.*str"):
        model.predict_many(text_frame)
    _assert_unchanged(before, model)


def test_non_finite_zero_imputes():
    model = _trained(TPSGDClassifier)
    imputing = model.clone({"non_finite": "zero"})
    for i in range(10):
        imputing.learn_one({"a": float(i), "b": 1.0 - i}, i % 2)
    imputing.learn_one({"a": math.nan, "b": math.inf}, 0)
    assert imputing.predict_proba_one({"a": math.nan, "b": 1.0}) == imputing.predict_proba_one(
        {"b": 1.0}
    )
    frame = pd.DataFrame({"a": [np.nan], "b": [1.0]})
    assert imputing.predict_many(frame).iloc[0] == imputing.predict_one({"b": 1.0})


def test_numpy_and_bool_values_are_numbers():
    model = TPSGDClassifier(seed=0, batch_size=2, batch_ramp=0)
    model.learn_one({"i": np.int32(3), "f": np.float32(0.5), "b": True, "nb": np.bool_(False)}, 1)
    model.learn_one({"i": 2, "f": 1.5, "b": False, "nb": np.bool_(True)}, 0)
    assert model._n_updates == 1


@pytest.mark.parametrize("cls", [TPSGDClassifier, TPSGDRegressor])
def test_nan_in_a_wide_dict_is_named_and_model_unchanged(cls):
    model = cls(seed=0, batch_size=4)
    for i in range(6):
        model.learn_one({f"p{j}": float(i + j) for j in range(64)}, i % 2)
    before = _state(model)
    x = {f"p{j}": (math.nan if j == 37 else float(j)) for j in range(64)}
    with pytest.raises(ValueError, match=r"\['p37'\]"):
        model.learn_one(x, 1)
    with pytest.raises(ValueError, match=r"\['p37'\]"):
        model.predict_one(x)
    _assert_unchanged(before, model)


def test_bad_label_among_known_ones_is_rejected_and_model_unchanged():
    model = _trained(TPSGDClassifier)
    before = _state(model)
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0]})
    with pytest.raises(TypeError, match="hashable"):
        model.learn_many(frame, pd.Series([0, [1], 1], dtype=object))
    with pytest.raises(ValueError, match="nan"):
        model.learn_many(frame, pd.Series([0, 1, math.nan], dtype=object))
    _assert_unchanged(before, model)


@pytest.mark.parametrize("cls", [TPSGDClassifier, TPSGDRegressor])
def test_non_finite_zero_never_writes_to_the_frame(cls):
    model = cls(seed=0, batch_size=2, non_finite="zero")
    frame = pd.DataFrame({"a": [1.0, np.nan, 3.0], "b": [np.inf, 2.0, 0.5]})
    copy = frame.copy()
    model.learn_many(frame, pd.Series([0, 1, 1]))
    model.predict_many(frame)
    pd.testing.assert_frame_equal(frame, copy)
    assert np.array_equal(model._buffer[0], np.array([3.0, 0.5], dtype=np.float32))


@pytest.mark.parametrize("cls", [TPSGDClassifier, TPSGDRegressor])
@pytest.mark.parametrize("x", [[1.0, 2.0], np.ones(2), pd.Series({"a": 1.0}), None])
def test_x_that_is_not_a_dict_is_rejected_and_model_unchanged(cls, x):
    model = _trained(cls)
    before = _state(model)
    for call in (lambda: model.learn_one(x, 1), lambda: model.predict_one(x)):
        with pytest.raises(TypeError, match="x must be a dict"):
            call()
    _assert_unchanged(before, model)


@pytest.mark.parametrize("cls", [TPSGDClassifier, TPSGDRegressor])
def test_frame_beyond_float32_is_rejected_or_zeroed(cls):
    model = _trained(cls)
    before = _state(model)
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [2.0, -1e300]})
    with pytest.raises(ValueError, match=r"\['b'\].*float32"):
        model.learn_many(frame, pd.Series([0, 1]))
    _assert_unchanged(before, model)
    zeroing = cls(seed=0, batch_size=2, batch_ramp=0, non_finite="zero")
    zeroing.learn_many(frame, pd.Series([0, 1]))
    zeroing.learn_one({"a": 1.0, "b": 1e39}, 1)
    zeroing.learn_one({"a": 2.0, "b": 2.0}, 0)
    assert zeroing._n_updates == 2
    assert all(torch.isfinite(p).all() for p in zeroing.network.parameters())


def test_many_large_values_within_float32_are_accepted():
    """Their sum of squares is above the fast check's bound; each value is representable."""
    model = TPSGDClassifier(seed=0, batch_size=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # (an l2 target may overflow: skipped)
        model.learn_one({f"f{i}": 2e38 for i in range(4)}, 0)
    assert model._n_updates + model.skipped_updates == 1  # accepted: learned, or undone
    assert all(torch.isfinite(p).all() for p in model.network.parameters())


@pytest.mark.parametrize(
    "label", [np.float32("nan"), np.float64("nan"), pd.NA, pd.NaT, np.datetime64("NaT")]
)
def test_missing_labels_of_any_type_are_rejected(label):
    model = _trained(TPSGDClassifier)
    before = _state(model)
    with pytest.raises(ValueError, match="every sample needs a label"):
        model.learn_one({"a": 1.0}, label)
    _assert_unchanged(before, model)


def test_tensor_label_is_rejected_rather_than_a_new_class_per_sample():
    model = _trained(TPSGDClassifier)
    before = _state(model)
    with pytest.raises(TypeError, match=r"y.item\(\)"):
        model.learn_one({"a": 1.0}, torch.tensor(1))
    _assert_unchanged(before, model)


@pytest.mark.parametrize("cls", [TPSGDClassifier, TPSGDRegressor])
def test_bad_input_is_named_before_any_learning_too(cls):
    model = cls(seed=0)
    with pytest.raises(TypeError, match="x must be a dict"):
        model.predict_one([1.0])
    with pytest.raises(ValueError, match="'a'"):
        model.predict_one({"a": math.nan})
    with pytest.raises(TypeError, match="DataFrame"):
        model.predict_many(np.ones((2, 2)))


def test_an_int_beyond_any_float_is_zeroed_when_asked():
    model = TPSGDClassifier(seed=0, batch_size=1, non_finite="zero")
    model.learn_one({"a": 10**400, "b": 1.0}, 0)
    assert model._n_updates == 1 and model._buffer[0, model._features["a"]] == 0.0
