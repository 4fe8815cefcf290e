"""The feature map shared by every estimator: feature name -> input column.

A name gets a column the first time a sample with it is learned from; names new at the same
time get theirs in sorted order, so that the columns (and the initial weights they meet) never
depend on the order of a dict's keys. Missing names count as 0, and names never learned from
are ignored when predicting. The tabular, image and sequence estimators all map their inputs
through :class:`FeatureMap`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable

import numpy as np

from ._inputs import check_names

__all__ = ["FeatureMap", "name_key"]

_CACHE_SIZE = 1024  # entries of each tuple-of-keys -> columns cache


def name_key(name) -> tuple[str, str]:
    """A sort key for feature names of any (mixed) types: by type name, then ``repr``.

    Examples
    --------
    >>> sorted(["b", 2, "a", 1], key=name_key)
    [1, 2, 'a', 'b']
    """
    return type(name).__name__, repr(name)


class FeatureMap(dict):
    """Feature name -> input column (a ``dict``), with cached lookups of whole key tuples.

    Streams repeat the same keys in the same order, so the columns of a tuple of keys are
    cached (at most 1,024 tuples per cache).

    Parameters
    ----------
    names
        Names that take columns ``0, 1, ...`` in this order (a saved map, an image's pixels).
    sort_key
        Orders the names that :meth:`add` meets for the first time together.

    Examples
    --------
    >>> features = FeatureMap()
    >>> features.add(["b", "a"]), dict(features)
    (2, {'a': 0, 'b': 1})
    >>> features.add(["c", "a"]), features.columns(("c", "a"))
    (1, array([2, 0]))
    >>> columns, known = features.known_columns(("a", "zzz"))
    >>> columns, known
    (array([0]), array([ True, False]))
    >>> features.scatter(("zzz", "c"), np.array([9.0, 3.0]), np.zeros(3))
    array([0., 0., 3.])
    """

    def __init__(self, names: Iterable[Hashable] = (), *, sort_key: Callable = name_key):
        super().__init__()
        self.sort_key = sort_key
        self._reset_caches()
        self.extend(names)

    def _reset_caches(self) -> None:
        self._columns: dict = {}  # tuple of keys -> their columns (all known)
        self._known: dict = {}  # tuple of keys -> (columns of the known, mask or None)

    def __getstate__(self) -> dict:
        return {"sort_key": self.sort_key}  # the caches are rebuilt on demand

    def __setstate__(self, state: dict) -> None:
        self.sort_key = state["sort_key"]
        self._reset_caches()

    def extend(self, names: Iterable[Hashable]) -> None:
        """Give ``names`` (all new) the next columns, in the order given."""
        for name in names:
            self[name] = len(self)
        self._known.clear()  # keys unknown so far may be known now

    def add(self, names: Iterable[Hashable], owner: str = "FeatureMap") -> int:
        """Give the names of ``names`` without a column the next ones, in sorted order;
        return how many were new. A new name that is not equal to itself (NaN) or hashes by
        identity is refused (``TypeError`` naming ``owner``) before any column is added."""
        new = {name for name in names if name not in self}
        check_names(new, owner)
        new = sorted(new, key=self.sort_key)
        if new:
            self.extend(new)
        return len(new)

    def columns(self, keys: tuple) -> np.ndarray | None:
        """The columns of ``keys`` when every key has one, else ``None``."""
        columns = self._columns.get(keys)
        if columns is None:
            if not all(key in self for key in keys):
                return None
            columns = np.fromiter(map(self.__getitem__, keys), np.intp, len(keys))
            _store(self._columns, keys, columns)
        return columns

    def known_columns(self, keys: tuple) -> tuple[np.ndarray, np.ndarray | None]:
        """The columns of the keys of ``keys`` that have one, and the mask of those keys
        (``None`` when all have one)."""
        entry = self._known.get(keys)
        if entry is None:
            known = np.fromiter((key in self for key in keys), bool, len(keys))
            columns = np.fromiter((self[key] for key in keys if key in self), np.intp)
            entry = (columns, None if known.all() else known)
            _store(self._known, keys, entry)
        return entry

    def scatter(self, keys: tuple, values: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Write ``values`` (along ``keys``: one row, or rows ``(n, len(keys))``) into the
        columns of ``out`` (one row, or ``(n, width)``); values of keys without a column are
        ignored. Returns ``out``."""
        entry = self._known.get(keys)  # (inlined: this runs for every predicted row)
        columns, known = self.known_columns(keys) if entry is None else entry
        if out.ndim == 1:  # (plain indexing: an Ellipsis costs a row several times more)
            out[columns] = values if known is None else values[known]
        else:
            out[:, columns] = values if known is None else values[:, known]
        return out


def _store(cache: dict, keys: tuple, entry) -> None:
    if len(cache) >= _CACHE_SIZE:
        cache.clear()
    cache[keys] = entry
