"""The record of a benchmark run: its header (when, where, which torch) and its JSON file."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch


def run_header(script: str | None = None, argv: list[str] | None = None) -> dict:
    """When, where, on which commit and with which torch a measurement ran (the start of every
    results file), and with ``script`` (a file name in ``benchmarks/``) the command that
    reproduces it, with ``argv`` or else the process's own arguments.

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
        "commit": source_commit(),
        "torch": torch.__version__,
        "load_average": os.getloadavg(),
    }


def source_commit() -> str:
    """The checkout's commit, with ``+changes`` when the library or the benchmark scripts
    differ from it, or ``"unknown"`` outside a git checkout: what code a result came from.

    Examples
    --------
    >>> source_commit() == "unknown" or len(source_commit().split("+")[0]) == 40
    True
    """
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        changed = git(
            "status", "--porcelain", "--", "tpsgd_stream", "benchmarks", ":!benchmarks/results"
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}+changes" if changed else commit


def write_results(results: dict, path) -> Path:
    """Write ``results`` as JSON to ``path`` (its folder made if needed) and say so."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")
    return out
