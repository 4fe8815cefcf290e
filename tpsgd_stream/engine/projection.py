"""Fixed random projections of the label: the targets and feedback matrices of local rules.

A hidden layer ``i`` trained with target projection learns towards ``y_i = onehot(y) @ P_i``.
DFA, sDFA and DRTP use the same kind of fixed matrix as their feedback ``B_i``, and a recurrent
layer one ``B_t`` per time step. :class:`Projection` generates them all: a kind names one
distribution (:func:`shape_rows` turns raw draws into it), whichever matrix it makes. Each
matrix is regenerated on demand from its seed, so a saved model stores no projection tensor,
and a new class only appends a row: the targets of earlier classes never change.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

__all__ = [
    "Projection",
    "PROJECTION_KINDS",
    "STEP_KINDS",
    "orthonormal_rows",
    "shape_rows",
    "step_matrix",
]

PROJECTION_KINDS = ("normal", "uniform", "binary", "orthogonal", "filter")
STEP_KINDS = ("normal", "uniform", "binary", "orthogonal")  # a recurrent layer's B_t


def shape_rows(
    kind: str, raw: np.ndarray, unit_shape: Sequence[int], *, exact_prefix: bool = True
) -> np.ndarray:
    """Rows of a ``kind`` matrix (before its scale) from raw draws, one row per class.

    ``raw`` holds ``(n_rows, n_units)`` draws: U(-1, 1) for ``"uniform"``, N(0, 1) for every
    other kind. ``"normal"`` and ``"uniform"`` keep them; ``"binary"`` takes the signs and
    ``"orthogonal"`` the unit-variance entries (norm ``sqrt(n_units)``) of the rows
    orthonormalised in order (Gram-Schmidt; once ``n_units`` rows are taken, later rows are
    only normalised); ``"filter"`` scales filter ``i`` of a ``(C, H, W)`` or ``(C, T)`` unit
    shape to standard deviation ``(i + 1) / C``. Row ``k`` depends only on raw rows ``0..k``.

    ``exact_prefix``: orthonormalise row by row, so that row ``k`` is bit for bit the same
    whatever the number of rows (a cached projection that grows with the classes); ``False``
    runs one QR factorisation instead (the same rows up to rounding, several times faster:
    for matrices made afresh at every step).

    Examples
    --------
    >>> raw = np.array([[3.0, 4.0], [1.0, 0.0], [2.0, 2.0]])
    >>> shape_rows("orthogonal", raw, (2,)) ** 2 @ np.ones(2)   # norms sqrt(n_units)
    array([2., 2., 2.])
    >>> shape_rows("binary", raw, (2,))
    array([[ 1.,  1.],
           [ 1., -1.],
           [ 1.,  1.]])
    >>> np.allclose(shape_rows("orthogonal", raw, (2,), exact_prefix=False),
    ...             shape_rows("orthogonal", raw, (2,)))
    True
    """
    unit_shape = tuple(unit_shape)
    if kind == "filter":
        n_filters = unit_shape[0]
        std = (np.arange(n_filters) + 1.0) / n_filters
        std = std.reshape(-1, *(1,) * (len(unit_shape) - 1))  # per filter, over its map
        return (raw.reshape(-1, *unit_shape) * std).reshape(len(raw), -1)
    if kind not in ("binary", "orthogonal"):
        return raw
    return _from_units(kind, orthonormal_rows(raw, exact_prefix=exact_prefix))


def _from_units(kind: str, units: np.ndarray) -> np.ndarray:
    """Unit-norm rows -> a ``"binary"`` (signs) or ``"orthogonal"`` (norm ``sqrt(n_units)``)
    matrix's rows."""
    if kind == "binary":
        return np.where(units >= 0, 1.0, -1.0)
    return units * math.sqrt(units.shape[1])


def orthonormal_rows(
    raw: np.ndarray, before: np.ndarray | None = None, *, exact_prefix: bool = True
) -> np.ndarray:
    """``raw``'s rows made unit-norm and orthogonal, in order, to the unit rows ``before``
    them (rows already taken) and to each other, while there is room (``n_units`` directions
    in all); the rows past that are only normalised.

    ``exact_prefix``: Gram-Schmidt row by row (twice, for stability), so that row ``k`` is bit
    for bit the same however many rows follow; ``False``: one QR factorisation (the same rows
    up to rounding, several times faster; only without ``before``).

    Examples
    --------
    >>> q = orthonormal_rows(np.array([[3.0, 4.0], [1.0, 0.0], [2.0, 2.0]]))
    >>> np.round(q @ q.T, 6)[:2, :2].tolist(), round(float(np.linalg.norm(q[2])), 6)
    ([[1.0, 0.0], [0.0, 1.0]], 1.0)
    >>> bool(np.allclose(orthonormal_rows(np.array([[1.0, 0.0]]), before=q[:1]) @ q[0], 0))
    True
    """
    n_units = raw.shape[1]
    taken = 0 if before is None else len(before)
    room = max(0, min(len(raw), n_units - taken))  # rows of raw that get a new direction
    units = np.empty_like(raw)
    if room < len(raw):
        rest = raw[room:]
        units[room:] = rest / np.linalg.norm(rest, axis=1, keepdims=True)
    if exact_prefix:
        basis = np.empty((taken + room, n_units))
        if taken:
            basis[:taken] = before
        for k in range(room):
            row, previous = raw[k], basis[: taken + k]
            if len(previous):
                row = row - (previous @ row) @ previous
                row = row - (previous @ row) @ previous
            units[k] = basis[taken + k] = row / math.sqrt(row @ row)
    elif room:
        if taken:
            raise ValueError("orthonormal_rows: exact_prefix=False takes no `before` rows.")
        q, r = torch.linalg.qr(torch.from_numpy(raw[:room].T))
        units[:room] = (q * torch.sign(torch.diagonal(r))).T.numpy()
    return units


class Projection:
    """A fixed random matrix ``P`` of shape ``(n_rows, *unit_shape)``, regenerated from a seed.

    Row ``k`` (the row of class ``k``) depends only on ``(seed, stream, k)`` and, for the
    orthogonal kinds, on the rows before it, so growing from ``k`` to ``k + 1`` rows never
    changes an existing row. :meth:`step_matrix` makes a recurrent layer's ``B_t`` of the same
    kind, from the same distribution.

    Parameters
    ----------
    kind
        ``"normal"``: entries N(0, 1). ``"uniform"``: U(-1, 1). ``"binary"``: +-1 entries, rows
        near-orthogonal (the signs of Gram-Schmidt-orthogonalised normal rows), as tpSGD-l1
        uses. ``"orthogonal"``: orthogonal rows with unit-variance entries, as DRTP uses.
        ``"filter"``: for conv feature maps of shape ``(C, H, W)``, filter ``i`` drawn from
        N(0, ((i + 1) / C)^2) over its spatial map, as the tpSGD paper does.
    scale
        Multiplies every entry (for ``fixed_readout_ce`` it acts as a softmax temperature).
    seed, stream
        Together with the row index they seed each row's generator; give each layer its own
        ``stream``.

    Examples
    --------
    >>> p = Projection("binary", seed=0, stream=1)
    >>> m = p.matrix(3, (8,))
    >>> m.shape, sorted(set(m.flatten().tolist()))
    (torch.Size([3, 8]), [-1.0, 1.0])
    >>> bool((p.matrix(4, (8,))[:3] == m).all())   # a fourth class keeps the old rows
    True
    """

    def __init__(self, kind: str = "normal", *, scale: float = 1.0, seed: int = 0, stream: int = 0):
        if kind not in PROJECTION_KINDS:
            raise ValueError(
                f"Unknown projection kind {kind!r}; expected one of {PROJECTION_KINDS}."
            )
        if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
            raise ValueError(f"Projection scale must be a positive finite number, got {scale!r}.")
        self.kind = kind
        self.scale = float(scale)
        self.seed = int(seed)
        self.stream = int(stream)
        self._cache: torch.Tensor | None = None
        # the orthogonal kinds' unit rows taken so far (at most n_units), for a new class's row
        self._basis: tuple[tuple[int, ...], np.ndarray | None] = ((), None)

    def __repr__(self) -> str:
        return (
            f"Projection(kind={self.kind!r}, scale={self.scale:g}, seed={self.seed}, "
            f"stream={self.stream})"
        )

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_cache"] = None  # regenerated from the seed: never pickled
        state["_basis"] = ((), None)
        return state

    def __setstate__(self, state: dict) -> None:
        state.setdefault("_basis", ((), None))  # (pickles made before the basis was kept)
        self.__dict__.update(state)

    @property
    def cached_bytes(self) -> int:
        """Bytes held by the cached matrix (the last one :meth:`matrix` returned); 0 when none.

        Examples
        --------
        >>> p = Projection("normal", seed=0)
        >>> p.cached_bytes, p.matrix(2, (8,)).dtype, p.cached_bytes
        (0, torch.float32, 64)
        """
        cache = self._cache
        return 0 if cache is None else cache.numel() * cache.element_size()

    def _draws(self, first: int, stop: int, n_units: int) -> np.ndarray:
        """Raw rows ``first:stop``, row ``k`` from its own generator seeded ``(seed, stream,
        k)``: U(-1, 1) for ``"uniform"``, N(0, 1) for the other kinds."""
        raw = np.empty((stop - first, n_units))
        for i, k in enumerate(range(first, stop)):
            rng = np.random.default_rng([self.seed, self.stream, k])
            if self.kind == "uniform":
                raw[i] = rng.uniform(-1.0, 1.0, n_units)
            else:
                raw[i] = rng.standard_normal(n_units)
        return raw

    def _taken(self, first: int, unit_shape: tuple[int, ...]) -> np.ndarray | None:
        """The unit rows of rows ``0:min(first, n_units)``, made once and kept."""
        n_units = math.prod(unit_shape)
        shape, basis = self._basis
        if shape != unit_shape:
            basis = None
        have = 0 if basis is None else len(basis)
        need = min(first, n_units)
        if have < need:
            new = orthonormal_rows(self._draws(have, need, n_units), basis)
            basis = new if basis is None else np.concatenate([basis, new])
            self._basis = (unit_shape, basis)
        return None if basis is None else basis[:need]

    def _raw_rows(self, first: int, stop: int, unit_shape: tuple[int, ...]) -> np.ndarray:
        """Rows ``first:stop``, scaled, at a cost that does not grow with ``first``: no earlier
        row is made again, only (for the orthogonal kinds) their kept unit rows are read."""
        raw = self._draws(first, stop, math.prod(unit_shape))
        if self.kind in ("binary", "orthogonal"):
            rows = _from_units(self.kind, orthonormal_rows(raw, self._taken(first, unit_shape)))
        else:
            rows = shape_rows(self.kind, raw, unit_shape)
        return rows.reshape(stop - first, *unit_shape) * self.scale

    def rows(
        self,
        first: int,
        stop: int,
        unit_shape: Sequence[int],
        *,
        device: torch.device | str = "cpu",
    ) -> torch.Tensor:
        """Rows ``first:stop`` of ``P`` as a float32 tensor, equal to ``matrix(stop, ...)
        [first:]``, at a cost that does not grow with ``first`` (a new class's row).

        Examples
        --------
        >>> p = Projection("orthogonal", seed=0, stream=1)
        >>> bool((p.rows(2, 4, (3,)) == p.matrix(4, (3,))[2:]).all())
        True
        """
        unit_shape = tuple(int(s) for s in unit_shape)
        raw = self._raw_rows(int(first), int(stop), unit_shape)
        return torch.as_tensor(raw, dtype=torch.float32).to(device)

    def matrix(
        self,
        n_rows: int,
        unit_shape: Sequence[int],
        *,
        device: torch.device | str = "cpu",
    ) -> torch.Tensor:
        """Return ``P`` as a float32 tensor of shape ``(n_rows, *unit_shape)`` on ``device``."""
        cache = self._cache
        if (  # (what a network asks for at every step: the matrix it made last time)
            cache is not None
            and cache.shape[0] == n_rows
            and cache.shape[1:] == unit_shape
            and cache.device == device
        ):
            return cache
        unit_shape = tuple(int(s) for s in unit_shape)
        if self.kind == "filter" and len(unit_shape) not in (2, 3):
            raise ValueError(
                f"A 'filter' projection needs a (channels, height, width) or (channels, time "
                f"steps) unit shape, got {unit_shape}; use it on Conv2d or Conv1d layers only."
            )
        if cache is None or cache.shape[1:] != unit_shape or cache.device != torch.device(device):
            cache = None
        elif cache.shape[0] >= n_rows:
            return cache if cache.shape[0] == n_rows else cache[:n_rows]
        first = 0 if cache is None else cache.shape[0]  # a new class: only its row is made
        new = self.rows(first, n_rows, unit_shape, device=device)
        self._cache = new if cache is None else torch.cat([cache, new])
        return self._cache

    def step_matrix(
        self, step: int, n_rows: int, n_units: int, *, device: torch.device | str = "cpu"
    ) -> torch.Tensor:
        """The matrix ``B_t`` of time step ``step``, ``(n_rows, n_units)``, generated on the
        spot (never cached): a recurrent layer uses one per time step, and keeping ``T`` of
        them would make memory grow with the sequence length.

        Its rows follow this projection's kind (:func:`shape_rows`); the raw draws come from
        one torch generator seeded with ``(seed, stream, step)``, a row at a time, which takes
        microseconds. A new class appends a row and keeps the others (up to rounding, for the
        orthogonal kinds: they are orthonormalised by one QR factorisation).

        Examples
        --------
        >>> p = Projection("orthogonal", seed=0, stream=1)
        >>> b = p.step_matrix(4, 3, 8)
        >>> torch.allclose(b @ b.T, 8 * torch.eye(3), atol=1e-5)
        True
        >>> torch.equal(p.step_matrix(4, 5, 8)[:3], b), torch.equal(p.step_matrix(5, 3, 8), b)
        (True, False)
        """
        from .seeding import derive_seed

        if self.kind not in STEP_KINDS:
            raise ValueError(
                f"Per-step matrices are one of {STEP_KINDS}; got {self.kind!r} (a 'filter' "
                f"projection is for Conv2d feature maps)."
            )
        generator = torch.Generator().manual_seed(derive_seed(self.seed, self.stream, step))
        # one draw per row, all of the same size: row k never depends on how many rows follow
        draw = torch.rand if self.kind == "uniform" else torch.randn
        raw = torch.stack([draw(n_units, generator=generator) for _ in range(n_rows)])
        if self.kind == "uniform":
            raw = raw * 2.0 - 1.0
        elif self.kind != "normal":
            rows = shape_rows(self.kind, raw.double().numpy(), (n_units,), exact_prefix=False)
            raw = torch.from_numpy(rows).float()
        return (raw * self.scale).to(device)


def step_matrix(
    kind: str,
    n_rows: int,
    n_units: int,
    *,
    seed: int,
    stream: int,
    step: int,
    scale: float = 1.0,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """The fixed matrix ``B_t`` of time step ``step``: :meth:`Projection.step_matrix`.

    Examples
    --------
    >>> b = step_matrix("binary", 2, 6, seed=0, stream=0, step=3)
    >>> b.shape, bool((b.abs() == 1).all())
    (torch.Size([2, 6]), True)
    >>> bool((step_matrix("binary", 3, 6, seed=0, stream=0, step=3)[:2] == b).all())
    True
    """
    projection = Projection(kind, scale=scale, seed=seed, stream=stream)
    return projection.step_matrix(step, n_rows, n_units, device=device)
