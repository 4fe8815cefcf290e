"""The ``tpsgd-stream`` command: ``demo`` (the README's main job), ``run FILE``, ``bench NAME``."""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

from ..engine.rules import DEFAULT_RULE, RULES
from .output import OutputFolderError
from .runner import DETECTORS, MAX_AUTO_CLASSES, MIN_SAMPLES_PER_CLASS, NON_FINITE

__all__ = ["main"]

DESCRIPTION = (
    "Streaming estimators trained without backpropagation (target projection SGD). "
    "Commands: demo (tpSGD vs backprop on a shifting stream of digits), run FILE "
    "(a prequential run on your CSV or NPZ file), bench NAME (a benchmark of a source "
    "checkout). Outputs go to --out, or to a new temporary folder that is printed."
)

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
NOT_BENCHMARKS = {"render"}  # tools in benchmarks/ (helpers' names start with "_")
EXTRAS = {"ray": "ray", "fsspec": "ray", "matplotlib": "plot", "tqdm": "progress", "aeon": "bench"}
"""The extra of ``pip install "tpsgd-stream[...]"`` that brings each optional module."""


def benchmark_names() -> list[str]:
    """The benchmarks of a source checkout: the scripts in ``benchmarks/`` but its helpers.

    Examples
    --------
    >>> "render" in benchmark_names() or "_common" in benchmark_names()
    False
    """
    if not BENCHMARKS.is_dir():
        return []
    scripts = (p.stem for p in BENCHMARKS.glob("*.py"))
    return sorted(s for s in scripts if not s.startswith("_") and s not in NOT_BENCHMARKS)


class _Parser(argparse.ArgumentParser):
    """argparse that answers a usage error with one line and exit code 2."""

    def error(self, message: str) -> None:
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 128,64, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected positive sizes like 128,64, got {text!r}")
    return sizes


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tpsgd-stream", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    demo = commands.add_parser(
        "demo", help="prequential tpSGD vs backprop on a shifting stream of digits"
    )
    demo.add_argument(
        "--samples", type=_positive, default=5400, help="stream length (default 5400)"
    )
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument(
        "--out", help="folder for demo.png (default: a new temporary folder, printed)"
    )
    demo.add_argument("--no-plot", action="store_true", help="write no PNG")
    demo.add_argument("--quiet", action="store_true", help="no progress bar and no table")
    run = commands.add_parser(
        "run", help="prequential run of an estimator on a CSV or NPZ stream file"
    )
    run.add_argument("path", help="CSV (header row) or NPZ (X, y) file, read in order")
    run.add_argument("--target", help="CSV column to predict (default: the last one)")
    run.add_argument(
        "--task",
        choices=("auto", "classification", "regression"),
        default="auto",
        help="auto: regression when the target is float, else classification; a target of "
        f"more than {MAX_AUTO_CLASSES} distinct whole numbers that are rare (under "
        f"{MIN_SAMPLES_PER_CLASS} samples each on average) or leave gaps in their range is "
        "refused until you choose",
    )
    run.add_argument(
        "--sep", help="CSV column separator (default: sniffed among , ; tab |, and printed)"
    )
    run.add_argument(
        "--non-finite",
        choices=NON_FINITE,
        default="raise",
        help="empty or non-finite feature cells: raise (stop, naming them, the default) or "
        "zero (leave them out of their sample: read as 0, the scaled mean)",
    )
    run.add_argument(
        "--rule",
        choices=sorted([*RULES, *RULES.aliases]),
        help=f"default: {DEFAULT_RULE} (target projection)",
    )
    run.add_argument(
        "--layers", type=_sizes, default=(128,), help="hidden layer sizes, e.g. 128,64"
    )
    run.add_argument("--batch-size", type=_positive, default=32)
    run.add_argument("--lr", type=float, default=None, help="learning rate (estimator default)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument(
        "--out", help="folder for metrics.json and the plot (default: a new temporary folder)"
    )
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument(
        "--detector",
        choices=DETECTORS,
        help="wrap the classifier in a drift adaptor watched by this river detector",
    )
    names = ", ".join(benchmark_names()) or "none: benchmarks ship with the source"
    bench = commands.add_parser(
        "bench",
        help="run benchmarks/NAME.py (from a source checkout)",
        description="Run a benchmark; its results go to a scratch folder unless it is given "
        "--record (then to benchmarks/results/, and BENCHMARKS.md is rendered again).",
    )
    bench.add_argument("name", nargs="?", help=f"one of: {names}")
    bench.add_argument("args", nargs=argparse.REMAINDER, help="passed on to the script")
    return parser


def _bench(name: str | None, args: list[str]) -> int:
    script = BENCHMARKS / f"{name}.py"
    available = ", ".join(benchmark_names()) or "none: benchmarks ship with the source"
    if name is None:
        sys.stderr.write(
            f"tpsgd-stream: error: name a benchmark: bench NAME, one of: {available}\n"
        )
        return 2
    if name not in benchmark_names():
        sys.stderr.write(
            f"tpsgd-stream: error: no benchmark {name!r} in {BENCHMARKS} (available: {available})\n"
        )
        return 2
    sys.argv = [str(script), *args]
    try:
        runpy.run_path(str(script), run_name="__main__")
    except ImportError as err:
        sys.stderr.write(f"tpsgd-stream: error: bench {name}: {_install_hint(err)}\n")
        return 2
    return 0


def _install_hint(err: ImportError) -> str:
    """One line naming what is missing and the pip command that installs it.

    Examples
    --------
    >>> _install_hint(ModuleNotFoundError("No module named 'ray'", name="ray"))
    'needs ray: pip install "tpsgd-stream[ray]"'
    """
    if "pip install" in str(err):  # already says it (tpsgd_stream._optional.require)
        return str(err)
    module = (err.name or str(err)).split(".")[0]
    extra = EXTRAS.get(module)
    install = f'pip install "tpsgd-stream[{extra}]"' if extra else f"pip install {module}"
    return f"needs {module}: {install}"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``tpsgd-stream`` console script; returns the exit code."""
    args = _parser().parse_args(argv)
    if args.command in ("demo", "run"):
        import torch

        # small per-sample models: one thread avoids the spin-up cost of a pool per tiny op
        torch.set_num_threads(1)
    if args.command == "demo":
        return _demo(args)
    if args.command == "run":
        return _run(args)
    return _bench(args.name, args.args)


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    from .output import output_folder

    try:
        plot = None if args.no_plot else output_folder(args.out, "demo") / "demo.png"
    except OutputFolderError as err:
        sys.stderr.write(f"tpsgd-stream: error: {err}\n")
        return 2
    run_demo(n_samples=args.samples, seed=args.seed, quiet=args.quiet, plot=plot)
    return 0


def _run(args: argparse.Namespace) -> int:
    from .runner import StreamFileError, run_file

    try:
        result = run_file(
            args.path,
            target=args.target,
            task=args.task,
            rule=args.rule,
            hidden_layer_sizes=args.layers,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            out=args.out,
            sep=args.sep,
            non_finite=args.non_finite,
            progress=not args.quiet and sys.stderr.isatty(),
            detector=args.detector,
        )
    except (StreamFileError, OutputFolderError, ValueError, TypeError) as err:
        sys.stderr.write(f"tpsgd-stream: error: {err}\n")
        return 2
    except OSError as err:  # anything the file system refuses: one line, not a traceback
        sys.stderr.write(f"tpsgd-stream: error: {type(err).__name__}: {str(err)[:300]}\n")
        return 2
    separator = f", separator {result['separator']!r}" if result["separator"] else ""
    print(
        f"{result['n_samples']} samples{separator}, {result['task']}: {result['metric']} "
        f"{result['value']:.4f}, {result['samples_per_second']:.0f} samples/s (after an "
        f"untimed warm-up on {result['warm_up_samples']} samples, start-up excluded)"
    )
    print(
        f"wrote {result['out']}: metrics.json"
        + (", accuracy.png" if result["task"] == "classification" else "")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
