"""PNG plots of accuracy over a stream, with shifts and drift detections marked."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from .._optional import require
from ..drift.metrics import windowed

__all__ = ["plot_stream_accuracy", "windowed"]


def plot_stream_accuracy(
    correct: Mapping[str, Sequence[float]],
    path: str | os.PathLike,
    *,
    window: int = 200,
    shifts: Sequence[int] = (),
    detections: Mapping[str, Sequence[int]] | None = None,
    title: str = "Prequential accuracy",
) -> Path:
    """Plot each model's windowed accuracy over the stream and save it as a PNG.

    Parameters
    ----------
    correct
        Per model, 1/0 for each sample predicted right/wrong (prequentially).
    path
        Where to write the PNG (folders are created).
    window
        Samples per accuracy window.
    shifts
        Stream positions of planted shifts (dashed vertical lines).
    detections
        Per model, the positions where its drift detector fired (markers on its curve).
    """
    matplotlib = require("matplotlib", "plot", "plotting")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=110)
    for name, values in correct.items():
        curve = windowed(values, window)
        (line,) = ax.plot(curve, label=name, linewidth=1.4)
        marks = [int(i) for i in (detections or {}).get(name, ()) if 0 <= i < len(curve)]
        if marks:
            ax.plot(marks, curve[marks], "v", color=line.get_color(), markersize=7)
    for i, position in enumerate(shifts):
        ax.axvline(
            position, color="grey", linestyle="--", linewidth=1, label="shift" if i == 0 else None
        )
    ax.set_xlabel("sample")
    ax.set_ylabel(f"accuracy (last {window} samples)")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
