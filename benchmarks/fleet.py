"""Throughput of a fleet of per-stream models: local backend against 1 and 2 Ray actors.

Each of ``--streams`` streams (default 1,000) carries ``--samples`` samples (default 1,000)
from a shift stream (a label swap half way, :mod:`tpsgd_stream.drift.streams`) over a synthetic
8-feature, 3-class problem; the streams arrive interleaved, one sample of each in turn, as a
fleet of sensors would. For each backend: samples/s of ``learn_one`` (Ray calls are
asynchronous, ``flush`` at the end is timed), the overhead per sample against the local
backend, the accuracy of every model on a probe after the stream, and, on Ray, the time to
recover from an actor killed half way (restart, checkpoint reload and replay).

    python benchmarks/fleet.py [--streams 1000 --samples 1000]

Writes ``fleet.json`` into ``benchmarks/results/`` with ``--record``, else into a scratch folder.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import make_classification

from tpsgd_stream.drift import Shift, ShiftStream
from tpsgd_stream.fleet import StreamFleet
from tpsgd_stream.models import TPSGDClassifier

sys.path.insert(0, str(Path(__file__).parent))
from _common import add_output_arguments, finish, output_path, run_header, write_results  # noqa: E402  (a sibling script)


def interleaved_records(n_streams: int, n_samples: int) -> list[tuple]:
    X, y = make_classification(
        n_samples=3000, n_features=8, n_informative=6, n_classes=3, random_state=0
    )
    columns = []
    for k in range(n_streams):
        stream = ShiftStream(
            X, y, [Shift("label_swap", n_samples // 2)], n_samples=n_samples, seed=k
        )
        columns.append([(f"sensor-{k}", x, label) for x, label in stream])
    return [columns[k][t] for t in range(n_samples) for k in range(n_streams)]


def run(backend: str, n_shards: int, records: list[tuple], kill: bool, every: int) -> dict:
    template = TPSGDClassifier(hidden_layer_sizes=(16,), batch_size=8, seed=0)
    fleet = StreamFleet(
        template, backend=backend, n_shards=n_shards, checkpoint_every=every, timeout=600
    )
    half = len(records) // 2
    start = time.perf_counter()
    for i, (key, x, y) in enumerate(records):
        fleet.learn_one(key, x, y)
        if kill and i == half:
            import ray

            ray.kill(fleet._shards[0], no_restart=False)
    fleet.flush()
    seconds = time.perf_counter() - start
    tail = records[-len(records) // 10 :]
    predictions = fleet.predict_many([(key, x) for key, x, _ in tail])
    accuracy = float(np.mean([p == y for p, (_, _, y) in zip(predictions, tail)]))
    result = {
        "backend": backend,
        "shards": n_shards,
        "killed_an_actor": kill,
        "samples_per_s": len(records) / seconds,
        "accuracy_last_10pct": accuracy,
        "recovery_seconds": getattr(fleet, "recovery_seconds", []),
        "checkpoint_every": every,
    }
    fleet.close()
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--checkpoint-every", type=int, default=5000)
    add_output_arguments(parser, "fleet.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    records = interleaved_records(args.streams, args.samples)
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    runs = [
        run("local", 1, records, False, args.checkpoint_every),
        run("ray", 1, records, False, args.checkpoint_every),
        run("ray", 2, records, False, args.checkpoint_every),
        run("ray", 2, records, True, args.checkpoint_every),
    ]
    local = runs[0]["samples_per_s"]
    for r in runs:
        r["overhead_us_per_sample"] = 1e6 * (1 / r["samples_per_s"] - 1 / local)
        print(
            f"{r['backend']:5s} shards {r['shards']} kill {r['killed_an_actor']!s:5s} "
            f"{r['samples_per_s']:8.0f} samples/s  overhead {r['overhead_us_per_sample']:7.1f} us"
            f"  accuracy {r['accuracy_last_10pct']:.3f}  recovery {r['recovery_seconds']}"
        )
    ray.shutdown()
    results = {**run_header("fleet.py", argv), "torch_threads": 1, "runs": runs}
    write_results(results, output_path(args, "fleet.json"))
    finish(args)


if __name__ == "__main__":
    main()
