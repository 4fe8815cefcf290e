"""The field's array layout for the sequence classifiers: ``learn_many``, ``predict_many`` and
``predict_proba_many`` on a 3-D array ``(cases, channels, time steps)`` (as aeon, sktime and the
UCR/UEA archive store sequences) or a list of ``(T, d)`` arrays of any lengths."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._sequence_base import scoped_threads

__all__ = ["SequenceArrays", "as_sequences"]


def as_sequences(X, owner: str) -> list[np.ndarray]:
    """``X`` as a list of ``(T, d)`` arrays: a 3-D array's cases transposed, a list as is.

    Examples
    --------
    >>> [s.shape for s in as_sequences(np.zeros((2, 3, 5)), "M")]
    [(5, 3), (5, 3)]
    >>> [s.shape for s in as_sequences([np.zeros((4, 1)), np.zeros((7, 1))], "M")]
    [(4, 1), (7, 1)]
    """
    if isinstance(X, np.ndarray):
        if X.ndim != 3:
            raise ValueError(
                f"{owner}: X must be a 3-D array (cases, channels, time steps) or a list of "
                f"(T, d) arrays; got an array of shape {X.shape}. Reshape a 2-D (cases, time "
                f"steps) array of univariate series with X[:, None, :]."
            )
        return [case.T for case in X]
    if isinstance(X, (list, tuple)):
        for i, case in enumerate(X):
            if not isinstance(case, np.ndarray) or case.ndim != 2:
                shape = getattr(case, "shape", type(case).__name__)
                raise ValueError(
                    f"{owner}: sequence {i} of the list must be a (T, d) numpy array (time "
                    f"steps, channels), got {shape}."
                )
        return list(X)
    raise TypeError(
        f"{owner}: X must be a 3-D numpy array (cases, channels, time steps) or a list of (T, d) "
        f"arrays; got {type(X).__name__}."
    )


class SequenceArrays:
    """Mixin: whole datasets of sequences, through the same path as ``learn_one``."""

    @scoped_threads
    def learn_many(self, X, y) -> None:
        """Learn the sequences of ``X`` in order, with labels ``y`` (same as ``learn_one`` on
        each; every sequence and label is checked before any is learned)."""
        name = type(self).__name__
        sequences = as_sequences(X, name)
        labels = list(y.tolist() if isinstance(y, (np.ndarray, pd.Series)) else y)
        if len(labels) != len(sequences):
            raise ValueError(
                f"{name}: X has {len(sequences)} sequences but y {len(labels)} labels."
            )
        checked = self._check_many(sequences, labels)
        for (keys, values), label in zip(checked, labels):
            self._learn_checked(keys, values, label, from_array=True)

    @scoped_threads
    def predict_proba_many(self, X) -> pd.DataFrame:
        """Class probabilities, a row per sequence and a column per class seen."""
        sequences = as_sequences(X, type(self).__name__)
        checked = self._check_many(sequences, None)
        return pd.DataFrame(self._proba_many(checked), columns=list(self._classes))

    def predict_many(self, X) -> pd.Series:
        """The most probable class of each sequence (``None`` before any label was seen)."""
        proba = self.predict_proba_many(X)
        if proba.shape[1] == 0:
            return pd.Series([None] * len(proba), dtype=object)
        return proba.idxmax(axis=1)
