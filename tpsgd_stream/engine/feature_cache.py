"""A content-keyed, size-bounded store of transformed sequences.

A fixed transform (:class:`~tpsgd_stream.engine.random_kernels.RandomKernels`) gives a
sequence the same features every time it sees it, so a model trained for several epochs, or
one that predicts a sequence before it learns it (test-then-train), need transform it only
once. :class:`FeatureCache` keys each sequence by a hash of its values and shape (never by
its position in a batch or an epoch), keeps integer rows in the narrowest integer type that
holds them, and evicts the least recently used rows once its bytes would pass ``max_bytes``.
Its rows are not part of a model's state: a pickled or copied cache starts empty.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np
import torch

__all__ = ["FeatureCache"]

_ENTRY_OVERHEAD = 200  # bytes a row costs beyond its values: key, tensor and dict entry


class FeatureCache:
    """Least-recently-used rows ``key -> (n_features,)`` integer tensor, at most ``max_bytes``.

    Parameters
    ----------
    max_bytes
        Upper bound on the bytes held (values and a fixed per-row overhead); ``0`` keeps
        nothing.

    Examples
    --------
    >>> import torch
    >>> cache = FeatureCache(max_bytes=10_000)
    >>> key = cache.key(torch.ones(1, 50))
    >>> cache.get(key) is None
    True
    >>> cache.put(key, torch.arange(100, dtype=torch.int32), largest=99)
    >>> cache.get(key).dtype, len(cache)
    (torch.int32, 1)
    >>> cache.key(torch.ones(1, 50)) == key, cache.key(torch.ones(1, 51)) == key
    (True, False)
    """

    def __init__(self, max_bytes: int):
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)):
            raise ValueError(f"FeatureCache: max_bytes must be an int, got {max_bytes!r}.")
        if max_bytes < 0:
            raise ValueError(f"FeatureCache: max_bytes must be >= 0, got {max_bytes}.")
        self.max_bytes = int(max_bytes)
        self._rows: OrderedDict[bytes, torch.Tensor] = OrderedDict()
        self.nbytes = 0
        self.hits = self.misses = 0

    @staticmethod
    def key(sequence: torch.Tensor) -> bytes:
        """A 16-byte digest of ``sequence``'s float32 values and its shape."""
        values = np.ascontiguousarray(sequence.detach().cpu().numpy(), dtype=np.float32)
        digest = hashlib.blake2b(values.tobytes(), digest_size=16)
        digest.update(repr(values.shape).encode())
        return digest.digest()

    def get(self, key: bytes) -> torch.Tensor | None:
        """The row stored under ``key`` as int32 (marked as recently used), or ``None``."""
        row = self._rows.get(key)
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        self._rows.move_to_end(key)
        return row.to(torch.int32)

    def put(self, key: bytes, row: torch.Tensor, largest: int) -> None:
        """Store ``row`` (integers in ``[0, largest]``) under ``key``, evicting the least
        recently used rows to stay within ``max_bytes``."""
        dtype = _narrowest(largest)
        cost = row.numel() * torch.empty((), dtype=dtype).element_size() + _ENTRY_OVERHEAD
        if cost > self.max_bytes or key in self._rows:
            return
        while self.nbytes + cost > self.max_bytes:
            _, evicted = self._rows.popitem(last=False)
            self.nbytes -= evicted.numel() * evicted.element_size() + _ENTRY_OVERHEAD
        self._rows[key] = row.to(dtype).clone()  # (a copy: never a view holding its batch)
        self.nbytes += cost

    def clear(self) -> None:
        self._rows.clear()
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self._rows)

    def __getstate__(self) -> dict:
        return {"max_bytes": self.max_bytes}  # a copy starts empty

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["max_bytes"])


def _narrowest(largest: int) -> torch.dtype:
    """The smallest integer type that holds ``0 .. largest``."""
    for dtype, top in ((torch.uint8, 255), (torch.int16, 32767)):
        if largest <= top:
            return dtype
    return torch.int32
