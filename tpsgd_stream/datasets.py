"""Loaders for the benchmark archives (MNIST, EEG Seizure, MNIST-1D, Elec2, UCR sets).

The archives are compressed NumPy files that hold ``X_train, y_train, X_test, y_test`` (plus a
few extra arrays). The folder holding them is taken from, in order,

1. the ``path`` argument (a folder, or the archive itself),
2. the environment variable ``TPSGD_DATA`` (a folder),
3. ``../shared/data`` next to the repository, when it holds the archive,
4. the cache folder (``$TPSGD_CACHE``, else ``~/.cache/tpsgd-stream``).

An archive found nowhere is built in the cache from its canonical source when the library
knows one with published checksums (:data:`SOURCES`: MNIST's four IDX files, MD5-checked):
each file is downloaded to a temporary name, its checksum verified, and the archive written
atomically, so a broken download never leaves a file that looks whole. ``TPSGD_DOWNLOAD=0``
turns downloads off (the test suite does). Any other missing archive raises
:class:`FileNotFoundError` naming the file, where to get it and ``TPSGD_DATA``.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "CACHE_ENV",
    "DATA_ENV",
    "DOWNLOAD_ENV",
    "MNIST_MEAN",
    "MNIST_STD",
    "ORIGINS",
    "SOURCES",
    "Source",
    "cache_dir",
    "data_dir",
    "download",
    "fetch",
    "load_npz",
    "load_mnist",
    "load_eeg_seizure",
    "load_mnist1d",
    "load_elec2",
]

DATA_ENV = "TPSGD_DATA"
CACHE_ENV = "TPSGD_CACHE"
DOWNLOAD_ENV = "TPSGD_DOWNLOAD"
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # pixel mean/std of the MNIST training images (in [0, 1])
_CHUNK = 1 << 20


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


def cache_dir() -> Path:
    """Where downloaded archives are kept: ``$TPSGD_CACHE``, else ``~/.cache/tpsgd-stream``.

    Examples
    --------
    >>> import os
    >>> os.environ["TPSGD_CACHE"] = "/tmp/tpsgd-cache"
    >>> str(cache_dir())
    '/tmp/tpsgd-cache'
    >>> del os.environ["TPSGD_CACHE"]
    """
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "tpsgd-stream"


@dataclass(frozen=True)
class Source:
    """The canonical files an archive is built from, and how.

    Parameters
    ----------
    files
        ``(url, checksum)`` pairs; the checksum is ``"md5:<hex>"`` or ``"sha256:<hex>"``, as
        the source publishes it. A file is saved under the last part of its URL.
    build
        Takes the downloaded files by name and returns the archive's arrays.
    origin
        Who made the data, for error messages and the docs.
    """

    files: tuple[tuple[str, str], ...]
    build: Callable[[dict[str, Path]], dict[str, np.ndarray]]
    origin: str


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzipped or not) of unsigned bytes as a numpy array of its shape."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as stream:
        data = stream.read()
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise ValueError(f"{path.name} is not an IDX file of unsigned bytes.")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{path.name} holds {body.size} values, its header says {shape}.")
    return body.reshape(shape)


def _build_mnist(files: dict[str, Path]) -> dict[str, np.ndarray]:
    return {
        "X_train": _read_idx(files["train-images-idx3-ubyte.gz"]),
        "y_train": _read_idx(files["train-labels-idx1-ubyte.gz"]),
        "X_test": _read_idx(files["t10k-images-idx3-ubyte.gz"]),
        "y_test": _read_idx(files["t10k-labels-idx1-ubyte.gz"]),
    }


_MNIST_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"  # torchvision's mirror
SOURCES: dict[str, Source] = {
    "mnist.npz": Source(
        files=tuple(
            (_MNIST_MIRROR + name, f"md5:{md5}")
            for name, md5 in (
                ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
                ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
                ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
                ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
            )
        ),
        build=_build_mnist,
        origin="LeCun, Cortes & Burges, the MNIST database (IDX files)",
    ),
}
"""Archives the library can build from their canonical files, checksums included."""

ORIGINS: dict[str, str] = {
    "mnist.npz": SOURCES["mnist.npz"].origin,
    "eeg_seizure_uci.npz": "UCI 'Epileptic Seizure Recognition' (Andrzejak et al. 2001), "
    "rows of data.csv, stratified 80/20 split",
    "mnist1d.npz": "MNIST-1D (Greydanus & Kobak): `mnist1d.data.make_dataset(get_dataset_args())`",
    "elec2.npz": "Elec2 (Harries 1999), scikit-multiflow's normalised elec.csv, temporal 80/20",
    "ucr_coffee.npz": "UCR archive, Coffee (timeseriesclassification.com), archive split",
    "ucr_pigcvp.npz": "UCR archive, PigCVP (timeseriesclassification.com), archive split",
    "ucr_chinatown.npz": "UCR archive, Chinatown (timeseriesclassification.com), archive split",
}
"""Where each archive's data comes from (for messages; see the data README for the layout)."""


def _checksum(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, dest: str | os.PathLike, checksum: str, *, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` and verify it; a file at ``dest`` that checks is kept.

    The bytes go to a temporary file beside ``dest``, which replaces ``dest`` only once its
    checksum (``"md5:<hex>"`` or ``"sha256:<hex>"``) matches: an interrupted or corrupted
    download never leaves a file that looks whole.

    Raises
    ------
    ConnectionError
        The server could not be reached or answered with an error.
    ValueError
        The checksum is malformed, or the downloaded bytes do not match it.

    Examples
    --------
    >>> download("http://127.0.0.1:9/x", "/tmp/x", "crc:0")
    Traceback (most recent call last):
    ...
    ValueError: checksum must be 'md5:<hex>' or 'sha256:<hex>', got 'crc:0'.
    """
    algorithm, _, expected = checksum.partition(":")
    if algorithm not in ("md5", "sha256") or not expected:
        raise ValueError(f"checksum must be 'md5:<hex>' or 'sha256:<hex>', got {checksum!r}.")
    dest = Path(dest)
    if dest.is_file() and _checksum(dest, algorithm) == expected.lower():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    for block in iter(lambda: response.read(_CHUNK), b""):
                        out.write(block)
            except (urllib.error.URLError, OSError) as err:
                raise ConnectionError(f"Could not download {url}: {err}") from None
        actual = _checksum(Path(tmp), algorithm)
        if actual != expected.lower():
            raise ValueError(
                f"{url} does not match its {algorithm} checksum (expected {expected}, got "
                f"{actual}); nothing was kept. Try again, or place the file in {dest.parent}."
            )
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def fetch(name: str, folder: str | os.PathLike | None = None) -> Path:
    """Build the archive ``name`` in ``folder`` (default :func:`cache_dir`) from its source.

    Downloads each file of ``SOURCES[name]`` (checksums verified), builds the arrays and writes
    ``folder / name`` atomically. An archive already there is returned as it is.

    Raises
    ------
    FileNotFoundError
        ``name`` has no known source with published checksums (see :data:`ORIGINS`).

    Examples
    --------
    >>> fetch("ucr_coffee.npz")
    Traceback (most recent call last):
    ...
    FileNotFoundError: ucr_coffee.npz cannot be downloaded by the library ...
    """
    folder = Path(folder) if folder is not None else cache_dir()
    target = folder / name
    if target.is_file():
        return target
    if name not in SOURCES:
        raise FileNotFoundError(
            f"{name} cannot be downloaded by the library (no checksummed source); it comes "
            f"from {ORIGINS.get(name, 'an unknown source')}. Place it in a folder and set "
            f"{DATA_ENV} to that folder."
        )
    source = SOURCES[name]
    raw = folder / "raw" / name.removesuffix(".npz")
    files = {
        url.rsplit("/", 1)[-1]: download(url, raw / url.rsplit("/", 1)[-1], checksum)
        for url, checksum in source.files
    }
    arrays = source.build(files)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".npz")
    os.close(fd)
    try:
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _downloads_allowed() -> bool:
    return os.environ.get(DOWNLOAD_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def _locate(name: str, path: str | os.PathLike | None) -> Path:
    """The archive's file: where the user points, else the data folders, else the cache
    (downloading it there when allowed and possible)."""
    if path is not None:
        folder = Path(path)
        file = folder if folder.suffix == ".npz" and folder.name == name else folder / name
        if not file.is_file():
            raise FileNotFoundError(
                f"{name} not found in {file.parent}; pass its folder as `path` or set "
                f"{DATA_ENV} to the folder holding it."
            )
        return file
    for folder in (data_dir(), cache_dir()):
        if (folder / name).is_file():
            return folder / name
    if name in SOURCES and _downloads_allowed():
        return fetch(name)
    how = (
        f"set {DOWNLOAD_ENV}=1 to download it"
        if name in SOURCES
        else f"it comes from {ORIGINS.get(name, 'an unknown source')}"
    )
    raise FileNotFoundError(
        f"{name} not found in {data_dir()} or {cache_dir()}; {how}. Pass its folder as `path` "
        f"or set {DATA_ENV} to the folder holding it."
    )


def load_npz(name: str, path: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """All arrays of the archive ``name`` (e.g. ``"mnist.npz"``) as a dict of numpy arrays.

    Parameters
    ----------
    name
        File name of the archive.
    path
        A folder holding it, or the archive's own path; ``None`` looks in :func:`data_dir`,
        then :func:`cache_dir`, then downloads it when :data:`SOURCES` knows how.

    Raises
    ------
    FileNotFoundError
        When the archive is absent and cannot be built; the message names the file, its
        origin and ``TPSGD_DATA``.

    Examples
    --------
    >>> load_npz("mnist.npz", path="/nonexistent")
    Traceback (most recent call last):
    ...
    FileNotFoundError: mnist.npz not found in /nonexistent; ... set TPSGD_DATA ...
    """
    with np.load(_locate(name, path), allow_pickle=False) as archive:
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
