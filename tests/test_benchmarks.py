"""The scripts in ``benchmarks/``: the generated page, the shared run header, and short runs of
the benchmarks themselves (marked ``slow``)."""

import argparse
import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import skip_without_data

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _script(name: str):
    """Import ``benchmarks/NAME.py`` as a module (the folder is not a package)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))  # the scripts import their sibling helpers
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # (dataclasses look their module up there)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- the benchmarks page


def test_committed_page_is_what_the_results_render():
    """BENCHMARKS.md cannot drift from benchmarks/results/*.json."""
    assert _script("render").main(["--check"]) == 0, "run: python benchmarks/render.py"


def test_check_fails_on_a_stale_page(tmp_path, monkeypatch):
    render = _script("render")
    stale = tmp_path / "BENCHMARKS.md"
    stale.write_text("# Benchmarks\n\nedited by hand\n")
    monkeypatch.setattr(render, "PAGE", stale)
    assert render.main(["--check"]) == 1
    assert render.main([]) == 0 and render.main(["--check"]) == 0


def test_page_is_short_and_names_no_machine_path():
    page = _script("render").render_page()
    assert len(page.encode()) < 40_000
    assert "/work/" not in page and "/tmp/" not in page
    assert page.index("## Summary") < page.index("## Paper tables")


def test_every_results_file_has_a_section_with_its_provenance():
    render = _script("render")
    page = render.render_page()
    for path in sorted((BENCHMARKS / "results").glob("*.json")):
        results = json.loads(path.read_text())
        assert f"`benchmarks/results/{path.name}`" in page or path.stem in render.FOLDED
        if "commit" in results:
            assert render.short_commit(results["commit"]) in page
    for png in sorted((BENCHMARKS / "results").glob("*.png")):
        assert f"(benchmarks/results/{png.name})" in page, f"{png.name} is not on the page"


def test_unknown_results_file_gets_a_generic_table(tmp_path):
    render = _script("render")
    header = {"command": "python benchmarks/new.py --n 3", "commit": "a" * 40}
    header |= {"machine": "x86_64, 2 cores, Linux", "date": "2026-12-06T09:00:00+00:00"}
    (tmp_path / "new_thing.json").write_text(json.dumps({**header, "samples_per_s": 1234}))
    page = render.render_page(tmp_path)
    assert "## New thing" in page
    assert "`python benchmarks/new.py --n 3` (commit aaaaaaa" in page
    assert "| samples_per_s | 1234 |" in page and "2026-12-06 09:00 UTC" in page


# ---------------------------------------------------------------- where results go


def test_results_go_to_a_scratch_folder_unless_recorded(tmp_path, monkeypatch):
    common = _script("_common")
    monkeypatch.setenv(common.SCRATCH_ENV, str(tmp_path))
    parser = argparse.ArgumentParser()
    common.add_output_arguments(parser, "x.json")
    assert common.output_path(parser.parse_args([]), "x.json") == tmp_path / "x.json"
    recorded = parser.parse_args(["--record"])
    assert common.output_path(recorded, "x.json") == BENCHMARKS / "results" / "x.json"
    chosen = parser.parse_args(["--record", "--out", str(tmp_path / "y.json")])
    assert common.output_path(chosen, "x.json") == tmp_path / "y.json"


def test_record_renders_the_page_again(monkeypatch):
    common = _script("_common")
    calls = []
    monkeypatch.setitem(sys.modules, "render", types.SimpleNamespace(main=calls.append))
    common.finish(argparse.Namespace(record=False))
    assert calls == []
    common.finish(argparse.Namespace(record=True))
    assert calls == [[]]


def test_run_header_names_command_commit_machine_and_date():
    header = _script("_common").run_header("soak.py", ["--n", "10"])
    assert list(header)[:4] == ["command", "commit", "machine", "date"]
    assert header["command"] == "python benchmarks/soak.py --n 10"


def test_every_benchmark_takes_record_and_helpers_are_not_benchmarks():
    from tpsgd_stream.cli.main import benchmark_names

    names = benchmark_names()
    assert "_common" not in names and "render" not in names and "run_record" not in names
    assert {"paper_tables", "drift_recovery", "plots", "soak", "fleet"} <= set(names)
    for name in names:
        assert "add_output_arguments(" in (BENCHMARKS / f"{name}.py").read_text(), name


def test_bench_help_lists_the_benchmarks(capsys):
    from tpsgd_stream.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["bench", "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert "stream_throughput" in out and "_common" not in out and "--record" in out


def test_plots_help_draws_nothing(tmp_path, monkeypatch):
    plots = _script("plots")
    monkeypatch.setenv("TPSGD_BENCH_OUT", str(tmp_path))
    with pytest.raises(SystemExit):
        plots.main(["--help"])
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- short benchmark runs


@pytest.mark.slow
def test_an_unrecorded_run_leaves_the_committed_results_alone(tmp_path, monkeypatch):
    recorded = BENCHMARKS / "results" / "learn_one_breakdown.json"
    before = recorded.read_bytes()
    monkeypatch.setenv("TPSGD_BENCH_OUT", str(tmp_path))
    _script("learn_one_breakdown").main(["--repeats", "1"])
    assert recorded.read_bytes() == before
    written = json.loads((tmp_path / "learn_one_breakdown.json").read_text())
    assert written["us_per_sample"]["total"] > 0 and written["commit"]


@pytest.mark.slow
def test_adaptor_ceiling_benchmark_on_a_short_digits_run(tmp_path):
    """The ceiling benchmark: re-training helps after the rotation, a deeper re-training helps
    the MLP more, and the cost ratios follow the layers' multiply-adds (a convolution's
    weights times its output positions)."""
    ceiling = _script("adaptor_ceiling")
    out = tmp_path / "ceiling.json"
    argv = ["--seeds", "0", "--sizes", "300", "--streams", "digits", "--out", str(out)]
    ceiling.main(argv)
    digits = json.loads(out.read_text())["streams"]["digits"]
    mlp = {k: v["mean"] for k, v in digits["mlp"]["accuracy"].items()}
    assert mlp["before"] < 0.4  # the rotation broke the upright model
    assert mlp["k=300 depth=1"] > mlp["before"] + 0.3
    assert mlp["k=300 depth=3"] > mlp["k=300 depth=1"]
    weights = [64 * 64, 64 * 64, 64 * 10]  # (64, 64) hidden, 10 classes, 10 passes
    full = 2 * 10 * sum(weights)
    assert digits["mlp"]["macs_vs_full"]["1"] == pytest.approx((8192 + 2 * 10 * 640) / full)
    assert digits["mlp"]["macs_vs_full"]["3"] == pytest.approx(1.0)
    # cnn on 8x8: conv 1->16 3x3 (6x6 out), conv 16->16 3x3 (4x4 out), linear 256 -> 10
    convs, linear = 16 * 9 * 36 + 16 * 16 * 9 * 16, 256 * 10
    expected = (convs + 2 * 10 * linear) / (2 * 10 * (convs + linear))
    assert digits["cnn"]["macs_vs_full"]["1"] == pytest.approx(expected)


@pytest.mark.slow
def test_rnn_tables_seeds_mnist1d_x4_and_merged_results(tmp_path):
    """The benchmark's 10-steps-of-4 MNIST-1D, its mean +- std over seeds, a merged JSON."""
    tables = _script("rnn_tables")
    skip_without_data("mnist1d.npz")
    X_train, _, _, _ = tables.load("mnist1d_x4", None)
    X_one, _, _, _ = tables.load("mnist1d", None)
    assert X_train.shape == (4000, 10, 4) and X_one.shape == (4000, 40, 1)
    assert torch.equal(X_train.reshape(4000, 40), X_one[:, :, 0])
    out = tmp_path / "rnn.json"
    out.write_text(json.dumps({"earlier": {"kept": 1}}))
    argv = ["--tables", "table5", "--sets", "mnist1d_x4", "--variants", "bp_tanh", "control"]
    argv += ["--hidden", "4", "--epochs", "1", "--train", "128", "--test", "50"]
    argv += ["--seeds", "0", "1", "--threads", "1", "--out", str(out), "--label", "tiny"]
    tables.main(argv)
    merged = json.loads(out.read_text())
    assert merged["earlier"] == {"kept": 1}
    for row in merged["tiny"]["table5"]["mnist1d_x4"].values():
        accuracies = [row["seeds"][s]["accuracy"] for s in ("0", "1")]
        assert row["accuracy_mean"] == pytest.approx(np.mean(accuracies), abs=0.01)
        assert row["accuracy_std"] == pytest.approx(np.std(accuracies, ddof=1), abs=0.01)
    with pytest.raises(SystemExit):
        tables.main(["--sets", "mnist1d_x3"])


def test_small_updates_time_a_baseline_from_git_beside_this_checkout(monkeypatch):
    """``learn_one_breakdown.py --baseline REF`` imports the package as of ``REF`` under another
    name and times both sides; the page shows them as one table."""
    breakdown = _script("learn_one_breakdown")
    data = breakdown.scaled_digits()[:800]
    monkeypatch.setattr(breakdown, "load_streams", lambda: {"digits": data[:40]})
    results = breakdown.small_updates("HEAD", data, repeats=1)
    assert sys.modules[breakdown.BASELINE].__file__ != sys.modules["tpsgd_stream"].__file__
    assert len(results["baseline_commit"]) == 40
    assert set(results["steps"]) == {"step, batch 1", "step, batch 8"}
    digits = results["streams"]["digits"]
    assert digits["samples_per_s_before"] > 0 and digits["scaler_ceiling_samples_per_s"] > 0
    section = _script("render").small_updates(results)
    assert "| digits |" in section and "step, batch 8" in section
