"""EEG read as one sensor stream (issue #18): the per-step model's front-ends side by side.

EEG Seizure chunks (178 single-channel steps each) are played back to back as one stream,
each step labelled with its chunk's class: ``five`` (the UCI labels 1..5) and ``binary``
(seizure or not). Every step is standardised with the training split's mean and standard
deviation. Two scores per model:

- ``prequential``: over ``--chunks`` training chunks in a fixed seeded order, each step is
  predicted, then learned;
- ``held_out``: then over ``--test-chunks`` chunks of the test split (other chunks of the same
  recordings' pool), each step is predicted and then only taken (``observe_one``: the state
  moves on) or, for the river models, not learned. No label of this stream is ever learned,
  so tracking the last labels seen is worth nothing here, while it is worth almost everything
  in the prequential score (see ``no_change``).

Models, each fed the same steps in the same process, in turn at every step:

- ``causal_kernels``: ``TPSGDStreamingSequenceClassifier(seed=0)``, the default front-end;
- ``elman``: ``TPSGDStreamingSequenceClassifier(encoder="elman", seed=0)``, the previous one;
- ``memoryless``: river ``StandardScaler | SoftmaxRegression`` on the current step alone;
- ``window_stats``: the same river model on hand-made statistics of the last ``lookback``
  steps (mean, standard deviation, minimum, maximum, mean absolute step-to-step change, the
  current value);
- ``no_change``: river's ``NoChangeClassifier`` (predicts the last label it was given).

Steps per second count a model's own ``predict`` and ``learn`` calls (the window
statistics' bookkeeping included). Results go to a scratch file unless ``--record``.

    python benchmarks/sensor_stream.py --chunks 300 --test-chunks 100
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np
import torch
from river import dummy, linear_model, preprocessing

from tpsgd_stream import datasets
from tpsgd_stream.models import TPSGDStreamingSequenceClassifier

sys.path.insert(0, str(Path(__file__).parent))
from _common import (  # noqa: E402  (a sibling script)
    add_output_arguments,
    finish,
    output_path,
    run_header,
    without_data,
    write_results,
)

TASKS = ("five", "binary")
MODELS = ("causal_kernels", "elman", "memoryless", "window_stats", "no_change")


class WindowStats:
    """River's ``StandardScaler | SoftmaxRegression`` on statistics of the last ``lookback``
    steps: the hand-made peer of the causal kernels (its window advanced by every step)."""

    def __init__(self, lookback: int):
        self.window: deque = deque(maxlen=lookback)
        self.model = preprocessing.StandardScaler() | linear_model.SoftmaxRegression()

    def _features(self, v: float) -> dict:
        w = np.array([*self.window, v])
        change = np.abs(np.diff(w)).mean() if len(w) > 1 else 0.0
        return {
            "mean": w.mean(),
            "sd": w.std(),
            "min": w.min(),
            "max": w.max(),
            "change": change,
            "now": v,
        }

    def predict_one(self, x: dict):
        return self.model.predict_one(self._features(x["v"]))

    def learn_one(self, x: dict, y) -> None:
        self.model.learn_one(self._features(x["v"]), y)
        self.window.append(x["v"])

    def observe_one(self, x: dict) -> None:
        self.window.append(x["v"])


def build(name: str, lookback: int):
    if name == "causal_kernels":
        return TPSGDStreamingSequenceClassifier(seed=0)
    if name == "elman":
        return TPSGDStreamingSequenceClassifier(encoder="elman", seed=0)
    if name == "memoryless":
        return preprocessing.StandardScaler() | linear_model.SoftmaxRegression()
    if name == "window_stats":
        return WindowStats(lookback)
    return dummy.NoChangeClassifier()


def streams(task: str, n_chunks: int, n_test_chunks: int, seed: int):
    """``(train values, train labels), (test values, test labels)``: seeded chunk orders."""
    x_train, y_train, x_test, y_test = datasets.load_eeg_seizure(five_class=task == "five")
    mean, sd = float(x_train.mean()), float(x_train.std())
    rng = np.random.default_rng(seed)
    train = rng.permutation(len(x_train))[:n_chunks]
    test = rng.permutation(len(x_test))[:n_test_chunks]
    length = x_train.shape[1]

    def played(x, y, order):
        return (x[order].astype(np.float64).ravel() - mean) / sd, np.repeat(y[order], length)

    return played(x_train, y_train, train), played(x_test, y_test, test)


def run_task(task: str, args: argparse.Namespace) -> dict:
    (xs, ys), (xt, yt) = streams(task, args.chunks, args.test_chunks, args.seed)
    models = {name: build(name, args.lookback) for name in args.models}
    correct = dict.fromkeys(models, 0)
    held_out = dict.fromkeys(models, 0)
    seconds = dict.fromkeys(models, 0.0)
    for v, y in zip(xs, ys.tolist()):
        x = {"v": float(v)}
        for name, model in models.items():
            start = time.perf_counter()
            correct[name] += model.predict_one(x) == y
            model.learn_one(x, y)
            seconds[name] += time.perf_counter() - start
    for v, y in zip(xt, yt.tolist()):
        x = {"v": float(v)}
        for name, model in models.items():
            held_out[name] += model.predict_one(x) == y
            if hasattr(model, "observe_one"):
                model.observe_one(x)
    out = {
        name: {
            "prequential": correct[name] / len(xs),
            "held_out": held_out[name] / len(xt),
            "steps_per_s": len(xs) / seconds[name],
        }
        for name in models
    }
    print(task, {k: {m: round(v, 3) for m, v in r.items()} for k, r in out.items()})
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated of {TASKS}")
    parser.add_argument("--models", default=",".join(MODELS), help=f"some of {MODELS}")
    parser.add_argument("--chunks", type=int, default=300, help="training chunks streamed")
    parser.add_argument("--test-chunks", type=int, default=100, help="held-out chunks")
    parser.add_argument("--lookback", type=int, default=64, help="window_stats' window")
    parser.add_argument("--seed", type=int, default=0, help="seeds the chunk orders")
    add_output_arguments(parser, "sensor_stream.json")
    args = parser.parse_args(argv)
    args.models = args.models.split(",")
    for name in args.models:
        if name not in MODELS:
            parser.error(f"unknown model {name!r}; expected some of {MODELS}")
    torch.set_num_threads(1)
    results = run_header("sensor_stream.py", argv) | {
        "chunks": args.chunks,
        "test_chunks": args.test_chunks,
        "chunk_steps": 178,
        "lookback": args.lookback,
        "seed": args.seed,
        "tasks": {},
    }
    for task in args.tasks.split(","):
        if task not in TASKS:
            parser.error(f"unknown task {task!r}; expected some of {TASKS}")
        try:
            results["tasks"][task] = run_task(task, args)
        except FileNotFoundError as err:
            without_data("sensor_stream.py", err)
    write_results(results, output_path(args, "sensor_stream.json"))
    finish(args)
    return results


if __name__ == "__main__":
    main()
