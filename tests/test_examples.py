"""Every example runs, on its small-data flag, as a user would run it."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(name, *args, cwd):
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def test_quickstart(tmp_path):
    done = _run("quickstart.py", "--small", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "final Accuracy" in done.stdout


def test_compare_rules_prints_every_rule_and_plots(tmp_path):
    done = _run("compare_rules.py", "--small", "--plot", "rules.png", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for rule in ("bp", "dfa", "drtp", "tpsgd_l1", "tpsgd_l2", "tpsgd_ce"):
        assert f"{rule} " in done.stdout
    assert (tmp_path / "rules.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_every_example_has_a_small_flag(name):
    assert "--small" in (EXAMPLES / name).read_text()
