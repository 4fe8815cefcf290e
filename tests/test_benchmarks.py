"""The scripts in ``benchmarks/``: the generated page, the shared run header, and short runs of
the benchmarks themselves (marked ``slow``)."""

import importlib.util
import json
import sys
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


# ---------------------------------------------------------------- short benchmark runs


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
