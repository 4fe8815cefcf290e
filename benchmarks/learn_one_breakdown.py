"""Where a ``learn_one`` sample's time goes in ``TPSGDClassifier``, on scikit-learn's digits.

A model trained on the whole stream (pre-scaled by river's ``StandardScaler``, as in
``stream_throughput.py``) is timed part by part over the same dicts: ``predict_one``, its
input parsing (``parse_values``) and its forward pass of one row, ``learn_one`` without its
minibatch step (the step replaced by a no-op), and the step itself divided by the batch size.
Each figure is the fastest of ``--repeats`` passes over the stream, in microseconds a sample,
with one torch thread: the cost on a quiet machine, which the throughput benchmark's
medians (a shared machine, other processes) sit above.

Run: ``python benchmarks/learn_one_breakdown.py [--rule tpsgd_head] [--repeats 7]``; writes
``learn_one_breakdown.json`` into ``benchmarks/results/`` with ``--record``, else into a scratch
folder.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from river import preprocessing
from sklearn.datasets import load_digits

from tpsgd_stream.models import TPSGDClassifier
from tpsgd_stream.models._inputs import parse_values

sys.path.insert(0, str(Path(__file__).parent))
from _common import add_output_arguments, finish, output_path, run_header, write_results  # noqa: E402  (a sibling script)


def scaled_digits() -> list[tuple[dict, int]]:
    digits = load_digits()
    scaler, out = preprocessing.StandardScaler(), []
    for row, target in zip(digits.data, digits.target):
        x = {f"p{j}": float(v) for j, v in enumerate(row)}
        scaler.learn_one(x)
        out.append((scaler.transform_one(x), int(target)))
    return out


def fastest(run, n: int, repeats: int) -> float:
    """Microseconds a sample of the fastest of ``repeats`` calls of ``run`` (``n`` samples)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best / n * 1e6


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rule", default="tpsgd_head")
    parser.add_argument("--repeats", type=int, default=7)
    add_output_arguments(parser, "learn_one_breakdown.json")
    args = parser.parse_args(argv)
    header = run_header("learn_one_breakdown.py", argv)  # (the load average before the timings)
    torch.set_num_threads(1)
    data = scaled_digits()
    model = TPSGDClassifier(rule=args.rule, seed=0)
    for x, y in data:
        model.learn_one(x, y)
    rows = [model._row(x) for x, _ in data]
    n, repeats = len(data), args.repeats
    timings = {
        "predict_one": fastest(lambda: [model.predict_one(x) for x, _ in data], n, repeats),
        "parse_values": fastest(
            lambda: [parse_values(x, "digits", "raise") for x, _ in data], n, repeats
        ),
        "forward_one_row": fastest(lambda: [model._forward(r) for r in rows], n, repeats),
    }
    net, step = model.network, model.network.train_step
    net.train_step = lambda *a, **k: None  # learn_one's own work, without the minibatch step
    timings["learn_one_without_step"] = fastest(
        lambda: [model.learn_one(x, y) for x, y in data], n, repeats
    )
    net.train_step = step
    x = torch.from_numpy(model._buffer.copy())
    target = model._targets(model._buffer_y)
    per_step = fastest(lambda: [step(x, target) for _ in range(100)], 100, repeats)
    timings["step_per_sample"] = per_step / model.batch_size
    timings["total"] = (
        timings["predict_one"] + timings["learn_one_without_step"] + timings["step_per_sample"]
    )
    for name, us in timings.items():
        print(f"{name:24s} {us:7.2f} us a sample")
    results = {
        **header,
        "rule": args.rule,
        "batch_size": model.batch_size,
        "repeats": repeats,
        "us_per_sample": timings,
    }
    write_results(results, output_path(args, "learn_one_breakdown.json"))
    finish(args)
    return results


if __name__ == "__main__":
    main()
