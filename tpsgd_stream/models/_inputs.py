"""Turning river's dicts and pandas frames into float arrays, with input checks.

Every check runs before the estimator changes any state, so a rejected sample leaves the model
exactly as it was. The fast path for one dict is: one ``set(map(type, values))`` to check the
value types, one ``np.fromiter`` and one ``np.isfinite``.
"""

from __future__ import annotations

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
    return isinstance(value, np.generic) and np.issubdtype(type(value), np.number) and not (
        np.issubdtype(type(value), np.complexfloating)
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
    finite = np.isfinite(array)
    if not finite.all():
        if non_finite != "zero":
            names = [name for name, ok in zip(x, finite) if not ok]
            raise _non_finite_error(owner, names)
        array[~finite] = 0.0
    return array


def check_frame(X: pd.DataFrame, owner: str, non_finite: str) -> np.ndarray:
    """The values of a frame as a float64 ``(n, n_columns)`` array, after the same checks."""
    if not isinstance(X, pd.DataFrame):
        raise TypeError(f"{owner}: expected a pandas DataFrame, got {type(X).__name__}.")
    columns = []
    for name in X.columns:
        column = X[name]
        if pd.api.types.is_bool_dtype(column.dtype) or (
            pd.api.types.is_numeric_dtype(column.dtype)
            and not pd.api.types.is_complex_dtype(column.dtype)
        ):
            columns.append(column.to_numpy(dtype=np.float64, na_value=np.nan))
            continue
        for value in column:  # object columns: accept them only if every value is a number
            if not _is_number(value):
                raise _type_error(owner, name, value)
        columns.append(column.to_numpy(dtype=np.float64))
    array = np.stack(columns, axis=1) if columns else np.zeros((len(X), 0))
    finite = np.isfinite(array)
    if not finite.all():
        if non_finite != "zero":
            names = [name for name, ok in zip(X.columns, finite.all(axis=0)) if not ok]
            raise _non_finite_error(owner, names)
        array[~finite] = 0.0
    return array


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
