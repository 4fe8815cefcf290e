"""tpsgd-stream: learning on data streams without backpropagation.

:mod:`tpsgd_stream.engine` trains networks layer by layer with target projection SGD (tpSGD,
Lomnitz et al., arXiv 2208.08503) and its relatives; :mod:`tpsgd_stream.models` wraps it as
river estimators; :mod:`tpsgd_stream.drift` adapts them to drift; :mod:`tpsgd_stream.fleet`
runs one per stream key; :mod:`tpsgd_stream.cli` is the ``tpsgd-stream`` command.
"""

from . import _compat, engine
from .engine import *  # noqa: F403  (the engine's public names, the package's too)

_compat.install()

__version__ = "0.1.0"

__all__ = list(engine.__all__)
