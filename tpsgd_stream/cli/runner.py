"""``tpsgd-stream run``: train and evaluate an estimator prequentially on a user's file.

A CSV file (one row a sample, a header naming the columns) or an NPZ archive (``X``/``y``, or
``X_train``/``y_train`` followed by ``X_test``/``y_test``) is read in order as a stream. Each
sample is predicted, then learned. The metrics go to a JSON file, the windowed accuracy (or
absolute error) over the stream to a PNG.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from river import metrics, preprocessing

from .._optional import progress_bar
from ..drift import DriftAdaptiveClassifier
from ..models import TPSGDClassifier, TPSGDRegressor
from .plotting import plot_stream_accuracy

__all__ = ["DETECTORS", "load_table", "run_file", "StreamFileError"]

MAX_PARAMETERS = 50_000_000  # weights of a network a run may ask for (~0.6 GB with Adam's state)

DETECTORS = ("adwin", "ddm", "eddm", "fhddm", "page_hinkley", "kswin")
"""Detector names for ``detector=``: the classifier is wrapped in a DriftAdaptiveClassifier."""


def _detector(name: str):
    from river.drift import ADWIN, KSWIN, PageHinkley
    from river.drift.binary import DDM, EDDM, FHDDM

    classes = (ADWIN, DDM, EDDM, FHDDM, PageHinkley, KSWIN)
    return dict(zip(DETECTORS, classes))[name]()


class StreamFileError(ValueError):
    """The stream file cannot be read or used (missing, malformed, no such column).

    Examples
    --------
    >>> try:
    ...     load_table("/no/such/file.csv")
    ... except StreamFileError as err:
    ...     print(err)
    no such file: /no/such/file.csv
    """


def load_table(
    path: str | os.PathLike, target: str | None = None
) -> tuple[pd.DataFrame, pd.Series]:
    """Features and target of a CSV or NPZ file, in file order.

    ``target`` names the CSV column to predict (default: the last column); NPZ archives hold
    their target in ``y`` (or ``y_train``/``y_test``).
    """
    path = Path(path)
    try:
        found = path.is_file()
    except OSError as err:  # e.g. a name too long for the file system
        raise StreamFileError(f"cannot read {_short(path)}: {err.strerror}") from None
    if not found:
        raise StreamFileError(f"no such file: {_short(path)}")
    try:
        if path.suffix == ".npz":
            return _load_npz(path)
        frame = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise StreamFileError(f"cannot read {path}: {err}") from None
    if frame.empty or frame.shape[1] < 2:
        raise StreamFileError(f"{path} needs a header and at least one feature and a target")
    target = frame.columns[-1] if target is None else target
    if target not in frame.columns:
        raise StreamFileError(f"no column {target!r} in {path}; columns: {list(frame.columns)}")
    features = frame.drop(columns=[target])
    non_numeric = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if non_numeric:
        raise StreamFileError(f"non-numeric feature columns in {path}: {non_numeric}")
    return features, frame[target]


def _writable_folder(out: str | os.PathLike) -> Path:
    """``out``, made if needed and checked to be writable (a ``StreamFileError`` if not)."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".tpsgd-write-check"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise StreamFileError(f"cannot write to --out {_short(out)}: {err.strerror}") from None
    return out


def _short(path) -> str:
    text = str(path)
    return text if len(text) <= 200 else f"{text[:100]}...{text[-50:]} ({len(text)} characters)"


def _check_size(n_samples: int, n_features: int, hidden, batch_size: int, n_classes: int) -> None:
    """Refuse a run that could never update or whose network is absurdly large, up front."""
    if batch_size > n_samples:
        raise StreamFileError(
            f"--batch-size {batch_size} is larger than the file's {n_samples} samples: the "
            f"model would never update; use at most {n_samples}"
        )
    sizes = [n_features, *hidden, max(n_classes, 1)]
    weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    if weights > MAX_PARAMETERS:
        raise StreamFileError(
            f"--layers {','.join(map(str, hidden))} makes a network of {weights:,} weights "
            f"(about {weights * 12 / 1e9:.1f} GB with the optimizer's state); a run allows at "
            f"most {MAX_PARAMETERS:,}: use smaller layers"
        )


def _load_npz(path: Path) -> tuple[pd.DataFrame, pd.Series]:
    with np.load(path, allow_pickle=False) as archive:
        if "X" in archive and "y" in archive:
            X, y = archive["X"], archive["y"]
        elif "X_train" in archive and "y_train" in archive:
            parts = [("X_train", "y_train"), ("X_test", "y_test")]
            X = np.concatenate([archive[a] for a, b in parts if a in archive and b in archive])
            y = np.concatenate([archive[b] for a, b in parts if a in archive and b in archive])
        else:
            raise StreamFileError(f"{path} holds {list(archive)}; expected X and y arrays")
    X = X.reshape(len(X), -1)
    if len(X) != len(y):
        raise StreamFileError(f"{path}: X has {len(X)} rows but y has {len(y)}")
    return pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])]), pd.Series(y)


def run_file(
    path: str | os.PathLike,
    *,
    target: str | None = None,
    task: str = "auto",
    rule: str | None = None,
    hidden_layer_sizes: tuple[int, ...] = (128,),
    batch_size: int = 32,
    lr: float | None = None,
    seed: int = 0,
    out: str | os.PathLike = "tpsgd_run",
    window: int = 500,
    progress: bool = False,
    detector: str | None = None,
) -> dict:
    """Prequential run over a file; writes ``metrics.json`` and ``accuracy.png`` into ``out``.

    ``progress`` shows a tqdm bar with the running metric. ``detector`` (a name from
    :data:`DETECTORS`) wraps the classifier in a
    :class:`~tpsgd_stream.drift.DriftAdaptiveClassifier` watched by that river detector.
    """
    out = _writable_folder(out)  # before the run, not after it
    X, y = load_table(path, target)
    missing = np.flatnonzero(y.isna().to_numpy())
    if len(missing):
        raise StreamFileError(
            f"the target column has {len(missing)} missing value(s), at rows "
            f"{missing[:10].tolist()}; every sample needs a target: drop or fill them first"
        )
    if task == "auto":
        task = "regression" if pd.api.types.is_float_dtype(y) else "classification"
    _check_size(len(X), X.shape[1], hidden_layer_sizes, batch_size, y.nunique())
    kwargs = dict(hidden_layer_sizes=hidden_layer_sizes, batch_size=batch_size, seed=seed)
    kwargs.update({k: v for k, v in (("rule", rule), ("lr", lr)) if v is not None})
    estimator = TPSGDClassifier(**kwargs) if task == "classification" else TPSGDRegressor(**kwargs)
    learner = estimator
    if detector is not None:
        if task != "classification":
            raise StreamFileError("a drift detector needs a classification task")
        learner = DriftAdaptiveClassifier(estimator, detector=_detector(detector), seed=seed)
    model = preprocessing.StandardScaler() | learner
    metric = metrics.Accuracy() if task == "classification" else metrics.MAE()
    scores = np.zeros(len(X))
    start = time.perf_counter()
    records = zip(X.to_dict(orient="records"), y.tolist())
    bar = progress_bar(records, total=len(X), disable=not progress, unit=" samples", desc="run")
    for i, (x, label) in enumerate(bar):
        prediction = model.predict_one(x)
        if task == "classification":
            scores[i] = prediction == label
        else:
            prediction = 0.0 if prediction is None else prediction
            scores[i] = abs(label - prediction)
        metric.update(label, prediction)
        if progress and i % 500 == 0:
            bar.set_postfix_str(str(metric))
        model.learn_one(x, label)
    seconds = time.perf_counter() - start
    result = {
        "file": str(path),
        "task": task,
        "rule": estimator.rule,
        "hidden_layer_sizes": list(hidden_layer_sizes),
        "batch_size": batch_size,
        "detector": detector,
        "adaptations": [
            e.index
            for e in getattr(learner, "drift_events", [])
            if e.action in ("adapt", "swap", "remap")
        ],
        "n_samples": len(X),
        "metric": type(metric).__name__,
        "value": metric.get(),
        "samples_per_second": len(X) / seconds,
    }
    (out / "metrics.json").write_text(json.dumps(result, indent=2))
    if task == "classification":
        plot_stream_accuracy(
            {estimator.rule: scores},
            out / "accuracy.png",
            window=min(window, len(X)),
            detections={estimator.rule: result["adaptations"]},
        )
    return result
