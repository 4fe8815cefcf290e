"""Turning river's dicts and pandas frames into float arrays, with input checks.

Every check runs before the estimator changes any state, so a rejected sample leaves the model
exactly as it was. The fast path for one dict is: one ``set(map(type, values))`` to check the
value types, one ``np.fromiter`` and one ``np.isfinite``.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import pandas as pd

__all__ = ["NON_FINITE", "parse_values", "check_frame", "check_label"]

NON_FINITE = ("raise", "zero")

# Value types accepted without a closer look (isinstance checks cover the rest).
_FAST_TYPES = frozenset(
    {float, int, bool, np.float64, np.float32, np.float16, np.int64, np.int32, np.int16, np.int8}
    | {np.uint64, np.uint32, np.uint16, np.uint8, np.bool_}
)


def _is_number(value) -> bool:
    if isinstance(value, (numbers.Real, np.bool_)):
        return True
    return (
        isinstance(value, np.generic)
        and np.issubdtype(type(value), np.number)
        and not (np.issubdtype(type(value), np.complexfloating))
    )


def _type_error(owner: str, name, value) -> TypeError:
    return TypeError(
        f"{owner}: feature {name!r} has a value of type {type(value).__name__} ({value!r}); "
        f"expected a real number (int, float, bool). Encode it first, e.g. with "
        f"river.preprocessing.OneHotEncoder for categories."
    )


def _non_finite_error(owner: str, names: list) -> ValueError:
    return ValueError(
        f"{owner}: feature(s) {names} are NaN or infinite. Impute them upstream, or pass "
        f"non_finite='zero' to treat them as missing (0)."
    )


def parse_values(x: dict, owner: str, non_finite: str) -> np.ndarray:
    """The values of ``x`` as a float64 array, in ``x``'s key order.

    Raises ``TypeError`` naming a non-numeric feature and ``ValueError`` naming NaN or infinite
    ones (unless ``non_finite == "zero"``, which sets them to 0).
    """
    values = x.values()
    if not _FAST_TYPES.issuperset(map(type, values)):
        for name, value in x.items():
            if not _is_number(value):
                raise _type_error(owner, name, value)
    array = np.fromiter(values, dtype=np.float64, count=len(x))
    if not math.isfinite(sum(values)):  # one Python sum: NaN and inf propagate
        finite = np.isfinite(array)
        if not finite.all():  # (a finite sum can overflow: then all may still be finite)
            if non_finite != "zero":
                raise _non_finite_error(owner, [k for k, ok in zip(x, finite) if not ok])
            array[~finite] = 0.0
    return array


def check_frame(X: pd.DataFrame, owner: str, non_finite: str) -> np.ndarray:
    """The values of a frame as a float64 ``(n, n_columns)`` array, after the same checks.

    The array may share memory with ``X`` (a float64 frame): callers only read it.
    """
    if not isinstance(X, pd.DataFrame):
        raise TypeError(f"{owner}: expected a pandas DataFrame, got {type(X).__name__}.")
    array = X.to_numpy()  # one block for an all-numeric frame; object dtype if any is not
    if array.dtype.kind in "biuf":
        array = array.astype(np.float64, copy=False)  # may be a view: read, never written
    else:
        columns = [_column(X[name], name, owner) for name in X.columns]
        array = np.stack(columns, axis=1) if columns else np.zeros((len(X), 0))
    finite = np.isfinite(array)
    if not finite.all():
        if non_finite != "zero":
            names = [name for name, ok in zip(X.columns, finite.all(axis=0)) if not ok]
            raise _non_finite_error(owner, names)
        array = np.where(finite, array, 0.0)  # a copy: the user's frame is never written to
    return array


def _column(column: pd.Series, name, owner: str) -> np.ndarray:
    """One column as float64; an object column is accepted only if every value is a number."""
    if column.dtype.kind in "biuf":
        return column.to_numpy(dtype=np.float64, na_value=np.nan)
    for value in column:
        if not _is_number(value):
            raise _type_error(owner, name, value)
    return column.to_numpy(dtype=np.float64)


def check_label(y, owner: str) -> None:
    """A label must be hashable and not ``None`` (nor a float NaN)."""
    if y is None or (isinstance(y, float) and y != y):
        raise ValueError(f"{owner}: the label is {y!r}; every sample needs a label to learn from.")
    try:
        hash(y)
    except TypeError:
        raise TypeError(
            f"{owner}: labels must be hashable (int, str, bool, ...), got {type(y).__name__}."
        ) from None
