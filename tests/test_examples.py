"""Every example runs, on its small-data flag, as a user would run it."""

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import skip_without_data

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(name, *args, cwd):
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


@pytest.mark.slow
def test_quickstart(tmp_path):
    done = _run("quickstart.py", "--small", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    final = [line for line in done.stdout.splitlines() if line.startswith("final Accuracy")]
    assert final and float(final[0].split()[-1].rstrip("%")) > 70  # 81.6 %; chance ~55 %


@pytest.mark.slow
def test_compare_rules_prints_every_rule_and_plots(tmp_path):
    done = _run("compare_rules.py", "--small", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for rule in ("bp", "dfa", "drtp", "tpsgd_l1", "tpsgd_l2", "fixed_readout_ce"):
        assert f"{rule} " in done.stdout
    assert (tmp_path / "out" / "compare_rules.png").read_bytes().startswith(b"\x89PNG")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # nothing else in the cwd


@pytest.mark.slow
def test_domain_shift_reports_every_model_and_plots_shifts(tmp_path):
    done = _run("domain_shift.py", "--small", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if "acc after each shift" in line]
    assert len(lines) == 4 and "no adaptation" in lines[0] and "CNN" in lines[3]
    assert "adapt" in lines[1]  # the adaptor re-trained on a detected drift
    assert (tmp_path / "out" / "domain_shift.png").read_bytes().startswith(b"\x89PNG")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # nothing else in the cwd


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_every_example_has_a_small_flag(name):
    assert "--small" in (EXAMPLES / name).read_text()


@pytest.mark.slow
def test_sensor_sequences_learns_both_ways(tmp_path):
    skip_without_data("eeg_seizure_uci.npz")
    done = _run("sensor_sequences.py", "--small", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for mode in ("whole sequences", "one step at a time"):
        assert f"{mode}: prequential accuracy" in done.stdout


@pytest.mark.slow
def test_sensor_sequences_without_data_fails_and_says_how_to_get_it(tmp_path):
    absent = _run("sensor_sequences.py", "--small", "--data", str(tmp_path), cwd=tmp_path)
    assert absent.returncode == 2, absent.stdout
    assert "nothing was run" in absent.stderr and "TPSGD_DATA" in absent.stderr
