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


def test_sensor_candidates_without_data_exits_2_saying_how_to_get_it(tmp_path, no_data, capsys):
    import sensor_candidates

    with pytest.raises(SystemExit) as stop:
        sensor_candidates.main(["--sets", "eeg5", "--out", str(tmp_path / "candidates.json")])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "skipping eeg5" in err and "TPSGD_DOWNLOAD=1" in err and "nothing was run" in err


def test_sensor_panel_merge_keeps_the_methods_a_run_did_not_redo(tmp_path):
    import sensor_panel

    earlier = tmp_path / "panel.json"
    old_set = {"ours": {"accuracy_mean": {"50": 0.9}}, "minirocket": {"accuracy": 0.5}}
    earlier.write_text(
        json.dumps({"notes": ["by hand"], "sets": {"coffee": old_set, "pigcvp": old_set}})
    )
    rerun = {"command": "new", "sets": {"coffee": {"minirocket": {"accuracy": 1.0}}}}
    record = sensor_panel.merged(rerun, earlier)
    assert record["sets"]["coffee"] == {
        "ours": {"accuracy_mean": {"50": 0.9}},
        "minirocket": {"accuracy": 1.0},
    }
    assert record["sets"]["pigcvp"] == old_set
    assert record["notes"] == ["by hand"] and record["command"] == "new"


def test_sensor_panel_only_runs_the_methods_named(tmp_path):
    skip_without_data("ucr_chinatown.npz")
    import sensor_panel

    out = tmp_path / "panel.json"
    sensor_panel.main(
        ["--quick", "--sets", "chinatown", "--only", "conv,conv_bp", "--out", str(out)]
    )
    result = json.loads(out.read_text())["sets"]["chinatown"]
    assert {"conv", "conv_bp"} <= set(result)
    assert not {"ours", "ours_bp", "elman", "1nn_dtw", "minirocket"} & set(result)
    for method in ("conv", "conv_bp"):
        assert set(result[method]["accuracy_mean"]) == {"1", "2"}
        assert "--only conv,conv_bp" in result[method]["command"]
        assert len(result[method]["load_average"]) == 3


def test_sensor_panel_rejects_an_unknown_method():
    import sensor_panel

    with pytest.raises(SystemExit, match="unknown method"):
        sensor_panel.main(["--quick", "--sets", "chinatown", "--only", "dtw"])
