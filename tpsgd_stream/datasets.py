"""Loaders for the offline benchmark archives (MNIST, EEG Seizure, MNIST-1D, Elec2).

The archives are compressed NumPy files that hold ``X_train, y_train, X_test, y_test`` (plus a
few extra arrays). Nothing is downloaded: the folder holding them is taken from, in order,

1. the ``path`` argument (a folder, or the archive itself),
2. the environment variable ``TPSGD_DATA`` (a folder),
3. ``../shared/data`` next to the repository, when it exists.

A missing archive raises :class:`FileNotFoundError` naming the file and ``TPSGD_DATA``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = [
    "DATA_ENV",
    "MNIST_MEAN",
    "MNIST_STD",
    "data_dir",
    "load_npz",
    "load_mnist",
    "load_eeg_seizure",
    "load_mnist1d",
    "load_elec2",
]

DATA_ENV = "TPSGD_DATA"
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # pixel mean/std of the MNIST training images (in [0, 1])


def _default_dir() -> Path:
    return Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """The folder the archives are read from (``path``, else ``$TPSGD_DATA``, else shared/data).

    The folder need not exist: the loaders raise when the archive they want is missing.

    Examples
    --------
    >>> str(data_dir("/some/folder"))
    '/some/folder'
    """
    if path is not None:
        return Path(path)
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env)
    return _default_dir()


def load_npz(name: str, path: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """All arrays of the archive ``name`` (e.g. ``"mnist.npz"``) as a dict of numpy arrays.

    Parameters
    ----------
    name
        File name of the archive.
    path
        A folder holding it, or the archive's own path; ``None`` resolves the folder as
        :func:`data_dir` does.

    Raises
    ------
    FileNotFoundError
        When the archive is absent; the message names the file and ``TPSGD_DATA``.

    Examples
    --------
    >>> load_npz("mnist.npz", path="/nonexistent")
    Traceback (most recent call last):
    ...
    FileNotFoundError: mnist.npz not found in /nonexistent; ... set TPSGD_DATA ...
    """
    folder = Path(path) if path is not None else data_dir()
    file = folder if folder.suffix == ".npz" and folder.name == name else folder / name
    if not file.is_file():
        raise FileNotFoundError(
            f"{name} not found in {file.parent}; pass its folder as `path` or set {DATA_ENV} "
            f"to the folder holding it."
        )
    with np.load(file, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


def _split(arrays: dict[str, np.ndarray], labels: tuple[str, str] = ("y_train", "y_test")):
    """``(X_train, y_train, X_test, y_test)``, labels as int64."""
    return (
        arrays["X_train"],
        arrays[labels[0]].astype(np.int64),
        arrays["X_test"],
        arrays[labels[1]].astype(np.int64),
    )


def load_mnist(
    path: str | os.PathLike | None = None, *, standardize: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST: ``X_train (60000, 28, 28)``, ``y_train``, ``X_test (10000, 28, 28)``, ``y_test``.

    Parameters
    ----------
    path
        Folder holding ``mnist.npz`` (see :func:`data_dir`).
    standardize
        ``False``: the raw uint8 pixels. ``True``: float32 ``(pixel / 255 - 0.1307) / 0.3081``.

    Examples
    --------
    >>> X_train, y_train, X_test, y_test = load_mnist()  # doctest: +SKIP
    >>> X_train.shape, X_train.dtype                     # doctest: +SKIP
    ((60000, 28, 28), dtype('uint8'))
    """
    X_train, y_train, X_test, y_test = _split(load_npz("mnist.npz", path))
    if standardize:
        X_train, X_test = (
            ((X.astype(np.float32) / 255.0 - MNIST_MEAN) / MNIST_STD).astype(np.float32)
            for X in (X_train, X_test)
        )
    return X_train, y_train, X_test, y_test


def load_eeg_seizure(
    path: str | os.PathLike | None = None, *, five_class: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """EEG Seizure (UCI): ``X (9200, 178)`` / ``(2300, 178)`` int16 chunks and their labels.

    Parameters
    ----------
    path
        Folder holding ``eeg_seizure_uci.npz``.
    five_class
        ``False``: binary labels (1 = seizure). ``True``: the five UCI labels 1..5.

    Examples
    --------
    >>> X_train, y_train, X_test, y_test = load_eeg_seizure()  # doctest: +SKIP
    >>> X_train.shape, sorted(set(y_train.tolist()))           # doctest: +SKIP
    ((9200, 178), [0, 1])
    """
    arrays = load_npz("eeg_seizure_uci.npz", path)
    if five_class:
        return _split(arrays, ("y5_train", "y5_test"))
    return _split(arrays)


def load_mnist1d(
    path: str | os.PathLike | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST-1D: ``X (4000, 40)`` / ``(1000, 40)`` float32 sequences, 10 classes.

    Examples
    --------
    >>> X_train, y_train, X_test, y_test = load_mnist1d()  # doctest: +SKIP
    >>> X_train.shape                                      # doctest: +SKIP
    (4000, 40)
    """
    return _split(load_npz("mnist1d.npz", path))


def load_elec2(
    path: str | os.PathLike | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Elec2: ``X (36250, 6)`` / ``(9062, 6)`` float32, binary labels (1 = price up).

    The split is temporal: concatenate train and test, in order, for a prequential stream.

    Examples
    --------
    >>> X_train, y_train, X_test, y_test = load_elec2()  # doctest: +SKIP
    >>> X_train.shape                                    # doctest: +SKIP
    (36250, 6)
    """
    return _split(load_npz("elec2.npz", path))
