"""The README's main job: tpSGD and backprop side by side on a stream of digits.

A prequential run (predict each sample, then learn from it) over scikit-learn's digits, which
ship with scikit-learn, so it needs no download. Each model sees the same shuffled stream.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import numpy as np
from river import metrics, preprocessing
from sklearn.datasets import load_digits
from tqdm.auto import tqdm

from .models import TPSGDClassifier

__all__ = ["DemoResult", "digits_stream", "prequential", "run_demo"]


@dataclass
class DemoResult:
    """Accuracy and speed of one model over the stream."""

    name: str
    accuracy: float
    samples_per_second: float
    n_samples: int


def digits_stream(passes: int = 3, seed: int = 0, limit: int | None = None):
    """``(x, y)`` pairs of scikit-learn's digits, reshuffled on each of ``passes`` passes."""
    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(seed)
    names = [f"px{i}" for i in range(X.shape[1])]
    rows = [(dict(zip(names, row.tolist())), int(label)) for row, label in zip(X, y)]
    stream = [rows[i] for _ in range(passes) for i in rng.permutation(len(rows))]
    return stream[:limit] if limit else stream


def prequential(name: str, model, stream, *, progress: bool) -> DemoResult:
    """Predict then learn on each sample; running accuracy on a progress bar."""
    metric = metrics.Accuracy()
    bar = tqdm(stream, desc=f"{name:>14}", disable=not progress, unit=" samples", leave=True)
    start = time.perf_counter()
    for i, (x, y) in enumerate(bar):
        metric.update(y, model.predict_one(x))
        model.learn_one(x, y)
        if progress and i % 200 == 0:
            bar.set_postfix(accuracy=f"{metric.get():.3f}")
    elapsed = time.perf_counter() - start
    return DemoResult(name, metric.get(), len(stream) / elapsed, len(stream))


def run_demo(*, passes: int = 3, limit: int | None = None, quiet: bool = False, seed: int = 0):
    """Run the side-by-side comparison and print a summary table; return the results."""
    progress = not quiet and sys.stderr.isatty()
    stream = digits_stream(passes, seed, limit)
    contenders = {
        "tpSGD (tpsgd_ce)": TPSGDClassifier(seed=seed),
        "backprop (bp)": TPSGDClassifier(rule="bp", seed=seed),
    }
    results = [
        prequential(name, preprocessing.StandardScaler() | model, stream, progress=progress)
        for name, model in contenders.items()
    ]
    if not quiet:
        print(f"Prequential run over {len(stream)} samples of scikit-learn's digits")
        print(f"{'model':<18} {'accuracy':>9} {'samples/s':>10}")
        for r in results:
            print(f"{r.name:<18} {r.accuracy:>9.4f} {r.samples_per_second:>10.0f}")
    return results
