"""PNG figures for BENCHMARKS.md, drawn from the JSON results the benchmarks wrote.

    python benchmarks/plots.py            # into a scratch folder
    python benchmarks/plots.py --record   # benchmarks/results/{memory_depth,...}.png, page

Each figure is drawn only when its JSON exists: memory against depth (paper_tables.json),
samples/s per stream and path (stream_throughput.json), memory against sequence length
(rnn_tables.json, its ``memory_current_implementation`` table: rule -> T -> bytes).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, add_output_arguments, finish, scratch_dir  # noqa: E402


def _load(name: str) -> dict | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def memory_vs_depth(result: dict, folder: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    styles = ["o-", "s--", "^:", "D-."]  # rules that hold the same bytes stay visible
    for k, (rule, by_depth) in enumerate(result["memory"].items()):
        depths = sorted(by_depth, key=int)
        kib = [by_depth[d]["activation_bytes"] / 1024 for d in depths]
        size = 9 - 2 * (k % len(styles))
        ax.plot([int(d) for d in depths], kib, styles[k % len(styles)], ms=size, label=rule)
    ax.set_xlabel("hidden layers of 256")
    ax.set_ylabel("activations held in a step (KiB)")
    ax.set_title("MLP training step, batch 128: memory against depth")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, folder / "memory_depth.png")


def throughput(result: dict, folder: Path) -> Path:
    streams = list(result["streams"])
    rows = sum(len(result["streams"][s]["results"]) for s in streams)
    fig, ax = plt.subplots(figsize=(9, 0.35 * rows + 1.5), dpi=110)
    y, ticks, names = 0, [], []
    for stream in streams:
        for row in result["streams"][stream]["results"]:
            ax.barh(y, row["samples_per_s_median"], color=f"C{streams.index(stream)}")
            ticks.append(y)
            names.append(f"{stream}: {row['model']} ({row['path']})")
            y += 1
        y += 0.5
    ax.set_yticks(ticks, names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("samples/s (median of runs)")
    ax.set_title("Prequential throughput (one torch thread)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _save(fig, folder / "throughput.png")


def memory_vs_length(table: dict, folder: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    for rule, by_length in table.items():
        if not isinstance(by_length, dict):
            continue  # the table's note
        points = sorted((int(t), held / 1024) for t, held in by_length.items())
        ax.plot(*zip(*points), "o-", label=rule)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("sequence length T")
    ax.set_ylabel("activations held in a step (KiB)")
    ax.set_title("Recurrent training step: memory against sequence length")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, folder / "memory_seq_len.png")


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_output_arguments(parser, "*.png", "draw the PNGs into this folder")
    args = parser.parse_args(argv)
    folder = Path(args.out) if args.out else RESULTS if args.record else scratch_dir()
    drawn = []
    if (tables := _load("paper_tables.json")) and "memory" in tables:
        drawn.append(memory_vs_depth(tables, folder))
    if streams := _load("stream_throughput.json"):
        drawn.append(throughput(streams, folder))
    if (rnn := _load("rnn_tables.json")) and "memory_current_implementation" in rnn:
        drawn.append(memory_vs_length(rnn["memory_current_implementation"], folder))
    for path in drawn:
        print(f"wrote {path}")
    finish(args)


if __name__ == "__main__":
    main()
