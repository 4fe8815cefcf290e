"""The record of a benchmark run: its header (when, where, which torch) and its JSON file."""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
from pathlib import Path

import torch


def run_header(script: str | None = None, argv: list[str] | None = None) -> dict:
    """When, where and with which torch a measurement ran (the start of every results file),
    and with ``script`` (a file name in ``benchmarks/``) the command that reproduces it, with
    ``argv`` or else the process's own arguments.

    Examples
    --------
    >>> run_header("soak.py", ["--samples", "1000"])["command"]
    'python benchmarks/soak.py --samples 1000'
    """
    header = {}
    if script is not None:
        args = sys.argv[1:] if argv is None else argv
        header["command"] = " ".join(["python", f"benchmarks/{script}", *args])
    return header | {
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
