"""Prequential (predict, then learn) accuracy and samples/s of the streaming estimators.

Streams: river's ``ImageSegments`` and ``Phishing``, and scikit-learn's ``digits`` read as a
stream. Contenders, each behind an online standardisation:

- ``TPSGDClassifier`` with its default rule (``tpsgd_head``), with ``tpsgd_ce`` (the default
  before it) and with ``rule="bp"``, on two paths:
  ``learn_one`` (``predict_one`` then ``learn_one`` per sample, behind river's
  ``StandardScaler`` in a pipeline) and ``learn_many`` (``predict_many`` then ``learn_many``
  on 32-row DataFrames). The ``learn_many`` path is timed twice: through the river pipeline
  (``StandardScaler.learn_many``/``transform_many`` included) and as the model alone on frames
  the same online scaler produced beforehand ("model only").
- ``TPSGDClassifier`` with ``rule="forward_grad"`` (SPSA weight perturbation) and
  ``rule="bitflip"`` (binary weights), the other on-device training families, ``learn_one``.
- ``TPSGDClassifier`` alone on the ``learn_one`` path ("model only"): ``predict_one`` then
  ``learn_one`` on dicts the same online scaler produced beforehand, so that the estimator's
  share of the pipeline's time is visible (river's ``StandardScaler`` on a 64-key dict costs
  more than the estimator).
- river's ``LogisticRegression`` (binary stream) or ``SoftmaxRegression`` (multiclass), on the
  ``learn_one`` path behind ``StandardScaler``.
- deep-river's ``MultiLayerPerceptron`` (one hidden layer of 128, ReLU, Adam, one update per
  sample: its design), on the ``learn_one`` path behind ``StandardScaler``; only when
  ``deep_river`` is importable (it is not a dependency of this project: install it with
  ``pip install --no-deps --target DIR deep-river==0.3.4`` and put ``DIR`` on ``PYTHONPATH``).
- The pipeline's floor: river's ``StandardScaler`` in front of a classifier that learns
  nothing (``learn_one`` path), and deep-river's MLP alone on the pre-scaled dicts ("model
  only"), so that the estimators' ratios can be read without the scaler's share.
- A plain PyTorch loop: the same MLP trained by backprop with Adam on minibatches of 32, on
  tensors prepared beforehand, with a hand-written online standardisation (the ceiling: no
  dicts, no DataFrames, the classes known in advance).

All contenders run with ``torch.set_num_threads(1)``: the tensors are tiny, and on a shared
machine intra-op threads made single small ops up to 100x slower. Every configuration runs
``--repeats`` times, interleaved, with seeds 0, 1, ...: accuracy is the mean over seeds,
samples/s the best and the median run, and every run's samples/s is kept in the JSON, so that a
ratio between two contenders can be taken run by run (paired: both ran within seconds of each
other) before its median, which the machine's slow changes of speed bias less.

Run: ``python benchmarks/stream_throughput.py [--repeats 5] [--streams digits ...]``; writes
``stream_throughput.json`` into ``benchmarks/results/`` with ``--record``, else into a scratch
folder. ``--tables-from JSON`` runs nothing and prints a results file's tables (Markdown, paired
ratios).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from river import base, datasets, linear_model, preprocessing
from sklearn.datasets import load_digits

from tpsgd_stream.models import TPSGDClassifier

sys.path.insert(0, str(Path(__file__).parent))
from _common import add_output_arguments, finish, output_path, run_header, write_results  # noqa: E402  (a sibling script)

BATCH = 32
HIDDEN = (128,)  # TPSGDClassifier's default; the torch loop uses the same net
LR = 1e-2  # TPSGDClassifier's default
LOCAL_RULES = ("tpsgd_head", "tpsgd_ce")  # the default rule, and the default before it


def load_streams() -> dict[str, list[tuple[dict, object]]]:
    digits = load_digits()
    return {
        "ImageSegments": list(datasets.ImageSegments()),
        "Phishing": list(datasets.Phishing()),
        "digits": [
            ({f"p{j}": float(v) for j, v in enumerate(row)}, int(t))
            for row, t in zip(digits.data, digits.target)
        ],
    }


def deep_river_mlp() -> type | None:
    """deep-river's ``MultiLayerPerceptron`` class, or ``None`` when it cannot be imported.

    deep-river 0.3.4 imports ``river.anomaly.base.AnomalyDetector``, which river 0.26 moved to
    ``river.base``; the alias below only lets its package import (its anomaly detectors are
    not used here).
    """
    if importlib.util.find_spec("deep_river") is None:
        print("deep-river skipped: deep_river is not importable", flush=True)
        return None
    import river.anomaly
    import river.base

    if not hasattr(river.anomaly, "base"):
        river.anomaly.base = river.base
        sys.modules.setdefault("river.anomaly.base", river.base)
    try:
        from deep_river.classification.zoo import MultiLayerPerceptron
    except ImportError as error:
        print(f"deep-river skipped: {error}", flush=True)
        return None
    return MultiLayerPerceptron


# ------------------------------------------------------------------------------ contenders
class NoOpClassifier(base.Classifier):
    """Learns nothing and predicts the first label it saw: behind the ``StandardScaler`` it
    times the pipeline alone, the floor under every ``learn_one`` contender."""

    def __init__(self):
        self.label = None

    def learn_one(self, x, y):
        if self.label is None:
            self.label = y

    def predict_proba_one(self, x):
        return {} if self.label is None else {self.label: 1.0}

    def predict_one(self, x):
        return self.label


def run_one(model, samples) -> tuple[int, float]:
    """Prequential ``learn_one`` path over ``(x to predict, x to learn, y)`` triples: the same
    dict twice through a pipeline, or the scaler's outputs before and after it learned x."""
    correct = 0
    start = time.perf_counter()
    for x_pred, x_learn, y in samples:
        correct += model.predict_one(x_pred) == y
        model.learn_one(x_learn, y)
    return correct, time.perf_counter() - start


def run_many(model, samples) -> tuple[int, float]:
    """As :func:`run_one`, on ``(frame, frame, labels)`` triples."""
    correct = 0
    start = time.perf_counter()
    for X_pred, X_learn, y in samples:
        correct += int((model.predict_many(X_pred).to_numpy() == y.to_numpy()).sum())
        model.learn_many(X_learn, y)
    return correct, time.perf_counter() - start


def twice(samples) -> list[tuple]:
    """``(x, y)`` pairs as ``(x, x, y)`` triples, for a pipeline that scales x itself."""
    return [(x, x, y) for x, y in samples]


def make_frames(data) -> list[tuple[pd.DataFrame, pd.Series]]:
    return [
        (
            pd.DataFrame([x for x, _ in data[i : i + BATCH]]),
            pd.Series([y for _, y in data[i : i + BATCH]]),
        )
        for i in range(0, len(data), BATCH)
    ]


def prescale(samples, *, many: bool) -> list[tuple]:
    """Inputs as the pipeline's StandardScaler hands them on: scaled with the old statistics
    for prediction, with the updated ones for learning, as ``(before, after, y)``. ``many``:
    ``samples`` are 32-row ``(frame, labels)`` minibatches, else ``(dict, label)`` pairs."""
    scaler = preprocessing.StandardScaler()
    if many:
        transform, learn = scaler.transform_many, scaler.learn_many
    else:
        transform, learn = scaler.transform_one, scaler.learn_one
    out = []
    for x, y in samples:
        before = transform(x)
        learn(x)
        out.append((before, transform(x), y))
    return out


def run_torch_loop(data, seed: int) -> tuple[int, float]:
    """The ceiling: backprop on minibatches of 32 over ready-made tensors."""
    names = sorted({k for x, _ in data for k in x})
    labels = sorted({y for _, y in data}, key=repr)
    index = {c: i for i, c in enumerate(labels)}
    X = torch.tensor([[x.get(k, 0.0) for k in names] for x, _ in data], dtype=torch.float32)
    y = torch.tensor([index[t] for _, t in data])
    torch.manual_seed(seed)
    layers, width = [], X.shape[1]
    for h in HIDDEN:
        layers += [torch.nn.Linear(width, h), torch.nn.LeakyReLU(0.1)]
        width = h
    net = torch.nn.Sequential(*layers, torch.nn.Linear(width, len(labels)))
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    count, mean, m2 = 0, torch.zeros(X.shape[1]), torch.zeros(X.shape[1])
    correct = 0
    start = time.perf_counter()
    for i in range(0, len(X), BATCH):
        xb, yb = X[i : i + BATCH], y[i : i + BATCH]
        std = (m2 / max(count, 1)).sqrt().clamp_min(1e-12) if count else torch.ones_like(mean)
        with torch.no_grad():
            correct += int((net((xb - mean) / std).argmax(1) == yb).sum())
        # online standardisation: merge the batch's moments (Chan et al.)
        n_b = len(xb)
        mean_b, m2_b = xb.mean(0), ((xb - xb.mean(0)) ** 2).sum(0)
        delta = mean_b - mean
        total = count + n_b
        mean = mean + delta * n_b / total
        m2 = m2 + m2_b + delta**2 * count * n_b / total
        count = total
        std = (m2 / count).sqrt().clamp_min(1e-12)
        loss = torch.nn.functional.cross_entropy(net((xb - mean) / std), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return correct, time.perf_counter() - start


def contenders(name: str, data, deep_mlp: type | None = None):
    """(label, path, run(seed) -> (correct, seconds)) for one stream; ``deep_mlp``:
    deep-river's ``MultiLayerPerceptron`` class, or ``None`` to leave it out."""
    frames = make_frames(data)
    raw, raw_frames = twice(data), twice(frames)  # through the pipeline's own scaler
    scaled = prescale(frames, many=True)
    scaled_dicts = prescale(data, many=False)
    binary = len({y for _, y in data}) == 2
    river_name = "river LogisticRegression" if binary else "river SoftmaxRegression"
    river_cls = linear_model.LogisticRegression if binary else linear_model.SoftmaxRegression

    def tpsgd(rule, seed):
        return TPSGDClassifier(rule=rule, seed=seed)

    def piped(model):
        return preprocessing.StandardScaler() | model

    for rule in (*LOCAL_RULES, "bp"):
        yield (
            f"TPSGDClassifier ({rule})",
            "learn_one",
            lambda s, r=rule: run_one(piped(tpsgd(r, s)), raw),
        )
    for rule in LOCAL_RULES:
        yield (
            f"TPSGDClassifier ({rule})",
            "learn_one, model only",
            lambda s, r=rule: run_one(tpsgd(r, s), scaled_dicts),
        )
    yield river_name, "learn_one", lambda s: run_one(piped(river_cls()), raw)
    yield (
        "StandardScaler alone (no-op model)",
        "learn_one",
        lambda s: run_one(piped(NoOpClassifier()), raw),
    )
    if deep_mlp is not None:
        n_features = len({k for x, _ in data for k in x})
        n_classes = len({y for _, y in data})

        def deep(seed):
            return deep_mlp(
                n_features=n_features,
                n_width=HIDDEN[0],
                n_layers=len(HIDDEN),  # layers of n_width units, the first fed by the input
                n_init_classes=n_classes,
                optimizer_fn="adam",
                lr=LR,
                seed=seed,
            )

        yield (
            "deep-river MultiLayerPerceptron",
            "learn_one",
            lambda s: run_one(piped(deep(s)), raw),
        )
        yield (
            "deep-river MultiLayerPerceptron",
            "learn_one, model only",
            lambda s: run_one(deep(s), scaled_dicts),
        )
    for rule in (*LOCAL_RULES, "bp"):
        yield (
            f"TPSGDClassifier ({rule})",
            "learn_many",
            lambda s, r=rule: run_many(piped(tpsgd(r, s)), raw_frames),
        )
    for rule in (*LOCAL_RULES, "bp"):
        yield (
            f"TPSGDClassifier ({rule})",
            "learn_many, model only",
            lambda s, r=rule: run_many(tpsgd(r, s), scaled),
        )
    for edge_rule in ("forward_grad", "bitflip"):  # the other on-device families (issue 8)
        yield (
            f"TPSGDClassifier ({edge_rule})",
            "learn_one",
            lambda s, r=edge_rule: run_one(piped(tpsgd(r, s)), raw),
        )
    yield "PyTorch loop (backprop, minibatch 32)", "tensors", lambda s: run_torch_loop(data, s)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--streams", nargs="+", default=None, help="run only these streams (default: all)"
    )
    add_output_arguments(parser, "stream_throughput.json")
    parser.add_argument(
        "--tables-from",
        metavar="JSON",
        help="run nothing: print the paired-ratio Markdown tables of a results file",
    )
    args = parser.parse_args(argv)
    if args.tables_from:
        from render import stream_throughput as tables  # the page's tables, paired ratios

        print(tables(json.loads(Path(args.tables_from).read_text())))
        return
    torch.set_num_threads(1)
    TPSGDClassifier(seed=0).learn_one({"warm": 1.0}, 0)  # one-time imports out of the timings
    deep_mlp = deep_river_mlp()

    results = {
        **run_header("stream_throughput.py", argv),
        "torch_threads": 1,
        "batch": BATCH,
        "hidden_layer_sizes": HIDDEN,
        "lr": LR,
        "repeats": args.repeats,
        "deep_river": None if deep_mlp is None else _version("deep_river"),
        "streams": {},
    }
    for name, data in load_streams().items():
        if args.streams and name not in args.streams:
            continue
        runs = list(contenders(name, data, deep_mlp))
        records = {(label, path): [] for label, path, _ in runs}
        for seed in range(args.repeats):  # interleaved, so load spikes hit every contender
            for label, path, run in runs:
                correct, seconds = run(seed)
                records[label, path].append((correct / len(data), len(data) / seconds))
        rows = []
        for (label, path), values in records.items():
            accs, speeds = zip(*values)
            rows.append(
                {
                    "model": label,
                    "path": path,
                    "accuracy": round(float(np.mean(accs)), 4),
                    "accuracy_per_seed": [round(a, 4) for a in accs],
                    "samples_per_s": round(max(speeds)),
                    "samples_per_s_median": round(float(np.median(speeds))),
                    "samples_per_s_runs": [round(v) for v in speeds],  # by seed, for paired ratios
                }
            )
            print(
                f"{name:14s} {label:40s} {path:24s} acc {np.mean(accs):.4f} "
                f"{max(speeds):9.0f} samples/s (median {np.median(speeds):.0f})",
                flush=True,
            )
        results["streams"][name] = {
            "n_samples": len(data),
            "n_features": len({k for x, _ in data for k in x}),
            "n_classes": len({y for _, y in data}),
            "results": rows,
        }
    results["load_average_after"] = os.getloadavg()
    write_results(results, output_path(args, "stream_throughput.json"))
    finish(args)


def _version(module: str) -> str:
    return getattr(sys.modules[module], "__version__", "unknown")


if __name__ == "__main__":
    main()
