"""Fixed random projections of the label: the targets and feedback matrices of local rules.

A hidden layer ``i`` trained with target projection learns towards ``y_i = onehot(y) @ P_i``.
DFA, sDFA and DRTP use the same kind of fixed matrix as their feedback ``B_i``. Each matrix is
regenerated on demand from ``(seed, stream, row)``, so a saved model stores no projection
tensor, and a new class only appends a row: the targets of earlier classes never change.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["Projection", "PROJECTION_KINDS"]

PROJECTION_KINDS = ("normal", "uniform", "binary", "orthogonal", "filter")


def _orthogonalise(row: np.ndarray, previous: list[np.ndarray]) -> np.ndarray:
    """Gram-Schmidt ``row`` against the unit-norm ``previous`` rows (twice, for stability)."""
    if len(previous) >= row.size:
        return row  # no room left for another orthogonal direction
    for _ in range(2):
        for q in previous:
            row = row - (row @ q) * q
    return row


class Projection:
    """A fixed random matrix ``P`` of shape ``(n_rows, *unit_shape)``, regenerated from a seed.

    Row ``k`` (the row of class ``k``) depends only on ``(seed, stream, k)`` and, for the
    orthogonal kinds, on the rows before it, so growing from ``k`` to ``k + 1`` rows never
    changes an existing row.

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

    def __repr__(self) -> str:
        return (
            f"Projection(kind={self.kind!r}, scale={self.scale:g}, seed={self.seed}, "
            f"stream={self.stream})"
        )

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_cache"] = None  # regenerated from the seed: never pickled
        return state

    def _raw_rows(self, n_rows: int, unit_shape: tuple[int, ...]) -> np.ndarray:
        n_units = math.prod(unit_shape)
        rows: list[np.ndarray] = []
        unit_rows: list[np.ndarray] = []
        for k in range(n_rows):
            rng = np.random.default_rng([self.seed, self.stream, k])
            if self.kind == "uniform":
                row = rng.uniform(-1.0, 1.0, n_units)
            elif self.kind == "filter":
                n_filters = unit_shape[0]
                std = (np.arange(n_filters) + 1.0) / n_filters
                row = (rng.standard_normal(unit_shape) * std[:, None, None]).reshape(-1)
            else:
                row = rng.standard_normal(n_units)
            if self.kind in ("binary", "orthogonal"):
                row = _orthogonalise(row, unit_rows)
                unit = row / np.linalg.norm(row)
                unit_rows.append(unit)
                row = (
                    np.where(row >= 0, 1.0, -1.0)
                    if self.kind == "binary"
                    else unit * math.sqrt(n_units)
                )
            rows.append(row)
        return np.stack(rows).reshape(n_rows, *unit_shape) * self.scale

    def matrix(
        self,
        n_rows: int,
        unit_shape: Sequence[int],
        *,
        device: torch.device | str = "cpu",
    ) -> torch.Tensor:
        """Return ``P`` as a float32 tensor of shape ``(n_rows, *unit_shape)`` on ``device``."""
        unit_shape = tuple(int(s) for s in unit_shape)
        if self.kind == "filter" and len(unit_shape) != 3:
            raise ValueError(
                f"A 'filter' projection needs a (channels, height, width) unit shape, got "
                f"{unit_shape}; use it on Conv2d layers only."
            )
        cache = self._cache
        if (
            cache is None
            or cache.shape != (n_rows, *unit_shape)
            or cache.device != torch.device(device)
        ):
            raw = self._raw_rows(n_rows, unit_shape)
            cache = torch.as_tensor(raw, dtype=torch.float32).to(device)
            self._cache = cache
        return cache


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
    """The fixed matrix ``B_t`` of time step ``step``, generated on the spot (never stored).

    A recurrent layer uses a different matrix at each time step; keeping ``T`` of them would
    make memory grow with the sequence length, so each is regenerated from
    ``(seed, stream, step)`` by a local torch generator (microseconds). Rows fill in order, so
    a new class appends a row and keeps the others. ``"binary"`` rows are the signs of normal
    rows (near-orthogonal, ``|cos| ~ 1/sqrt(n_units)``); ``"orthogonal"`` rows are
    orthonormalised by QR and scaled to unit-variance entries.

    Examples
    --------
    >>> b = step_matrix("binary", 2, 6, seed=0, stream=0, step=3)
    >>> b.shape, bool((b.abs() == 1).all())
    (torch.Size([2, 6]), True)
    >>> bool((step_matrix("binary", 3, 6, seed=0, stream=0, step=3)[:2] == b).all())
    True
    """
    from .seeding import derive_seed

    generator = torch.Generator().manual_seed(derive_seed(seed, stream, step))
    # one draw per row, all of the same size: row k never depends on how many rows follow
    draw = torch.rand if kind == "uniform" else torch.randn
    raw = torch.stack([draw(n_units, generator=generator) for _ in range(n_rows)])
    if kind == "uniform":
        raw = raw * 2.0 - 1.0
    if kind == "binary":
        raw = torch.where(raw >= 0, 1.0, -1.0)
    elif kind == "orthogonal" and n_rows <= n_units:
        q, r = torch.linalg.qr(raw.T)
        raw = (q * torch.sign(torch.diagonal(r))).T * math.sqrt(n_units)
    elif kind not in ("normal", "uniform", "orthogonal"):
        raise ValueError(
            f"Per-step matrices are normal, uniform, binary or orthogonal; got {kind!r}."
        )
    return (raw * scale).to(device)
