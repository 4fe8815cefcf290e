"""Smoke run of benchmarks/sensor_panel.py (--quick): every method runs and reports."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import skip_without_data

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))


@pytest.mark.slow
def test_sensor_panel_quick_run_writes_every_method(tmp_path):
    skip_without_data("ucr_chinatown.npz")
    pytest.importorskip("aeon")
    import sensor_panel

    out = tmp_path / "panel.json"
    sensor_panel.main(["--quick", "--sets", "chinatown", "--out", str(out)])
    record = json.loads(out.read_text())
    result = record["sets"]["chinatown"]
    for method in ("ours", "ours_bp", "elman"):
        assert set(result[method]["accuracy_mean"]) == {"1", "2"} or method == "elman"
    for method in ("1nn_euclidean", "1nn_dtw", "minirocket"):
        assert 0.0 <= result[method]["accuracy"] <= 1.0
    assert record["held_out_of_tuning"] == "mnist1d" and record["commit"]
    assert "--record" not in record["command"]
