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
def test_demo_prints_both_models_and_writes_a_png_into_out(tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    done = _cli("demo", "--samples", "300", "--out", str(tmp_path / "out"), cwd=cwd)
    assert done.returncode == 0, done.stderr
    assert "tpSGD (tpsgd_l2_gated)" in done.stdout and "backprop (bp)" in done.stdout
    assert "samples/s after an untimed warm-up" in done.stdout
    assert (tmp_path / "out" / "demo.png").read_bytes().startswith(PNG_SIGNATURE)
    assert f"plot: {tmp_path / 'out' / 'demo.png'}" in done.stdout
    assert not list(cwd.iterdir())  # nothing lands in the current folder


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
        (("bench",), "one of: adaptor_ceiling, "),
        (("run", "{csv}", "--non-finite", "nan"), "invalid choice"),
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


# -- issue #19: what a user hit ------------------------------------------------------------


def _write(path, frame, **kwargs):
    frame.to_csv(path, index=False, **kwargs)
    return str(path)


def _fails(capsys, *args, message):
    """``args`` exit with 2 and one line naming the problem (no traceback)."""
    assert _in_process(*args) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_run_reports_speed_after_an_untimed_warm_up_on_a_copy(csv_stream, tmp_path, capsys):
    from river import metrics, preprocessing

    from tpsgd_stream.models import TPSGDClassifier

    args = ["--target", "label", "--layers", "8", "--batch-size", "4", "--quiet"]
    assert main(["run", str(csv_stream), *args, "--out", str(tmp_path / "o")]) == 0
    assert "untimed warm-up on 200 samples, start-up excluded" in capsys.readouterr().out
    reported = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert reported["warm_up_samples"] == 200
    # the warm-up trained a copy: the measured model scores as one that never saw it
    model = preprocessing.StandardScaler() | TPSGDClassifier(
        hidden_layer_sizes=(8,), batch_size=4, seed=0
    )
    accuracy = metrics.Accuracy()
    frame = pd.read_csv(csv_stream)
    for x, y in zip(frame.drop(columns="label").to_dict("records"), frame["label"]):
        accuracy.update(y, model.predict_one(x))
        model.learn_one(x, y)
    assert reported["value"] == accuracy.get()


def test_regression_on_a_text_target_is_a_clear_error(csv_stream, capsys):
    _fails(
        capsys,
        "run",
        str(csv_stream),
        "--task",
        "regression",
        message="--task regression needs a numeric target, but the target column 'label' holds "
        "text (e.g. 'down', 'up')",
    )


@pytest.fixture
def weights_csv(tmp_path):
    """ChickWeight-like: 578 rows, weights 35..373 g, most values seen once or twice."""
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"time": rng.integers(0, 22, 578), "diet": rng.integers(1, 5, 578)})
    frame["weight"] = 35 + 8 * frame["time"] + rng.integers(0, 120, 578)
    return _write(tmp_path / "chick.csv", frame)


def test_a_target_of_many_whole_numbers_asks_for_the_task(weights_csv, tmp_path, capsys):
    _fails(capsys, "run", weights_csv, message="Pass --task regression")
    out = str(tmp_path / "o")
    assert _in_process("run", weights_csv, "--task", "regression", "--quiet", "--out", out) == 0
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["metric"] == "MAE"


@pytest.mark.parametrize(
    "target, asks",
    [
        (np.repeat(np.arange(52), 6), False),  # 52 consecutive class codes, 6 samples each
        (np.repeat(np.arange(0, 520, 10), 6), True),  # 52 values with gaps: a quantity
        (np.arange(300) % 10 * 7, False),  # 10 codes: classes, whatever their values
    ],
)
def test_the_whole_number_rule(target, asks):
    from tpsgd_stream.cli.runner import StreamFileError, _resolve_task

    y = pd.Series(target, name="y")
    if asks:
        with pytest.raises(StreamFileError, match="--task classification"):
            _resolve_task(y, "auto")
    else:
        assert _resolve_task(y, "auto") == "classification"


def test_an_empty_cell_names_the_option_that_reads_it(csv_stream, tmp_path, capsys):
    frame = pd.read_csv(csv_stream)
    frame.loc[5, "b"] = np.nan
    path = _write(tmp_path / "holes.csv", frame)
    _fails(capsys, "run", path, message="column(s) ['b'], first at row 5; pass --non-finite zero")
    out = tmp_path / "o"
    args = ["run", path, "--non-finite", "zero", "--layers", "8", "--batch-size", "4", "--quiet"]
    assert main([*args, "--out", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["value"] > 0.7


def test_a_semicolon_file_is_sniffed_and_a_wrong_sep_is_named(csv_stream, tmp_path, capsys):
    path = _write(tmp_path / "semi.csv", pd.read_csv(csv_stream), sep=";", decimal=",")
    out = tmp_path / "o"
    args = ["run", path, "--layers", "8", "--batch-size", "4", "--quiet", "--out", str(out)]
    assert main(args) == 0
    assert "separator ';'" in capsys.readouterr().out
    assert json.loads((out / "metrics.json").read_text())["value"] > 0.7
    _fails(
        capsys, "run", path, "--sep", ",", message="has 1 column(s): give the right one with --sep"
    )


def test_bench_without_the_ray_extra_names_its_pip_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails, as where it is absent
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    _fails(
        capsys,
        "bench",
        "fleet",
        "--streams",
        "2",
        "--samples",
        "2",
        message='bench fleet: needs ray: pip install "tpsgd-stream[ray]"',
    )


def test_run_writes_nothing_into_the_current_folder(csv_stream, tmp_path, monkeypatch, capsys):
    import tempfile

    cwd, temp = tmp_path / "cwd", tmp_path / "temp"
    cwd.mkdir(), temp.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    assert _in_process("run", "no_such.csv") == 2  # a failed run makes no folder at all
    assert not list(cwd.iterdir()) and not list(temp.iterdir())
    assert main(["run", str(csv_stream), "--layers", "8", "--quiet"]) == 0
    (made,) = temp.iterdir()
    assert f"wrote {made}: metrics.json, accuracy.png" in capsys.readouterr().out
    assert (made / "metrics.json").is_file() and not list(cwd.iterdir())


def test_top_level_help_is_plain_text(capsys):
    assert _in_process("--help") == 0
    shown = capsys.readouterr().out
    assert "demo" in shown and "``" not in shown and ":class:" not in shown


@pytest.mark.parametrize(
    "args",
    [
        ("default_rule", "--parts", "mlp"),
        ("paper_tables", "--quick"),
        ("drift_recovery", "--streams", "mnist", "elec2", "--quick", "--no-plots"),
    ],
)
def test_a_benchmark_without_its_data_says_how_to_get_it(args, tmp_path, monkeypatch, capsys):
    from tpsgd_stream import datasets

    monkeypatch.setenv(datasets.DATA_ENV, str(tmp_path / "no-data"))
    monkeypatch.setenv(datasets.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(datasets.DOWNLOAD_ENV, "0")
    monkeypatch.setenv("TPSGD_BENCH_OUT", str(tmp_path / "out"))
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert _in_process("bench", *args) == 2
    err = capsys.readouterr().err
    assert f"{args[0]}.py: data not available, nothing was run" in err and "TPSGD_DATA" in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()
