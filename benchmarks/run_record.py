"""The record of a benchmark run: its header (when, where, which torch) and its JSON file."""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path

import torch


def run_header() -> dict:
    """When, where and with which torch a measurement ran (the start of every results file)."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "torch": torch.__version__,
        "load_average": os.getloadavg(),
    }


def write_results(results: dict, path) -> Path:
    """Write ``results`` as JSON to ``path`` (its folder made if needed) and say so."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")
    return out
