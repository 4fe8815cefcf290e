"""Shared by the benchmark scripts (a helper, not a benchmark): the header of a results file
(command, commit, machine, date), the ``--record`` / ``--out`` arguments and where results go.

A run writes to a scratch folder (``$TPSGD_BENCH_OUT``, else ``tpsgd-bench`` in the system's
temporary folder) unless told ``--record``: then to ``benchmarks/results/``, and the
benchmarks page is rendered again, so that the committed results change only on purpose.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NoReturn

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SCRATCH_ENV = "TPSGD_BENCH_OUT"


def run_header(script: str | None = None, argv: list[str] | None = None) -> dict:
    """When, where, on which commit and with which torch a measurement ran (the start of every
    results file), and with ``script`` (a file name in ``benchmarks/``) the command that
    reproduces it, with ``argv`` or else the process's own arguments.

    Examples
    --------
    >>> run_header("soak.py", ["--n", "1000"])["command"]
    'python benchmarks/soak.py --n 1000'
    """
    import torch

    header = {}
    if script is not None:
        args = sys.argv[1:] if argv is None else argv
        header["command"] = " ".join(["python", f"benchmarks/{script}", *args])
    return header | {
        "commit": source_commit(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
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

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=HERE.parent, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        changed = git(
            "status", "--porcelain", "--", "tpsgd_stream", "benchmarks", ":!benchmarks/results"
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}+changes" if changed else commit


def add_output_arguments(
    parser: argparse.ArgumentParser, name: str, out_help: str = "write the results to this file"
) -> None:
    """Add ``--record`` and ``--out`` to a benchmark's parser; ``name`` is its results file.

    Examples
    --------
    >>> parser = argparse.ArgumentParser()
    >>> add_output_arguments(parser, "soak.json")
    >>> parser.parse_args(["--record"]).record
    True
    """
    parser.add_argument(
        "--record",
        action="store_true",
        help=f"write to benchmarks/results/{name} and re-render BENCHMARKS.md "
        f"(default: a scratch folder, ${SCRATCH_ENV} or the system's temporary folder)",
    )
    parser.add_argument("--out", default=None, help=f"{out_help} instead")


def scratch_dir() -> Path:
    """Where a run that is not recorded writes: ``$TPSGD_BENCH_OUT`` or ``TMP/tpsgd-bench``."""
    return Path(os.environ.get(SCRATCH_ENV) or Path(tempfile.gettempdir()) / "tpsgd-bench")


def output_path(args: argparse.Namespace, name: str) -> Path:
    """The results file of a run: ``--out``, else ``benchmarks/results/NAME`` with
    ``--record``, else ``NAME`` in the scratch folder.

    Examples
    --------
    >>> output_path(argparse.Namespace(out=None, record=True), "soak.json") == RESULTS / "soak.json"
    True
    """
    if args.out:
        return Path(args.out)
    return (RESULTS if args.record else scratch_dir()) / name


def write_results(results: dict, path: str | Path) -> Path:
    """Write ``results`` as JSON to ``path`` (its folder made if needed) and say so."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")
    return out


def without_data(script: str, reason: object) -> NoReturn:
    """End a benchmark that could run nothing for want of its data: one line on stderr saying
    how to get it (a loader's ``FileNotFoundError`` says), and exit code 2."""
    sys.stderr.write(f"{script}: data not available, nothing was run: {reason}\n")
    raise SystemExit(2)


def finish(args: argparse.Namespace) -> None:
    """After a run: with ``--record``, render BENCHMARKS.md again from the results."""
    if getattr(args, "record", False):
        if str(HERE) not in sys.path:
            sys.path.insert(0, str(HERE))
        import render

        render.main([])
