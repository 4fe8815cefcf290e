"""The dataset loaders: path resolution, the error when a file is absent, shapes when present."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import skip_without_data

from tpsgd_stream import datasets

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
