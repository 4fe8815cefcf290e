"""torch's intra-op thread count, scoped to one call of the library.

A pool of threads costs more than it saves on the tiny tensors of a streaming update (a
minibatch of a few dozen rows through a layer of a few hundred units), and costs far more when
another process holds a core: the threads wait for each other at every operation. The
estimators therefore run their own torch work with one thread when it is small, and give the
process's setting back on the way out, so that ``torch.get_num_threads()`` outside the
library's calls is always what the user set.

**The rule** (:func:`threads_for`): an update of fewer than :data:`SMALL_WORK` multiply-adds
(minibatch rows times the forward multiply-adds of one sample) runs with one thread; larger
work runs with the process's own setting.
"""

from __future__ import annotations

import torch

__all__ = [
    "SMALL_WORK",
    "THREAD_CHOICES",
    "check_threads",
    "intra_op_threads",
    "single_blas_thread",
    "threads_for",
]

SMALL_WORK = 2**25
"""Multiply-adds of one update (about 33.5 M) below which it runs with a single thread
(``"auto"``): a minibatch of 32 through an MLP of up to 784-1024-10.

Measured with ``benchmarks/short_streams.py --parts threads`` on a shared 2-core machine
(``results/short_streams.json``): one thread beat two in 7 of 8 measurements from 0.3 M to
52 M multiply-adds an update, by 3.6x to 31x, since the second thread waits for a core that
another process holds (two won once, 0.9 against 1.3 ms at 0.3 M). Beyond the threshold the
process's setting is kept: work that large can pay for a pool on free cores, and
``torch_threads=1`` pins it anyway."""

THREAD_CHOICES = "'auto', None or an int >= 1"


def check_threads(owner: str, value) -> None:
    """A ``ValueError`` naming ``owner`` unless ``value`` is ``"auto"``, ``None`` or an int
    >= 1 (a valid ``torch_threads``).

    Examples
    --------
    >>> check_threads("Model", "auto")
    >>> check_threads("Model", 0)
    Traceback (most recent call last):
    ...
    ValueError: Model: torch_threads must be 'auto', None or an int >= 1, got 0.
    """
    if value is None or value == "auto" and isinstance(value, str):
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: torch_threads must be {THREAD_CHOICES}, got {value!r}.")


def threads_for(setting, work: int) -> int | None:
    """The intra-op threads for ``work`` multiply-adds under ``setting`` (a ``torch_threads``);
    ``None``: leave the process's setting alone.

    Examples
    --------
    >>> threads_for("auto", 32 * 64 * 128), threads_for("auto", 10**9), threads_for(4, 1)
    (1, None, 4)
    """
    if setting == "auto":
        return 1 if work < SMALL_WORK else None
    return setting


class intra_op_threads:
    """Run a ``with`` block with ``n`` torch intra-op threads, then restore the caller's count
    (``n=None``: change nothing).

    Examples
    --------
    >>> before = torch.get_num_threads()
    >>> with intra_op_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """

    __slots__ = ("n", "previous")

    def __init__(self, n: int | None):
        self.n = n
        self.previous = None

    def __enter__(self) -> None:
        if self.n is not None:
            self.previous = torch.get_num_threads()
            if self.previous != self.n:
                torch.set_num_threads(self.n)

    def __exit__(self, *exc_info) -> None:
        if self.previous is not None and self.previous != self.n:
            torch.set_num_threads(self.previous)


_BLAS: list = []  # [(get, set) of each BLAS library's thread count], found on first use


def _blas_libraries() -> list:
    """The thread-count getter and setter of each BLAS library numpy and scipy load
    (OpenBLAS, MKL, ...: threadpoolctl's controllers), found once; ``[]`` without
    threadpoolctl (then nothing is scoped)."""
    if not _BLAS:
        try:
            import scipy.linalg.blas  # noqa: F401  (loaded before the libraries are listed)
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _BLAS.append([])
        else:
            libraries = ThreadpoolController().select(user_api="blas").lib_controllers
            _BLAS.append([(lib.get_num_threads, lib.set_num_threads) for lib in libraries])
    return _BLAS[0]


class single_blas_thread:
    """Run a ``with`` block with one thread in numpy's and scipy's BLAS libraries, then restore
    the caller's counts (as :class:`intra_op_threads` does for torch's); a few microseconds.

    OpenBLAS splits a matrix-vector product or a rank-one update of a few hundred rows over
    its threads; when another process holds a core, each call then waits for a thread that
    cannot run: a 129x129 rank-one update measured up to 600 us instead of 5 on a busy 2-core
    machine. The per-sample least-squares readout makes several such calls a sample.

    Examples
    --------
    >>> import numpy as np
    >>> with single_blas_thread():
    ...     product = np.ones((300, 300)) @ np.ones(300)
    >>> float(product[0])
    300.0
    """

    __slots__ = ("changed",)

    def __enter__(self) -> None:
        changed = self.changed = []
        for get, set_ in _blas_libraries():
            n = get()
            if n != 1:
                set_(1)
                changed.append((set_, n))

    def __exit__(self, *exc_info) -> None:
        for set_, n in self.changed:
            set_(n)
