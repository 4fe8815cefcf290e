"""The ``tpsgd-stream`` command end to end, as a user runs it (through a subprocess)."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tpsgd_stream.cli import main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "tpsgd_stream.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


@pytest.mark.slow
def test_demo_prints_both_models_and_writes_a_png(tmp_path):
    plot = tmp_path / "demo.png"
    done = _cli("demo", "--samples", "300", "--plot", str(plot))
    assert done.returncode == 0, done.stderr
    assert "tpSGD (tpsgd_l2_gated)" in done.stdout and "backprop (bp)" in done.stdout
    assert "samples/s" in done.stdout
    assert plot.read_bytes().startswith(PNG_SIGNATURE)


@pytest.fixture
def csv_stream(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    frame["label"] = np.where(X[:, 0] + X[:, 1] > 0, "up", "down")
    path = tmp_path / "stream.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.slow
def test_run_on_a_csv_writes_metrics_and_plot(csv_stream, tmp_path):
    out = tmp_path / "out"
    done = _cli(
        "run",
        str(csv_stream),
        "--target",
        "label",
        "--layers",
        "16",
        "--batch-size",
        "4",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "classification" and metrics["n_samples"] == 400
    assert metrics["value"] > 0.7  # a linearly separable stream
    assert (out / "accuracy.png").read_bytes().startswith(PNG_SIGNATURE)


@pytest.mark.slow
def test_run_on_an_npz_regression(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 2)).astype(np.float32)
    np.savez(tmp_path / "s.npz", X=X, y=(X[:, 0] * 2.0).astype(np.float64))
    done = _cli("run", str(tmp_path / "s.npz"), "--out", str(tmp_path / "o"))
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    mean_only = np.abs(X[:, 0] * 2.0 - (X[:, 0] * 2.0).mean()).mean()  # 1.43: learns nothing
    assert metrics["metric"] == "MAE" and metrics["value"] < 0.7 * mean_only  # it ran 0.77


def _in_process(*args):
    try:
        return main(list(args))
    except SystemExit as stop:  # argparse's usage errors
        return stop.code


@pytest.mark.parametrize(
    "args, message",
    [
        (("run", "/no/such/file.csv"), "no such file"),
        (("run", "{csv}", "--target", "nope"), "no column 'nope'"),
        (("run", "{csv}", "--rule", "magic"), "invalid choice"),
        (("run", "{csv}", "--layers", "a,b"), "expected sizes"),
        (("demo", "--samples", "-3"), "positive integer"),
        (("bench", "no_such_benchmark"), "no benchmark"),
        (("fly",), "invalid choice"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_code_2(args, message, csv_stream, capsys):
    assert _in_process(*(a.format(csv=csv_stream) for a in args)) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) <= 3  # usage line(s) + the error


@pytest.mark.parametrize("args", [("run", "/no/such/file.csv"), ("run", "x.csv", "--layers", "0")])
@pytest.mark.slow
def test_bad_path_and_option_through_the_shell(args):
    done = _cli(*args)
    assert done.returncode == 2 and "error:" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_unreadable_file_is_an_error_not_a_traceback(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip archive")
    done = _cli("run", str(bad))
    assert done.returncode == 2 and "cannot read" in done.stderr
    assert "Traceback" not in done.stderr


def test_run_with_a_detector_adapts_after_a_planted_label_swap(tmp_path):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(1600, 2))
    label = X[:, 0] + X[:, 1] > 0
    label[800:] = ~label[800:]  # concept shift half way
    frame = pd.DataFrame(X, columns=["a", "b"])
    frame["y"] = np.where(label, "up", "down")
    frame.to_csv(tmp_path / "swap.csv", index=False)
    out = tmp_path / "out"
    args = ["run", str(tmp_path / "swap.csv"), "--layers", "16", "--batch-size", "4"]
    assert main([*args, "--detector", "adwin", "--out", str(out), "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["detector"] == "adwin"
    assert any(800 <= i < 1100 for i in metrics["adaptations"])
