"""Concept shifts that permute the labels: find the permutation.

After a label swap the inputs are unchanged and each old class now carries another label. The
old model's predictions on the new samples then agree with the new labels through a
permutation: the assignment that maximises the agreement of a confusion matrix (Hungarian
algorithm) recovers it. ``TPSGDClassifier.permute_classes`` then moves each label
onto the unit (its output row and its projection row) that the inputs of that label trained:
the hidden layers' targets stay what they learned and no weight changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["estimate_permutation"]


def estimate_permutation(
    predicted: Sequence, labels: Sequence, classes: Sequence, min_ratio: float = 3.0
) -> tuple[dict, float, float]:
    """The one-to-one map of old labels to new labels that best explains ``labels``.

    The map is kept only where it is clear: on the samples predicted as a class it moves,
    permuting must be right at least ``min_ratio`` times as often as not permuting. (With two
    classes any poor model's predictions are "explained" by swapping them a little better
    than by keeping them; a real label swap makes the unpermuted predictions nearly all wrong.)

    Parameters
    ----------
    predicted
        The old model's predictions (labels; ``None`` or unknown labels are skipped).
    labels
        The true labels of the same samples.
    classes
        The known labels (the candidates of the permutation).
    min_ratio
        How much more often the permutation must be right than the identity on the samples
        predicted as the classes it moves.

    Returns
    -------
    mapping
        ``{old: new}`` for the labels the permutation moves (``{}``: the identity is best,
        ties going to it, or the permutation is not clear).
    agreement
        Fraction of the samples whose permuted prediction equals their label.
    identity
        The same fraction without permuting (the plain accuracy).

    Examples
    --------
    >>> estimate_permutation(["a", "a", "b", "c"], ["b", "b", "a", "c"], ["a", "b", "c"])
    ({'a': 'b', 'b': 'a'}, 1.0, 0.25)
    >>> estimate_permutation(["a", "b"], ["a", "b"], ["a", "b", "c"])
    ({}, 1.0, 1.0)
    >>> estimate_permutation([0, 0, 0, 1, 1], [1, 1, 0, 0, 1], [0, 1])  # 3 right vs 2: unclear
    ({}, 0.6, 0.4)
    """
    if not len(labels) or not len(classes):
        return {}, 0.0, 0.0
    index = {c: i for i, c in enumerate(classes)}
    counts = np.zeros((len(classes), len(classes)))
    for p, y in zip(predicted, labels):
        if p in index and y in index:
            counts[index[p], index[y]] += 1
    # a bonus far below one sample on the diagonal: ties (classes without evidence) stay put
    rows, cols = linear_sum_assignment(counts + 1e-6 * np.eye(len(classes)), maximize=True)
    moved = rows != cols
    mapping = {classes[r]: classes[c] for r, c in zip(rows[moved], cols[moved])}
    if counts[rows[moved], cols[moved]].sum() < min_ratio * counts[rows[moved], rows[moved]].sum():
        mapping = {}
    n = len(labels)
    return mapping, float(counts[rows, cols].sum() / n), float(np.trace(counts) / n)
