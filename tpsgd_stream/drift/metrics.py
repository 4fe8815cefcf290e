"""How well a model rides out a shift: accuracy after it, recovery time, detection quality."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "accuracy_after",
    "recovery_time",
    "DetectionReport",
    "detection_report",
    "windowed",
]


def windowed(correct: Sequence[float], window: int) -> np.ndarray:
    """Accuracy over the last ``window`` samples at each point (shorter at the start).

    Examples
    --------
    >>> windowed([1, 0, 1, 1], 2).tolist()
    [1.0, 0.5, 0.5, 1.0]
    """
    correct = np.asarray(correct, dtype=float)
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}.")
    cumulative = np.concatenate([[0.0], np.cumsum(correct)])
    end = np.arange(1, len(correct) + 1)
    start = np.maximum(0, end - window)
    return (cumulative[end] - cumulative[start]) / (end - start)


def _check(correct: Sequence[float], shifts: Sequence[int]) -> np.ndarray:
    correct = np.asarray(correct, dtype=float)
    if any(not 0 <= s < len(correct) for s in shifts):
        raise ValueError(f"shift positions {list(shifts)} must lie in [0, {len(correct)}).")
    return correct


def accuracy_after(correct: Sequence[float], shifts: Sequence[int], n: int = 500) -> list[float]:
    """Prequential accuracy over the ``n`` samples after each shift (fewer at the stream's end).

    Examples
    --------
    >>> accuracy_after([1, 1, 0, 0, 1, 1], shifts=[2], n=3)
    [0.3333333333333333]
    """
    correct = _check(correct, shifts)
    return [float(correct[s : s + n].mean()) for s in shifts]


def recovery_time(
    correct: Sequence[float],
    shifts: Sequence[int],
    *,
    window: int = 200,
    level: float = 0.95,
) -> list[int | None]:
    """Post-shift samples until the windowed accuracy regains ``level`` of its pre-shift value.

    The pre-shift value is the windowed accuracy just before the shift. The window must first
    fill with post-shift samples, so a recovery takes at least ``window`` samples. ``None``
    when the stream ends (or the next shift comes) before it recovers.

    Examples
    --------
    >>> correct = [1] * 300 + [0] * 50 + [1] * 400
    >>> recovery_time(correct, [300], window=100)  # 50 errors, then 95 of the last 100 right
    [145]
    """
    correct = _check(correct, shifts)
    curve = windowed(correct, window)
    ends = [*shifts[1:], len(correct)]
    times: list[int | None] = []
    for shift, end in zip(shifts, ends):
        before = curve[shift - 1] if shift > 0 else curve[0]
        after = np.flatnonzero(curve[shift + window - 1 : end] >= level * before)
        times.append(int(after[0]) + window if len(after) else None)
    return times


@dataclass
class DetectionReport:
    """Detection delay per shift (``None``: missed) and the alarms that matched no shift.

    Examples
    --------
    >>> DetectionReport(delays=[40, None], false_alarms=1).missed
    1
    """

    delays: list[int | None]
    false_alarms: int

    @property
    def missed(self) -> int:
        return sum(d is None for d in self.delays)


def detection_report(
    detections: Sequence[int], shifts: Sequence[int], *, horizon: int = 1000
) -> DetectionReport:
    """Match each shift with the first detection within ``horizon`` samples after it.

    Detections before the first shift, or more than ``horizon`` after the last one they could
    belong to, are false alarms; a second detection of the same shift counts as one too.

    Examples
    --------
    >>> detection_report([50, 1040, 1500, 2100], shifts=[1000, 2000], horizon=300)
    DetectionReport(delays=[40, 100], false_alarms=2)
    """
    detections = sorted(int(d) for d in detections)
    delays: list[int | None] = []
    matched: set[int] = set()
    ends = [*shifts[1:], None]
    for shift, end in zip(shifts, ends):
        limit = shift + horizon if end is None else min(shift + horizon, end)
        hits = [d for d in detections if shift <= d < limit]
        delays.append(hits[0] - shift if hits else None)
        if hits:
            matched.add(hits[0])
    return DetectionReport(delays, len(detections) - len(matched))
