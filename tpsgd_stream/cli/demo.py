"""The README's main job: tpSGD, backprop and tpSGD with a drift adaptor on shifting digits.

A prequential run (predict each sample, then learn from it) over scikit-learn's digits, which
ship with scikit-learn, so nothing is downloaded. The stream is rotated by 90 degrees a third
of the way in and its labels are swapped two thirds of the way in; every model sees the same
samples. The third model wraps tpSGD in a :class:`~tpsgd_stream.drift.DriftAdaptiveClassifier`,
which re-trains only its output layer when ADWIN sees the error rise. The summary gives each
model's accuracy per segment and its speed; the PNG shows accuracy over the stream with the
shifts and the adaptations marked.

The speeds exclude start-up: before any model is timed, an untimed copy of each learns from
the first :data:`WARM_UP_SAMPLES` samples, so that torch's first-call costs (and those of
autograd, which only backprop uses) land on none of the timed runs.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from river import preprocessing

from .._optional import progress_bar
from ..drift import DriftAdaptiveClassifier, digits_shift_stream
from ..engine.rules import DEFAULT_RULE
from ..models import TPSGDClassifier
from .plotting import plot_stream_accuracy

__all__ = ["DemoResult", "WARM_UP_SAMPLES", "prequential", "run_demo"]

WARM_UP_SAMPLES = 300


@dataclass
class DemoResult:
    """One model's prequential record over the stream.

    Examples
    --------
    >>> import numpy as np
    >>> r = DemoResult("m", np.array([True, False, True, True]), seconds=2.0)
    >>> r.accuracy, r.samples_per_second
    (0.75, 2.0)
    """

    name: str
    correct: np.ndarray
    seconds: float
    segments: list[float] = field(default_factory=list)
    actions: list[tuple[int, str]] = field(default_factory=list)  # (index, "adapt" or "remap")

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean())

    @property
    def samples_per_second(self) -> float:
        return len(self.correct) / self.seconds


def prequential(name: str, model, stream, *, progress: bool = False) -> DemoResult:
    """Predict then learn on each ``(x, y)``; a progress bar shows the running accuracy."""
    correct = np.zeros(len(stream), dtype=bool)
    bar = progress_bar(
        stream, total=len(stream), desc=f"{name:>16}", disable=not progress, unit=" x"
    )
    start = time.perf_counter()
    for i, (x, y) in enumerate(bar):
        correct[i] = model.predict_one(x) == y
        model.learn_one(x, y)
        if progress and i % 250 == 0:
            bar.set_postfix(accuracy=f"{correct[: i + 1].mean():.3f}")
    return DemoResult(name, correct, time.perf_counter() - start)


def _contenders(seed: int) -> dict:
    def mlp(rule: str = DEFAULT_RULE) -> TPSGDClassifier:
        return TPSGDClassifier(hidden_layer_sizes=(128,), rule=rule, seed=seed)

    return {
        f"tpSGD ({DEFAULT_RULE})": mlp(),
        "backprop (bp)": mlp("bp"),
        "tpSGD + adaptor": DriftAdaptiveClassifier(mlp(), seed=seed),
    }


def run_demo(
    *,
    n_samples: int = 5400,
    seed: int = 0,
    quiet: bool = False,
    plot: str | Path | None = None,
) -> list[DemoResult]:
    """Run the comparison, print a summary table, write the plot; return the results.

    ``plot`` is the PNG's path (``None``: no plot). The speeds exclude start-up (see the
    module's docstring).
    """
    progress = not quiet and sys.stderr.isatty()
    stream = digits_shift_stream(n_samples=n_samples, seed=seed)
    bounds = [0, *(s.position for s in stream.shifts), n_samples]
    records = list(stream)  # drawn once, the same samples for every model
    for name, model in _contenders(seed).items():  # untimed copies: start-up lands here
        prequential(name, preprocessing.StandardScaler() | model, records[:WARM_UP_SAMPLES])
    results = []
    for name, model in _contenders(seed).items():
        pipeline = preprocessing.StandardScaler() | model
        result = prequential(name, pipeline, records, progress=progress)
        result.segments = [float(result.correct[a:b].mean()) for a, b in zip(bounds, bounds[1:])]
        events = getattr(model, "drift_events", [])
        result.actions = [(e.index, e.action) for e in events if e.action in ("adapt", "remap")]
        results.append(result)
    if plot:
        plot_stream_accuracy(
            {r.name: r.correct for r in results},
            plot,
            shifts=bounds[1:-1],
            detections={r.name: [index for index, _ in r.actions] for r in results},
            title=f"Prequential accuracy on scikit-learn digits ({n_samples} samples)",
        )
    if not quiet:
        _print_table(results, stream, plot)
    return results


def _print_table(results: list[DemoResult], stream, plot) -> None:
    shifts = ", ".join(f"{s.kind} at {s.position}" for s in stream.shifts)
    print(f"Prequential run over {len(stream)} digits ({shifts})")
    segments = [f"seg {i + 1}" for i in range(len(results[0].segments))]
    width = max(len("model"), *(len(r.name) for r in results)) + 2
    print(
        f"{'model':<{width}}{'accuracy':>10}" + "".join(f"{h:>8}" for h in segments) + "  samples/s"
    )
    for r in results:
        cells = "".join(f"{v:>8.3f}" for v in r.segments)
        print(f"{r.name:<{width}}{r.accuracy:>10.3f}{cells}{r.samples_per_second:>11.0f}")
    tpsgd, bp, adaptive = results
    for r in (tpsgd, adaptive):
        print(
            f"{r.name} vs {bp.name}: accuracy {r.accuracy / bp.accuracy:.3f}x, "
            f"speed {r.samples_per_second / bp.samples_per_second:.2f}x"
        )
    print(
        f"(samples/s after an untimed warm-up of each model on {WARM_UP_SAMPLES} samples: "
        "start-up excluded)"
    )
    repairs = ", ".join(f"{i} ({action})" for i, action in adaptive.actions) or "none"
    print(f"adaptor repaired at samples {repairs} (triangles on the plot)")
    if plot:
        print(f"plot: {plot}")
