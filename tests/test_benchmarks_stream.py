"""Smoke run of benchmarks/sensor_stream.py on a few chunks: every model reports, and the
page section renders from its results."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import skip_without_data

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))


@pytest.mark.slow
def test_sensor_stream_tiny_run_reports_every_model_and_renders(tmp_path):
    skip_without_data("eeg_seizure_uci.npz")
    import render
    import sensor_stream

    out = tmp_path / "stream.json"
    sensor_stream.main(["--chunks", "1", "--test-chunks", "1", "--out", str(out)])
    record = json.loads(out.read_text())
    assert set(record["tasks"]) == {"five", "binary"} and record["chunks"] == 1
    for task in record["tasks"].values():
        assert set(task) == set(sensor_stream.MODELS)
        for scores in task.values():
            assert 0.0 <= scores["prequential"] <= 1.0 and 0.0 <= scores["held_out"] <= 1.0
            assert scores["steps_per_s"] > 0
        assert task["no_change"]["prequential"] > 0.95  # a chunk's label repeats 178 times
    section = render.render_section("sensor_stream", record)
    assert "causal kernels (default)" in section and "five: prequential / held out" in section


def test_sensor_stream_without_data_exits_2_saying_how_to_get_it(tmp_path, no_data, capsys):
    import sensor_stream

    with pytest.raises(SystemExit) as stop:
        sensor_stream.main(["--chunks", "1", "--out", str(tmp_path / "stream.json")])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "nothing was run" in err and "eeg_seizure_uci.npz" in err and "TPSGD_DOWNLOAD=1" in err
    assert not (tmp_path / "stream.json").exists()
