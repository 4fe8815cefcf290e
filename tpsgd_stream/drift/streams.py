"""Domain-shift streams: planted abrupt or gradual shifts over any ``(X, y)`` arrays.

A :class:`ShiftStream` draws samples from a data set and, from each shift's position on, changes
them: images are rotated, permuted or inverted; tabular features scaled, offset or sampled with
a covariate bias; labels swapped (concept shift); held-back classes appear. Shifts accumulate (a
rotation at 10,000 and a label swap at 20,000 give rotated and swapped samples after 20,000).
With ``width > 0`` a shift is gradual: the chance that a sample comes from the new regime ramps
linearly from 0 to 1 over ``width`` samples. Everything is deterministic given ``seed``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Shift", "ShiftStream", "SHIFT_KINDS", "digits_shift_stream", "elec2_stream"]

IMAGE_KINDS = ("rotate", "permute", "invert")
FEATURE_KINDS = ("scale", "offset", "covariate")
LABEL_KINDS = ("label_swap", "new_classes")
SHIFT_KINDS = IMAGE_KINDS + FEATURE_KINDS + LABEL_KINDS


@dataclass(frozen=True)
class Shift:
    """One planted shift.

    Parameters
    ----------
    kind
        ``"rotate"`` (``amount`` degrees), ``"permute"`` (a fixed random pixel permutation),
        ``"invert"`` (``max - x``), ``"scale"`` (features times ``amount``), ``"offset"``
        (features plus ``amount``), ``"covariate"`` (samples drawn with weight
        ``exp(amount * z)``, ``z`` the standardised first principal direction of the features),
        ``"label_swap"`` (a fixed random permutation of the classes, or the pairs in
        ``classes``), ``"new_classes"`` (the classes in ``classes`` are withheld before the
        shift and appear at it).
    position
        Index of the first sample of the new regime.
    width
        0 for an abrupt shift; otherwise the length of the linear ramp into the new regime.
    amount
        The shift's size (degrees, factor, offset, bias strength), where the kind has one.
    classes
        For ``new_classes``, the classes that appear; for ``label_swap``, optional pairs to swap
        (``((0, 1), (2, 3))``).

    Examples
    --------
    >>> Shift("rotate", 1000, width=200, amount=45.0)
    Shift(kind='rotate', position=1000, width=200, amount=45.0, classes=())
    >>> Shift("melt", 0)
    Traceback (most recent call last):
    ...
    ValueError: Unknown shift kind 'melt'; expected one of (...).
    """

    kind: str
    position: int
    width: int = 0
    amount: float | None = None
    classes: tuple = field(default_factory=tuple)

    def __post_init__(self):
        if self.kind not in SHIFT_KINDS:
            raise ValueError(f"Unknown shift kind {self.kind!r}; expected one of {SHIFT_KINDS}.")
        if self.position < 0 or self.width < 0:
            raise ValueError(
                f"Shift position and width must be >= 0, got {self.position}, {self.width}."
            )
        if self.kind == "new_classes" and not self.classes:
            raise ValueError("A 'new_classes' shift needs the classes that appear.")


_DEFAULT_AMOUNT = {"rotate": 90.0, "scale": 2.0, "offset": 1.0, "covariate": 2.0}


class ShiftStream:
    """A deterministic stream over ``(X, y)`` with planted shifts.

    Parameters
    ----------
    X, y
        The data: ``X`` of shape ``(n, d)`` (or ``(n, h, w)`` images, flattened in the stream).
    shifts
        The :class:`Shift` list, in any order.
    n_samples
        Length of the stream (default: one sample per data row).
    order
        ``"random"``: samples drawn at random (with replacement) from the rows the current
        regime allows. ``"original"``: the rows in their own order, cycled (for a real stream
        such as Elec2, whose drift is in its order).
    image_shape
        ``(h, w)`` of each image, needed by the image shifts when ``X`` is flat.
    seed
        Seeds the sample order, the gradual ramps and every random permutation.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> X, y = load_digits(return_X_y=True)
    >>> stream = ShiftStream(X, y, [Shift("label_swap", 100)], n_samples=200, seed=0)
    >>> Xs, ys, regime = stream.arrays()
    >>> Xs.shape, int(regime[99]), int(regime[100])
    ((200, 64), 0, 1)
    >>> x, label = next(iter(stream))
    >>> len(x), type(label).__name__
    (64, 'int')
    """

    def __init__(
        self,
        X: np.ndarray,
        y: np.ndarray,
        shifts: Sequence[Shift] = (),
        *,
        n_samples: int | None = None,
        image_shape: tuple[int, int] | None = None,
        order: str = "random",
        seed: int = 0,
    ):
        X, y = np.asarray(X), np.asarray(y)
        if X.ndim == 3 and image_shape is None:
            image_shape = X.shape[1:]
        if len(X) == 0 or len(X) != len(y):
            raise ValueError(f"X and y must be non-empty and of equal length: {len(X)}, {len(y)}.")
        X = X.reshape(len(X), -1).astype(np.float32)
        self.X, self.y = X, y
        self.shifts = sorted(shifts, key=lambda s: s.position)
        self.n_samples = int(n_samples or len(X))
        self.image_shape = None if image_shape is None else tuple(int(s) for s in image_shape)
        if self.image_shape and np.prod(self.image_shape) != X.shape[1]:
            raise ValueError(
                f"image_shape {self.image_shape} does not match {X.shape[1]} features."
            )
        if any(s.kind in IMAGE_KINDS for s in self.shifts) and self.image_shape is None:
            raise ValueError("Image shifts (rotate, permute, invert) need image_shape=(h, w).")
        if order not in ("random", "original"):
            raise ValueError(f"order must be 'random' or 'original', got {order!r}.")
        if order == "original" and any(s.kind in ("new_classes", "covariate") for s in shifts):
            raise ValueError("'new_classes' and 'covariate' shifts resample: use order='random'.")
        self.order = order
        self.seed = int(seed)
        self.feature_names = [f"x{i}" for i in range(X.shape[1])]

    # --------------------------------------------------------------------------- the regimes
    def regimes(self) -> np.ndarray:
        """For each sample, how many shifts are active (0 before the first)."""
        rng = np.random.default_rng([self.seed, 1])
        t = np.arange(self.n_samples)
        regime = np.zeros(self.n_samples, dtype=int)
        for shift in self.shifts:
            if shift.width == 0:
                active = t >= shift.position
            else:
                chance = np.clip((t - shift.position) / shift.width, 0.0, 1.0)
                active = rng.random(self.n_samples) < chance
            regime += active
        return regime

    def _indices(self, regime: np.ndarray) -> np.ndarray:
        """Which data row each stream sample shows, honouring withheld classes and biases."""
        if self.order == "original":
            return np.arange(self.n_samples) % len(self.X)
        rng = np.random.default_rng([self.seed, 2])
        indices = np.empty(self.n_samples, dtype=int)
        for r in np.unique(regime):
            where = np.flatnonzero(regime == r)
            weights = self._sampling_weights(r)
            indices[where] = rng.choice(len(self.X), size=len(where), p=weights)
        return indices

    def _sampling_weights(self, regime: int) -> np.ndarray:
        weights = np.ones(len(self.X))
        for k, shift in enumerate(self.shifts):
            active = k < regime
            if shift.kind == "new_classes" and not active:
                weights[np.isin(self.y, shift.classes)] = 0.0
            if shift.kind == "covariate" and active:
                weights *= np.exp(_amount(shift) * self._principal_score())
        if weights.sum() == 0:
            raise ValueError("The withheld classes leave no sample to draw before their shift.")
        return weights / weights.sum()

    def _principal_score(self) -> np.ndarray:
        centred = self.X - self.X.mean(0)
        _, _, vt = np.linalg.svd(centred[:2000], full_matrices=False)
        score = centred @ vt[0]
        return (score - score.mean()) / (score.std() + 1e-12)

    # ------------------------------------------------------------------------ transforming
    def _transform(self, X: np.ndarray, y: np.ndarray, shift: Shift, k: int):
        rng = np.random.default_rng([self.seed, 3, k])
        kind = shift.kind
        if kind == "rotate":
            X = _rotate(X, self.image_shape, _amount(shift))
        elif kind == "permute":
            X = X[:, rng.permutation(X.shape[1])]
        elif kind == "invert":
            X = self.X.max() - X
        elif kind == "scale":
            X = X * _amount(shift)
        elif kind == "offset":
            X = X + _amount(shift)
        elif kind == "label_swap":
            y = _swap_labels(y, np.unique(self.y), shift.classes, rng)
        return X, y

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The whole stream as ``(X, y, regime)`` arrays."""
        regime = self.regimes()
        index = self._indices(regime)
        X, y = self.X[index].copy(), self.y[index].copy()
        for k, shift in enumerate(self.shifts):
            rows = regime > k
            if rows.any():
                X[rows], y[rows] = self._transform(X[rows], y[rows], shift, k)
        return X, y, regime

    def __iter__(self) -> Iterator[tuple[dict, object]]:
        """``(x, y)`` pairs as river expects: ``x`` a dict of floats, ``y`` a Python scalar."""
        X, y, _ = self.arrays()
        for row, label in zip(X, y):
            yield dict(zip(self.feature_names, row.tolist())), label.item()

    def __len__(self) -> int:
        return self.n_samples


def _amount(shift: Shift) -> float:
    return float(shift.amount if shift.amount is not None else _DEFAULT_AMOUNT[shift.kind])


def _rotate(X: np.ndarray, image_shape: tuple[int, int], degrees: float) -> np.ndarray:
    images = X.reshape(len(X), *image_shape)
    if degrees % 90 == 0:
        rotated = np.rot90(images, k=int(degrees // 90) % 4, axes=(1, 2))
    else:
        from scipy.ndimage import rotate

        rotated = rotate(images, degrees, axes=(1, 2), reshape=False, order=1)
    return np.ascontiguousarray(rotated).reshape(len(X), -1)


def _swap_labels(y: np.ndarray, classes: np.ndarray, pairs: tuple, rng) -> np.ndarray:
    if pairs:
        mapping = {}
        for a, b in pairs:
            mapping[a], mapping[b] = b, a
    else:  # one random cycle through all classes: every label changes
        cycle = rng.permutation(classes)
        mapping = dict(zip(cycle.tolist(), np.roll(cycle, -1).tolist()))
    return np.array([mapping.get(label, label) for label in y.tolist()], dtype=y.dtype)


def digits_shift_stream(
    shifts: Sequence[Shift] | None = None, *, n_samples: int = 6000, seed: int = 0
) -> ShiftStream:
    """scikit-learn's digits (8x8, ships with scikit-learn) as a shift stream.

    The default plants a 90-degree rotation at a third of the stream and a label swap at two
    thirds.

    Examples
    --------
    >>> stream = digits_shift_stream(n_samples=300)
    >>> [s.kind for s in stream.shifts]
    ['rotate', 'label_swap']
    """
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    if shifts is None:
        shifts = [Shift("rotate", n_samples // 3), Shift("label_swap", 2 * n_samples // 3)]
    return ShiftStream(X, y, shifts, n_samples=n_samples, image_shape=(8, 8), seed=seed)


def elec2_stream(path: str | None = None) -> ShiftStream:
    """Elec2, the real drifting stream (train then test rows, in their order), no planted shift.

    ``path`` is ``elec2.npz`` or its folder; by default ``$TPSGD_DATA`` (see
    :func:`tpsgd_stream.datasets.load_elec2`).
    """
    from ..datasets import load_elec2

    X_train, y_train, X_test, y_test = load_elec2(path)
    X, y = np.concatenate([X_train, X_test]), np.concatenate([y_train, y_test])
    return ShiftStream(X, y, (), order="original")
