"""Soak test: a long stream through ``learn_one`` / ``predict_one`` with a changing schema.

The stream (synthetic, seeded): 20 base features ``f0..f19``, of which each sample misses a
few at random; five features ``g0..g4`` that appear at 20 % of the stream and then come and go
in windows of 50,000 samples; the base features ``f15..f19`` vanish for good at 60 %; a sixth
class appears at 40 % (the first five classes are the arg-max of a fixed random linear map, the
late class takes over a region of the input space). The model is
``StandardScaler() | TPSGDClassifier()`` with its defaults.

Reported: the resident set size (RSS) every ``--every`` samples and its slope after warm-up
(a least-squares line over the second half of the run: flat means no leak), errors (none
expected), prequential accuracy over the last 20,000 samples, accuracy on the late class, and
samples/s. Writes ``soak.json`` into ``benchmarks/results/`` with ``--record``, else into a
scratch folder.

Run: ``python benchmarks/soak.py [--n 1000000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from river import preprocessing

from tpsgd_stream.models import TPSGDClassifier

sys.path.insert(0, str(Path(__file__).parent))
from _common import add_output_arguments, finish, output_path, run_header, write_results  # noqa: E402  (a sibling script)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def stream(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(25, 5))
    late_center = rng.normal(size=25)
    names = [f"f{j}" for j in range(20)]
    for i in range(n):
        if i % 10_000 == 0:  # draw in blocks: the generator should not dominate the timing
            block = rng.normal(size=(10_000, 25))
            labels = np.argmax(block @ weights, axis=1)
            near = np.linalg.norm(block[:, :20] - late_center[:20], axis=1) < 5.2
            missing = rng.integers(0, 15, size=(10_000, 2))
        v = block[i % 10_000]
        y = 5 if (i >= 0.4 * n and near[i % 10_000]) else int(labels[i % 10_000])
        x = dict(zip(names, v[:20].tolist()))
        for j in set(missing[i % 10_000].tolist()):  # a value or two missing
            del x[names[j]]
        if i >= 0.6 * n:
            for j in range(15, 20):
                del x[f"f{j}"]
        if i >= 0.2 * n and (i // 50_000) % 2 == 0:
            x.update({f"g{j}": float(v[20 + j]) for j in range(5)})
        yield x, y


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--every", type=int, default=20_000)
    add_output_arguments(parser, "soak.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # see benchmarks/stream_throughput.py

    model = preprocessing.StandardScaler() | TPSGDClassifier(seed=0)
    trace, errors = [], []
    recent = []  # 1/0 for the last samples
    late_correct = late_total = 0
    start = time.perf_counter()
    for i, (x, y) in enumerate(stream(args.n), start=1):
        try:
            pred = model.predict_one(x)
            model.learn_one(x, y)
        except Exception as err:  # a soak reports every failure instead of stopping
            errors.append(f"sample {i}: {type(err).__name__}: {err}")
            continue
        if i > args.n - 20_000:
            recent.append(pred == y)
        if y == 5 and i > 0.5 * args.n:
            late_total += 1
            late_correct += pred == y
        if i % args.every == 0:
            trace.append((i, rss_mb()))
            print(
                f"{i:>9d} samples  RSS {trace[-1][1]:7.1f} MB  "
                f"{i / (time.perf_counter() - start):6.0f} samples/s",
                flush=True,
            )
    seconds = time.perf_counter() - start

    points = np.array([p for p in trace if p[0] > args.n / 2])
    slope = float(np.polyfit(points[:, 0], points[:, 1], 1)[0]) * 1e5 if len(points) > 1 else 0.0
    result = {
        **run_header("soak.py", argv),
        "n_samples": args.n,
        "samples_per_s": round(args.n / seconds),
        "errors": errors[:20],
        "n_errors": len(errors),
        "rss_mb": [[i, round(r, 2)] for i, r in trace],
        "rss_slope_mb_per_100k_after_half": round(slope, 4),
        "rss_first_last_mb": [round(trace[0][1], 1), round(trace[-1][1], 1)] if trace else [],
        "accuracy_last_20k": round(float(np.mean(recent)), 4) if recent else None,
        "late_class_accuracy_second_half": round(late_correct / max(late_total, 1), 4),
        "n_features_seen": len(model["TPSGDClassifier"]._features),
        "classes": list(model["TPSGDClassifier"]._classes),
    }
    print(json.dumps({k: v for k, v in result.items() if k != "rss_mb"}, indent=2))
    write_results(result, output_path(args, "soak.json"))
    finish(args)


if __name__ == "__main__":
    main()
