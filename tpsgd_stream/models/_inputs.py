"""Turning river's dicts and pandas frames into float arrays, with input checks.

Every check runs before the estimator changes any state, so a rejected sample leaves the model
exactly as it was. The fast path for one dict is: one ``set(map(type, values))`` to check the
value types, one ``np.fromiter`` and one dot product (NaN, infinities and values beyond
float32's range all show in the sum of squares).

Networks train in float32, so a value beyond its range (``|x| > 3.4e38``) counts as non-finite:
cast to float32 it would be infinite and turn the weights into NaN.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import pandas as pd
import torch

__all__ = [
    "NON_FINITE",
    "FLOAT32_MAX",
    "in_float32_range",
    "parse_values",
    "check_frame",
    "check_label",
    "check_names",
    "hashes_by_identity",
    "label_list",
]

NON_FINITE = ("raise", "zero")
FLOAT32_MAX = float(np.finfo(np.float32).max)
_MAX_SQUARED = FLOAT32_MAX**2  # a sum of squares above it has a value beyond float32 (or many)

# Value types accepted without a closer look (isinstance checks cover the rest).
_FAST_TYPES = frozenset(
    {float, int, bool, np.float64, np.float32, np.float16, np.int64, np.int32, np.int16, np.int8}
    | {np.uint64, np.uint32, np.uint16, np.uint8, np.bool_}
)


def _is_number(value) -> bool:
    if isinstance(value, np.timedelta64):  # (numpy counts it as an integer)
        return False
    if isinstance(value, (numbers.Real, np.bool_)):
        return True
    return (
        isinstance(value, np.generic)
        and np.issubdtype(type(value), np.number)
        and not (np.issubdtype(type(value), np.complexfloating))
    )


def _can_be_nan(value) -> bool:
    return isinstance(value, (float, np.floating, np.datetime64, np.timedelta64))


def _type_error(owner: str, name, value) -> TypeError:
    return TypeError(
        f"{owner}: feature {name!r} has a value of type {type(value).__name__} ({value!r}); "
        f"expected a real number (int, float, bool). Encode it first, e.g. with "
        f"river.preprocessing.OneHotEncoder for categories."
    )


def _non_finite_error(owner: str, names: list) -> ValueError:
    return ValueError(
        f"{owner}: feature(s) {names} are NaN, infinite or beyond float32's range "
        f"(|x| > {FLOAT32_MAX:.4g}). Impute or rescale them upstream, or pass "
        f"non_finite='zero' to treat them as missing (0)."
    )


def in_float32_range(array: np.ndarray) -> np.ndarray:
    """Which entries are finite and within float32's range (NaN compares false)."""
    return np.abs(array) <= FLOAT32_MAX


def parse_values(x: dict, owner: str, non_finite: str) -> np.ndarray:
    """The values of ``x`` as a float64 array, in ``x``'s key order.

    Raises ``TypeError`` naming a non-numeric feature (or when ``x`` is not a dict) and
    ``ValueError`` naming NaN, infinite or float32-overflowing ones (unless
    ``non_finite == "zero"``, which sets them to 0).
    """
    if not isinstance(x, dict):
        raise TypeError(
            f"{owner}: x must be a dict of feature name -> number, got {type(x).__name__}."
        )
    values = x.values()
    if not _FAST_TYPES.issuperset(map(type, values)):
        for name, value in x.items():
            if not _is_number(value):
                raise _type_error(owner, name, value)
    try:
        array = np.fromiter(values, dtype=np.float64, count=len(x))
    except OverflowError:  # an int (or a Fraction, a Decimal) beyond any float
        array = np.fromiter(map(_as_float, values), np.float64, len(x))  # (inf for those)
    if not array.dot(array) <= _MAX_SQUARED:  # NaN, inf, |x| > 3.4e38: not <=
        ok = in_float32_range(array)
        if not ok.all():  # (many large values can sum above it, each within range)
            if non_finite != "zero":
                raise _non_finite_error(owner, [k for k, good in zip(x, ok) if not good])
            array[~ok] = 0.0
    return array


def check_frame(X: pd.DataFrame, owner: str, non_finite: str) -> np.ndarray:
    """The values of a frame as a float64 ``(n, n_columns)`` array, after the same checks.

    The array may share memory with ``X`` (a float64 frame): callers only read it.
    """
    if not isinstance(X, pd.DataFrame):
        raise TypeError(f"{owner}: expected a pandas DataFrame, got {type(X).__name__}.")
    if X.columns.has_duplicates:
        repeated = X.columns[X.columns.duplicated()].unique().tolist()
        raise ValueError(f"{owner}: the frame has repeated column name(s) {repeated}.")
    array = X.to_numpy()  # one block for an all-numeric frame; object dtype if any is not
    if array.dtype.kind in "biuf":
        array = array.astype(np.float64, copy=False)  # may be a view: read, never written
    else:
        columns = [_column(X[name], name, owner) for name in X.columns]
        array = np.stack(columns, axis=1) if columns else np.zeros((len(X), 0))
    ok = in_float32_range(array)
    if not ok.all():
        if non_finite != "zero":
            names = [name for name, good in zip(X.columns, ok.all(axis=0)) if not good]
            raise _non_finite_error(owner, names)
        array = np.where(ok, array, 0.0)  # a copy: the user's frame is never written to
    return array


def _column(column: pd.Series, name, owner: str) -> np.ndarray:
    """One column as float64; an object column is accepted only if every value is a number
    (one beyond any float, such as ``10**400``, becomes inf: named by the range check)."""
    if column.dtype.kind in "biuf":
        return column.to_numpy(dtype=np.float64, na_value=np.nan)
    for value in column:
        if not _is_number(value):
            raise _type_error(owner, name, value)
    try:
        return column.to_numpy(dtype=np.float64)
    except OverflowError:
        return np.fromiter(map(_as_float, column), np.float64, len(column))


def _as_float(value) -> float:
    """``float(value)``, or an infinity of its sign where it is beyond any float."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


_PLAIN_LABELS = frozenset({int, str, bool})


def hashes_by_identity(value) -> bool:
    """Whether ``value`` (or an item of a tuple) is a torch tensor, is not equal to itself (a
    NaN of any type: float, numpy, ``Decimal``) or cannot be compared: as a dict key, each such
    value finds no match but itself, so every sample would add a new class, column or model.

    Examples
    --------
    >>> from decimal import Decimal
    >>> [hashes_by_identity(v) for v in (1, "a", (1, 2.0), float("nan"), Decimal("NaN"))]
    [False, False, False, True, True]
    """
    if type(value) in _PLAIN_LABELS:
        return False
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, tuple):
        return any(hashes_by_identity(v) for v in value)
    try:
        return bool(value != value)
    except Exception:  # a Decimal sNaN, a __ne__ that raises or returns an array
        return True


def _identity_error(owner: str, what: str, value) -> TypeError:
    return TypeError(
        f"{owner}: the {what} {value!r} ({type(value).__name__}) is not equal to itself or "
        f"hashes by identity (a NaN, a torch tensor, an object whose comparison raises), so "
        f"every sample would add a new one; use a plain int, str or tuple of these."
    )


def check_label(y, owner: str) -> None:
    """A label must be hashable by value and not missing (``None``, a NaN of any type,
    ``pd.NA``, ``NaT``): a torch tensor, hashed by identity, would add a class per sample."""
    if type(y) in _PLAIN_LABELS:
        return
    if y is None or y is pd.NA or y is pd.NaT or (_can_be_nan(y) and y != y):
        raise _missing_label(owner, y)
    if isinstance(y, torch.Tensor):
        raise TypeError(
            f"{owner}: the label is a torch tensor, which hashes by identity (every sample would "
            f"be a new class); pass y.item() or a plain int / str."
        )
    try:
        hash(y)
    except TypeError:
        raise TypeError(
            f"{owner}: labels must be hashable (int, str, bool, ...), got {type(y).__name__}."
        ) from None
    if not isinstance(y, tuple) and hashes_by_identity(y):
        try:
            missing = bool(y != y)  # a NaN of another type (Decimal): a missing label
        except Exception:
            missing = False
        raise _missing_label(owner, y) if missing else _identity_error(owner, "label", y)
    if hashes_by_identity(y):
        raise _identity_error(owner, "label", y)


def _missing_label(owner: str, y) -> ValueError:
    return ValueError(f"{owner}: the label is {y!r}; every sample needs a label to learn from.")


def check_names(names, owner: str) -> None:
    """New feature names must equal themselves (not NaN) and be hashable by value."""
    for name in names:
        if hashes_by_identity(name):
            raise _identity_error(owner, "feature name", name)


def label_list(y, owner: str) -> list:
    """The labels (or targets) of a ``learn_many`` call as a list, one per row: from a pandas
    Series, a list, a tuple or a 1-d array (tuples inside stay labels)."""
    if isinstance(y, np.ma.MaskedArray) and np.ma.is_masked(y):
        raise ValueError(
            f"{owner}: y is a masked array with {int(np.ma.count_masked(y))} masked value(s); "
            f"every sample needs a label: drop those rows or fill them first."
        )
    if isinstance(y, pd.Series):
        return y.tolist()
    if isinstance(y, (list, tuple)) or (isinstance(y, np.ndarray) and y.ndim == 1):
        return list(y)
    raise TypeError(
        f"{owner}: y must be a pandas Series (or a list) with one label per row of X, "
        f"got {type(y).__name__}."
    )
