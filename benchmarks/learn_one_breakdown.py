"""Where a ``learn_one`` sample's time goes in ``TPSGDClassifier``, on scikit-learn's digits.

A model trained on the whole stream (pre-scaled by river's ``StandardScaler``, as in
``stream_throughput.py``) is timed part by part over the same dicts: ``predict_one``, its
input parsing (``parse_values``) and its forward pass of one row, ``learn_one`` without its
minibatch step (the step replaced by a no-op), and the step itself divided by the batch size.
Each figure is the fastest of ``--repeats`` passes over the stream, in microseconds a sample,
with one torch thread: the cost on a quiet machine, which the throughput benchmark's
medians (a shared machine, other processes) sit above.

With ``--baseline REF`` (a git commit or branch, e.g. ``main``), a second part times the small
updates of issue #19 side by side: the package as of ``REF`` (copied from git into a scratch
folder and imported under another name) against this checkout, in the same process, the two
alternating in each of ``--repeats`` rounds: one ``train_step`` of the default network
(64-128-10, ``tpsgd_l2_gated``, Adam) on minibatches of 1 and 8 digits rows, and whole
prequential passes (``predict_one`` then ``learn_one``) of ``StandardScaler() |
TPSGDClassifier(seed=0)`` over the four streams of ``short_streams.py``, beside the scaler in
front of a model that does nothing (the most samples/s any model behind it can reach). These
figures are the thread's CPU time (``time.thread_time``; fastest round), which other processes
on a shared machine disturb less than wall time.

Run: ``python benchmarks/learn_one_breakdown.py [--rule tpsgd_head] [--repeats 7]
[--baseline main]``; writes ``learn_one_breakdown.json`` into ``benchmarks/results/`` with
``--record``, else into a scratch folder.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch
from river import dummy, preprocessing
from sklearn.datasets import load_digits

import tpsgd_stream
from tpsgd_stream.models import TPSGDClassifier
from tpsgd_stream.models._inputs import parse_values

sys.path.insert(0, str(Path(__file__).parent))
from _common import add_output_arguments, finish, output_path, run_header, write_results  # noqa: E402  (a sibling script)
from short_streams import load_streams  # noqa: E402

BASELINE = "_tpsgd_baseline"  # the name the package as of --baseline is imported under


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


def import_baseline(ref: str):
    """The package as of git ``ref``, copied into a scratch folder and imported as
    :data:`BASELINE`; and the full commit ``ref`` names."""
    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> bytes:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, check=True).stdout

    commit = git("rev-parse", ref).decode().strip()
    folder = Path(tempfile.mkdtemp(prefix="tpsgd-baseline-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)  # (read until the end: lazy imports)
    with tarfile.open(fileobj=io.BytesIO(git("archive", commit, "tpsgd_stream"))) as archive:
        archive.extractall(folder, filter="data")
    (folder / "tpsgd_stream").rename(folder / BASELINE)
    sys.path.insert(0, str(folder))
    return importlib.import_module(BASELINE), commit


def cpu_us(run, n: int) -> float:
    """CPU microseconds of this thread per item of one call of ``run`` (``n`` items)."""
    start = time.thread_time()
    run()
    return (time.thread_time() - start) / n * 1e6


def step_run(package, data: list[tuple[dict, int]], batch: int, steps: int = 100):
    """A ``run`` of ``steps`` updates of the default network on consecutive digits rows."""
    network = importlib.import_module(f"{package.__name__}.engine.network").Network
    net = network.mlp(64, (128,), 10, lr=1e-2, seed=0)
    x = torch.tensor([[row[f"p{j}"] for j in range(64)] for row, _ in data], dtype=torch.float32)
    target = torch.eye(10)[[label for _, label in data]]
    batches = [(x[i : i + batch], target[i : i + batch]) for i in range(0, batch * steps, batch)]
    for xb, yb in batches:  # (warm: the projection, the optimizer state, the gate)
        net.train_step(xb, yb, check_finite=False)

    def run():
        for xb, yb in batches:
            net.train_step(xb, yb, check_finite=False)

    return run


def stream_run(package, stream: list[tuple[dict, object]]):
    """A ``run`` of one prequential pass of a fresh scaled default classifier."""
    models = importlib.import_module(f"{package.__name__}.models")

    def run():
        model = preprocessing.StandardScaler() | models.TPSGDClassifier(seed=0)
        for x, y in stream:
            model.predict_one(x)
            model.learn_one(x, y)

    return run


def scaler_run(stream: list[tuple[dict, object]]):
    """A ``run`` of the same prequential pass with river's scaler in front of a model that
    does nothing (``dummy.NoChangeClassifier``): the most samples/s any model behind the
    scaler can reach."""

    def run():
        model = preprocessing.StandardScaler() | dummy.NoChangeClassifier()
        for x, y in stream:
            model.predict_one(x)
            model.learn_one(x, y)

    return run


def small_updates(ref: str, data: list[tuple[dict, int]], repeats: int) -> dict:
    """The package as of ``ref`` against this checkout, alternating: CPU us an update and
    samples/s of the streams (fastest of ``repeats`` rounds), and their ratios."""
    baseline, commit = import_baseline(ref)
    streams = load_streams()
    runs = {
        f"step, batch {batch}": (
            {
                name: step_run(pkg, data, batch)
                for name, pkg in (("before", baseline), ("after", tpsgd_stream))
            },
            100,
        )
        for batch in (1, 8)
    }
    for name, stream in streams.items():
        runs[name] = (
            {"before": stream_run(baseline, stream), "after": stream_run(tpsgd_stream, stream)},
            len(stream),
        )
    best: dict = {}
    for _ in range(repeats):
        for part, (pair, n) in runs.items():
            for side, run in pair.items():
                best[part, side] = min(best.get((part, side), float("inf")), cpu_us(run, n))
    scaler = {
        name: min(cpu_us(scaler_run(stream), len(stream)) for _ in range(repeats))
        for name, stream in streams.items()
    }
    steps, rows = {}, {}
    for part in runs:
        before, after = best[part, "before"], best[part, "after"]
        if part.startswith("step"):
            steps[part] = {"us_before": before, "us_after": after, "speedup": before / after}
        else:
            rows[part] = {
                "samples_per_s_before": round(1e6 / before),
                "samples_per_s_after": round(1e6 / after),
                "speedup": before / after,
                "scaler_ceiling_samples_per_s": round(1e6 / scaler[part]),
            }
        print(f"{part:18s} before {before:8.1f}  after {after:8.1f} us  x{before / after:.2f}")
    return {
        "baseline": ref,
        "baseline_commit": commit,
        "clock": "thread CPU time, fastest round",
        "steps": steps,
        "streams": rows,
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rule", default="tpsgd_head")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--baseline",
        default=None,
        help="a git commit or branch to time the small updates against (default: skip them)",
    )
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
    if args.baseline is not None:
        results["small_updates"] = small_updates(args.baseline, data, repeats)
    write_results(results, output_path(args, "learn_one_breakdown.json"))
    finish(args)
    return results


if __name__ == "__main__":
    main()
