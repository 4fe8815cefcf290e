"""The optional dependencies: plots (``[plot]``: matplotlib), progress bars (tqdm), Ray and
fsspec for the fleet (``[ray]``). The core (torch, numpy, pandas, scipy, river) imports none of
them; what needs one imports it through here, and its absence is an ``ImportError`` that names
the extra to install (or, for progress bars, no bar)."""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator
from types import ModuleType
from typing import Any

__all__ = ["progress_bar", "require"]


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module``, or raise an ``ImportError`` naming the extra that installs it.

    Examples
    --------
    >>> require("json", "plot", "plotting").__name__
    'json'
    >>> require("no_such_module_here", "plot", "plotting")
    Traceback (most recent call last):
    ...
    ImportError: plotting needs no_such_module_here: pip install "tpsgd-stream[plot]"
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        raise ImportError(f'{purpose} needs {top}: pip install "tpsgd-stream[{extra}]"') from None


class _NoBar:
    """Stands in for a tqdm bar where tqdm is not installed: iterates, shows nothing."""

    def __init__(self, iterable: Iterable | None = None):
        self._iterable = iterable

    def __iter__(self) -> Iterator:
        return iter(self._iterable or ())

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int = 1) -> None:
        return None

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        return None

    def set_postfix_str(self, *args: Any, **kwargs: Any) -> None:
        return None

    def close(self) -> None:
        return None


def progress_bar(iterable: Iterable | None = None, **kwargs: Any):
    """A ``tqdm.auto.tqdm`` bar over ``iterable`` (``kwargs`` as tqdm's), or, where tqdm is not
    installed, a stand-in that iterates the same and shows nothing.

    Examples
    --------
    >>> list(progress_bar(range(3), disable=True))
    [0, 1, 2]
    """
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _NoBar(iterable)
    return tqdm(iterable, **kwargs)
