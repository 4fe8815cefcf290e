"""Short streams: the defaults of ``TPSGDClassifier`` against river and deep-river (issue #19).

Short streams, each read once in its own order, prequentially (predict, then learn), every
model behind river's ``StandardScaler``: scikit-learn's digits (1,797 samples, pixels as
``p0..p63``), river's ImageSegments (2,310), Phishing (1,250) and Bananas (5,300), the
first 10,000 rows of Elec2 (``elec2.npz``, train then test rows in their order, features
``x0..x5``; skipped with a note when the archive is missing), and two drifting streams held
out (``held_out_streams``).

Parts (``--parts``):

- ``tune``: candidate readouts (from the minibatch; from every sample by a gradient step or
  by least squares, with forgetting factors), hidden learning rates, minibatches and widths of
  ``TPSGDClassifier`` on digits, ImageSegments, Phishing and Bananas, and on three drifting
  streams that chose the forgetting factor and the margin (``drift_streams``) (mean over
  ``--seeds``). **Held out**: river's ``RandomRBFDrift`` and an Agrawal concept shift
  (``held_out_streams``), named before any candidate ran on them and never used to choose.
  Elec2 was held out of the earlier choices, but a search of readouts (a helper's) looked at
  it many times: it is reported, no longer held out.
- ``compare``: one run per model on all seven streams: ours at the defaults (and learning
  from every sample, ``readout_margin=None``, the default before the margin),
  river's ``LogisticRegression`` (binary streams) and
  ``SoftmaxRegression``, and deep-river's ``MultiLayerPerceptron`` (one hidden layer of 128,
  ReLU, Adam lr 1e-2, one step per sample) run by ``--deep-river-python`` in a subprocess
  (deep-river 0.3.4 needs river 0.25); skipped, with a note, when that Python cannot import it.
  Accuracy of one run (every model is seeded), samples/s the best of ``--repeats`` runs; for
  ours at the defaults and deep-river also "model only": the model fed the rows as the scaler
  hands them on (scaled beforehand), so the ratio is of the models' own time, not of river's
  ``StandardScaler`` (which costs ~60 us a row on digits' 64 features, both sides).
- ``threads``: the README Quickstart as copied, with the library's thread scoping
  (``torch_threads="auto"``, the default) and without it (``torch_threads=None``: torch's
  process-wide setting, the behaviour before), on the machine as found (its load average is
  recorded: other jobs may be running) and with a busy-loop process added; and the time of
  one update at one thread and at the process's count for a few sizes of work (the
  ``SMALL_WORK`` rule). Runs alternate, median of ``--repeats``.

A part not run keeps its section of the JSON already at the output path (with a
``"carried_over"`` note of the run that made it), so one part can be measured again alone.

Usage::

    python benchmarks/short_streams.py --parts tune compare threads \\
        --deep-river-python /path/to/venv-with-deep-river/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from river import datasets, evaluate, linear_model, metrics, preprocessing
from sklearn.datasets import load_digits

from tpsgd_stream.datasets import load_elec2
from tpsgd_stream.engine import Network
from tpsgd_stream.engine.threads import SMALL_WORK, intra_op_threads
from tpsgd_stream.models import TPSGDClassifier

sys.path.insert(0, str(Path(__file__).parent))
from _common import (  # noqa: E402  (a sibling script)
    add_output_arguments,
    finish,
    output_path,
    run_header,
    write_results,
)

TUNED_ON = ("digits", "ImageSegments", "Phishing", "Bananas")
HELD_OUT = ("RBF drift", "Agrawal shift")  # named before any candidate ran on them
ELEC2_ROWS = 10_000
WORKER = Path(__file__).parent / "_deep_river_worker.py"

PREVIOUS = {  # (the optimizer: least squares did not exist)
    "readout_per_sample": False,
    "readout_solver": "optimizer",
    "hidden_lr_scale": 1.0,
    "batch_ramp": 4096,
}
GRADIENT = {"readout_solver": "optimizer"}  # the per-sample readout's step before least squares
CANDIDATES = {  # name -> TPSGDClassifier keywords (the rest at their defaults)
    "previous default: minibatch readout, 1 -> 32 over 4,096": PREVIOUS,
    "per-sample gradient readout (Adam), hidden lr x0.1": GRADIENT,
    "per-sample gradient readout, hidden lr x0.03": {**GRADIENT, "hidden_lr_scale": 0.03},
    "per-sample gradient readout, hidden batch 64": {**GRADIENT, "batch_size": 64},
    "least squares, forget 1": {"readout_forget": 1.0, "readout_margin": None},
    "least squares, forget 0.9995": {"readout_forget": 0.9995, "readout_margin": None},
    "least squares, forget 0.999": {"readout_forget": 0.999, "readout_margin": None},
    "least squares, forget 0.998, every sample": {"readout_margin": None},
    "least squares, margin 0.6": {"readout_margin": 0.6},
    "least squares, margin 0.8": {"readout_margin": 0.8},
    "least squares, margin 1 (default)": {},
    "least squares, hidden batch 64": {"batch_size": 64},
    "least squares, hidden batch 128": {"batch_size": 128},
    "least squares, width 256": {"hidden_layer_sizes": (256,)},
}
# the rows BENCHMARKS.md shows (the page has a size cap); the JSON keeps every candidate
SHOWN = (
    "previous default: minibatch readout, 1 -> 32 over 4,096",
    "per-sample gradient readout (Adam), hidden lr x0.1",
    "least squares, forget 0.998, every sample",
    "least squares, margin 1 (default)",
)
DRIFTING = ("digits shifts", "Bananas swap", "Hyperplane")  # choose forgetting and margin
EVERY_SAMPLE = {"readout_margin": None}  # the defaults before the margin

THREAD_SIZES = ((64, 128), (784, 128), (784, 512), (784, 2048))  # (inputs, hidden), batch 32


def load_streams() -> dict[str, list[tuple[dict, object]]]:
    """The streams, materialised in their own order (Elec2 only when its archive is found)."""
    digits = load_digits()
    streams = {
        "digits": [
            ({f"p{j}": float(v) for j, v in enumerate(row)}, int(t))
            for row, t in zip(digits.data, digits.target)
        ],
        "ImageSegments": list(datasets.ImageSegments()),
        "Phishing": list(datasets.Phishing()),
        "Bananas": list(datasets.Bananas()),
    }
    try:
        X_train, y_train, X_test, y_test = load_elec2()
    except FileNotFoundError as err:
        print(f"skipping Elec2: {err}", file=sys.stderr)
        return {**streams, **held_out_streams()}
    X = np.concatenate([X_train, X_test])[:ELEC2_ROWS].astype(np.float64)
    y = np.concatenate([y_train, y_test])[:ELEC2_ROWS]
    streams["Elec2"] = [
        ({f"x{j}": float(v) for j, v in enumerate(row)}, int(t)) for row, t in zip(X, y)
    ]
    return {**streams, **held_out_streams()}


def held_out_streams() -> dict[str, list[tuple[dict, object]]]:
    """Drifting streams that no choice looked at: river's ``RandomRBFDrift`` (10 features,
    4 classes, 50 centroids of which 25 move at speed 0.001) and ``Agrawal`` loan rules
    switching from function 0 to function 4 around sample 5,000 (over 500 samples), 10,000
    samples each."""
    from river.datasets import synth

    rbf = synth.RandomRBFDrift(
        seed_model=0,
        seed_sample=0,
        n_classes=4,
        n_features=10,
        n_centroids=50,
        change_speed=0.001,
        n_drift_centroids=25,
    )
    agrawal = synth.ConceptDriftStream(
        synth.Agrawal(classification_function=0, seed=0),
        synth.Agrawal(classification_function=4, seed=0),
        position=5000,
        width=500,
        seed=0,
    )
    return {
        "RBF drift": list(rbf.take(10_000)),
        "Agrawal shift": [(x, int(y)) for x, y in agrawal.take(10_000)],
    }


def drift_streams() -> dict[str, list[tuple[dict, object]]]:
    """Drifting streams for tuning (planted or synthetic; the held-out ones stay out): the
    library's digits shift stream (6,000 samples: a 90-degree rotation at 2,000, a label
    swap at 4,000), Bananas in its order with its two labels swapped from sample 2,650 on,
    and river's rotating ``Hyperplane`` (10 features, 2 drifting, ``mag_change=0.001``, 5,000
    samples)."""
    from river.datasets import synth

    from tpsgd_stream.drift.streams import Shift, ShiftStream, digits_shift_stream

    bananas = list(datasets.Bananas())
    X = np.array([[x[k] for k in sorted(x)] for x, _ in bananas])
    y = np.array([int(label) for _, label in bananas])
    swap = ShiftStream(X, y, [Shift("label_swap", 2650)], order="original", seed=0)
    hyperplane = synth.Hyperplane(seed=0, n_features=10, n_drift_features=2, mag_change=0.001)
    return {
        "digits shifts": list(digits_shift_stream(n_samples=6000, seed=0)),
        "Bananas swap": list(swap),
        "Hyperplane": [(x, int(label)) for x, label in hyperplane.take(5000)],
    }


def prequential(model, stream) -> dict:
    """Accuracy and samples/s of ``model`` predicting, then learning, each sample once."""
    accuracy = metrics.Accuracy()
    start = time.perf_counter()
    for x, y in stream:
        accuracy.update(y, model.predict_one(x))
        model.learn_one(x, y)
    seconds = time.perf_counter() - start
    return {"accuracy": accuracy.get(), "samples_per_s": round(len(stream) / seconds)}


def prescaled(stream) -> list[tuple[dict, dict, object]]:
    """``(x to predict, x to learn, y)`` as ``StandardScaler() | model`` hands them to the
    model: scaled before the scaler learns the sample, and after."""
    scaler = preprocessing.StandardScaler()
    rows = []
    for x, y in stream:
        seen = scaler.transform_one(x)
        scaler.learn_one(x)
        rows.append((seen, scaler.transform_one(x), y))
    return rows


def model_only(model, rows) -> dict:
    """``prequential`` of ``model`` alone on ``prescaled`` rows: the same predictions as
    behind the scaler, without the scaler's time."""
    accuracy = metrics.Accuracy()
    start = time.perf_counter()
    for seen, learned, y in rows:
        accuracy.update(y, model.predict_one(seen))
        model.learn_one(learned, y)
    seconds = time.perf_counter() - start
    return {"accuracy": accuracy.get(), "samples_per_s": round(len(rows) / seconds)}


def fastest(make, stream, repeats: int) -> dict:
    """``prequential`` of ``repeats`` fresh models from ``make()``: the accuracy (the same each
    time: the models are seeded) and the best samples/s, the run least slowed by other work."""
    runs = [prequential(make(), stream) for _ in range(repeats)]
    return {"accuracy": runs[0]["accuracy"], "samples_per_s": max(r["samples_per_s"] for r in runs)}


def ours(seed: int = 0, **params):
    return preprocessing.StandardScaler() | TPSGDClassifier(seed=seed, **params)


# ------------------------------------------------------------------------------- tune
def tune(streams: dict, seeds: list[int]) -> dict:
    """Mean accuracy (and samples/s) of each candidate on the tuning streams and the
    drifting ones."""
    streams = {**streams, **drift_streams()}
    rows = {}
    for name, params in CANDIDATES.items():
        row = {}
        for stream in (*TUNED_ON, *DRIFTING):
            runs = [prequential(ours(s, **params), streams[stream]) for s in seeds]
            row[stream] = {
                "accuracy": statistics.mean(r["accuracy"] for r in runs),
                "samples_per_s": round(statistics.median(r["samples_per_s"] for r in runs)),
            }
        row["mean_accuracy"] = statistics.mean(row[s]["accuracy"] for s in TUNED_ON)
        row["drift_mean_accuracy"] = statistics.mean(row[s]["accuracy"] for s in DRIFTING)
        rows[name] = row
        shown = " ".join(f"{row[s]['accuracy']:.3f}" for s in (*TUNED_ON, *DRIFTING))
        print(f"{name:52s}", shown, flush=True)
    return {
        "tuned_on": list(TUNED_ON),
        "drifting": list(DRIFTING),
        "held_out": list(HELD_OUT),
        "seeds": seeds,
        "rows": rows,
        "shown": list(SHOWN),
    }


# ---------------------------------------------------------------------------- compare
def deep_river(python: str | None, streams: dict, repeats: int) -> dict:
    """deep-river's results from ``python`` running the worker, or ``{"skipped": why}``."""
    if not python:
        return {"skipped": "no --deep-river-python given"}
    payload = {
        n: {"x": [x for x, _ in s], "y": [y for _, y in s], "scaled": prescaled(s)}
        for n, s in streams.items()
    }
    try:
        done = subprocess.run(
            [python, str(WORKER), str(repeats)],
            input=json.dumps(payload),
            capture_output=True,
            text=True,
            check=True,
        )
        out = json.loads(done.stdout)
    except (OSError, subprocess.CalledProcessError, json.JSONDecodeError) as error:
        return {"skipped": f"{python} could not run the deep-river worker: {error}"}
    if "error" in out:
        return {"skipped": f"deep_river is not importable by {python}: {out['error']}"}
    return out


def compare(streams: dict, python: str | None, repeats: int) -> dict:
    """Each model on each stream (seed 0): accuracy of one run, best samples/s of ``repeats``."""
    deep = deep_river(python, streams, repeats)
    out = {"deep_river": deep.pop("_versions", None) or deep, "repeats": repeats, "streams": {}}
    scaled = preprocessing.StandardScaler
    for name, stream in streams.items():
        contenders = {
            "TPSGDClassifier, defaults": ours,
            "TPSGDClassifier, every sample": lambda: ours(**EVERY_SAMPLE),
            "river SoftmaxRegression": lambda: scaled() | linear_model.SoftmaxRegression(),
        }
        if len({y for _, y in stream}) == 2:
            contenders["river LogisticRegression"] = lambda: (
                scaled() | linear_model.LogisticRegression()
            )
        rows = {label: fastest(make, stream, repeats) for label, make in contenders.items()}
        scaled_rows = prescaled(stream)
        alone = [model_only(TPSGDClassifier(seed=0), scaled_rows) for _ in range(repeats)]
        rows["TPSGDClassifier, defaults"]["model_only_samples_per_s"] = max(
            r["samples_per_s"] for r in alone
        )
        if name in deep:
            rows["deep-river MultiLayerPerceptron"] = {
                key: round(deep[name][key]) if key.endswith("per_s") else deep[name][key]
                for key in ("accuracy", "samples_per_s", "model_only_samples_per_s")
                if key in deep[name]
            }
        out["streams"][name] = {
            "n_samples": len(stream),
            "held_out": name in HELD_OUT,
            "results": rows,
        }
        print(name, {k: round(v["accuracy"], 4) for k, v in rows.items()}, flush=True)
    return out


# ---------------------------------------------------------------------------- threads
def quickstart(torch_threads) -> float:
    """Seconds of the README Quickstart (with ``torch_threads`` given to the model)."""
    model = preprocessing.StandardScaler() | TPSGDClassifier(seed=1, torch_threads=torch_threads)
    start = time.perf_counter()
    evaluate.progressive_val_score(datasets.Phishing(), model, metrics.Accuracy())
    return time.perf_counter() - start


def update_seconds(n_inputs: int, hidden: int, threads: int | None, steps: int = 40) -> float:
    """Median seconds of one ``train_step`` on a minibatch of 32 with ``threads`` threads."""
    net = Network.mlp(n_inputs, (hidden,), 10, seed=0)
    x, y = torch.randn(32, n_inputs), torch.eye(10)[torch.arange(32) % 10]
    times = []
    with intra_op_threads(threads):
        for _ in range(steps):
            start = time.perf_counter()
            net.train_step(x, y)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def thread_runs(repeats: int) -> dict:
    """Quickstart seconds and update times, scoped threads against torch's setting."""
    out = {"process_threads": torch.get_num_threads(), "small_work": SMALL_WORK}
    for condition in ("as found", "plus a busy loop"):
        spinner = None
        if condition != "as found":
            spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            time.sleep(0.5)
        load_average = os.getloadavg()[0]
        try:
            before, after = [], []
            for _ in range(repeats):
                before.append(quickstart(None))
                after.append(quickstart("auto"))
            updates = {}
            for n_inputs, hidden in THREAD_SIZES:
                work = 32 * (n_inputs * hidden + hidden * 10)
                one = update_seconds(n_inputs, hidden, 1)
                many = update_seconds(n_inputs, hidden, None)
                updates[f"{n_inputs}-{hidden}-10"] = {
                    "work": work,
                    "us_one_thread": one * 1e6,
                    "us_process_threads": many * 1e6,
                }
        finally:
            if spinner is not None:
                spinner.kill()
                spinner.wait()
        out[condition] = {
            "load_average": load_average,
            "quickstart_s_before": statistics.median(before),
            "quickstart_s_after": statistics.median(after),
            "speedup": statistics.median(before) / statistics.median(after),
            "updates": updates,
        }
        print(condition, out[condition], flush=True)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", nargs="+", default=["compare", "threads"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--deep-river-python",
        default=None,
        help="a Python that imports deep_river (its side runs there); default: skip it",
    )
    add_output_arguments(parser, "short_streams.json")
    args = parser.parse_args(argv)
    streams = load_streams()
    results = run_header("short_streams.py", argv)
    if "tune" in args.parts:
        results["tune"] = tune(streams, args.seeds)
    if "compare" in args.parts:
        results["compare"] = compare(streams, args.deep_river_python, args.repeats)
    if "threads" in args.parts:
        results["threads"] = thread_runs(args.repeats)
    path = output_path(args, "short_streams.json")
    write_results(carry_over(results, path), path)
    finish(args)


def carry_over(results: dict, path: Path) -> dict:
    """``results`` with the parts it lacks taken from the JSON already at ``path``, each
    noting the command, commit and date of the run that measured it."""
    try:
        previous = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return results
    origin = {k: previous.get(k) for k in ("command", "commit", "date")}
    for part in ("tune", "compare", "threads"):
        if part not in results and part in previous:
            results[part] = {
                **previous[part],
                "carried_over": previous[part].get("carried_over", origin),
            }
    return results


if __name__ == "__main__":
    main()
