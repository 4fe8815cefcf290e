"""Old import paths of the flat package, kept working with a ``DeprecationWarning``.

Before the package was split into ``engine/``, ``cli/`` and ``fleet/``, every module sat in
``tpsgd_stream/``; ``import tpsgd_stream.rules`` (or unpickling an object saved under such a
name) now loads :mod:`tpsgd_stream.engine.rules` and warns once.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

__all__ = ["MOVED", "install"]

MOVED = {
    **{
        f"tpsgd_stream.{name}": f"tpsgd_stream.engine.{name}"
        for name in (
            "activations",
            "bitflip",
            "forward_gradient",
            "layers",
            "losses",
            "network",
            "optim",
            "projection",
            "recurrent",
            "rules",
            "seeding",
            "training",
        )
    },
    **{
        f"tpsgd_stream.{name}": f"tpsgd_stream.cli.{name}"
        for name in ("demo", "runner", "plotting")
    },
}


class _MovedModuleLoader(importlib.abc.Loader):
    """Hands out the module at its new path under the old name."""

    def __init__(self, new_name: str):
        self.new_name = new_name

    def create_module(self, spec):
        warnings.warn(
            f"{spec.name} moved to {self.new_name}; the old path will be removed.",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.import_module(self.new_name)

    def exec_module(self, module) -> None:
        """Nothing to run: the module was executed at its new path."""


class _MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Finds the old names of moved modules (and nothing else)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, _MovedModuleLoader(MOVED[fullname]))


def install() -> None:
    """Put the finder on ``sys.meta_path`` once."""
    if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedModuleFinder())
