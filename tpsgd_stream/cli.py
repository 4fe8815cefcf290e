"""The ``tpsgd-stream`` command: ``demo`` (the README's main job) and ``bench NAME``."""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

__all__ = ["main"]

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


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


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tpsgd-stream", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    demo = commands.add_parser(
        "demo", help="prequential tpSGD vs backprop on a shifting stream of digits"
    )
    demo.add_argument(
        "--samples", type=_positive, default=5400, help="stream length (default 5400)"
    )
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument(
        "--plot", default="tpsgd_demo.png", help="PNG to write (default tpsgd_demo.png)"
    )
    demo.add_argument("--no-plot", action="store_true", help="write no PNG")
    demo.add_argument("--quiet", action="store_true", help="no progress bar and no table")
    bench = commands.add_parser("bench", help="run benchmarks/NAME.py (from a source checkout)")
    bench.add_argument("name", help="e.g. paper_tables, stream_throughput")
    bench.add_argument("args", nargs=argparse.REMAINDER, help="passed on to the script")
    return parser


def _bench(name: str, args: list[str]) -> int:
    script = BENCHMARKS / f"{name}.py"
    if not script.is_file():
        available = sorted(p.stem for p in BENCHMARKS.glob("*.py")) if BENCHMARKS.is_dir() else []
        sys.stderr.write(
            f"tpsgd-stream: error: no benchmark {name!r} in {BENCHMARKS} "
            f"(available: {', '.join(available) or 'none: benchmarks ship with the source'})\n"
        )
        return 2
    sys.argv = [str(script), *args]
    runpy.run_path(str(script), run_name="__main__")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``tpsgd-stream`` console script; returns the exit code."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from .demo import run_demo

        plot = None if args.no_plot else args.plot
        run_demo(n_samples=args.samples, seed=args.seed, quiet=args.quiet, plot=plot)
        return 0
    return _bench(args.name, args.args)


if __name__ == "__main__":
    raise SystemExit(main())
