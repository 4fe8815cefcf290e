"""Where the commands and the examples write their files: a folder the user names, or a new
temporary one, never the current folder unasked."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["OutputFolderError", "output_folder", "short_path"]


class OutputFolderError(OSError):
    """The output folder cannot be made or written to."""


def output_folder(out: str | os.PathLike | None, purpose: str) -> Path:
    """``out``, made if needed and checked to be writable; ``None`` makes a temporary folder.

    Parameters
    ----------
    out
        The folder the user asked for, or ``None`` for a new folder in the system's temporary
        directory, named ``tpsgd-<purpose>-...``.
    purpose
        A word for the temporary folder's name (``"demo"``, ``"run"``).

    Raises
    ------
    OutputFolderError
        The folder cannot be made or written to; the message names it.

    Examples
    --------
    >>> folder = output_folder(None, "demo")
    >>> folder.name.startswith("tpsgd-demo-"), folder.is_dir()
    (True, True)
    >>> folder.rmdir()
    """
    if out is None:
        return Path(tempfile.mkdtemp(prefix=f"tpsgd-{purpose}-"))
    folder = Path(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".tpsgd-write-check"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise OutputFolderError(
            f"cannot write to --out {short_path(folder)}: {err.strerror}"
        ) from None
    return folder


def short_path(path: str | os.PathLike) -> str:
    """``path`` as text, its middle cut out when it is longer than 200 characters."""
    text = str(path)
    return text if len(text) <= 200 else f"{text[:100]}...{text[-50:]} ({len(text)} characters)"
