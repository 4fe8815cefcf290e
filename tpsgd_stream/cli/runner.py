"""``tpsgd-stream run``: train and evaluate an estimator prequentially on a user's file.

A CSV file (one row a sample, a header naming the columns; its separator is sniffed unless
given) or an NPZ archive (``X``/``y``, or ``X_train``/``y_train`` followed by
``X_test``/``y_test``) is read in order as a stream. Each sample is predicted, then learned.
The metrics go to a JSON file, the windowed accuracy over the stream to a PNG.

The task is classification unless the target is float (then regression) or ``task`` says
otherwise. A target of whole numbers that looks like a quantity rather than labels is refused
under ``task="auto"``: more than :data:`MAX_AUTO_CLASSES` distinct values, and either fewer than
:data:`MIN_SAMPLES_PER_CLASS` samples per value on average or values that leave gaps in their
range (class codes are usually consecutive, ``0..k-1`` or ``1..k``). The user then says which
task is meant.

The speed reported excludes start-up: an untimed copy of the model first learns from the
first samples (:func:`warm_up_samples` of them), so that torch's first-call costs (thread
pools, kernel selection) are not counted.
"""

from __future__ import annotations

import csv
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
from .output import output_folder, short_path
from .plotting import plot_stream_accuracy

__all__ = [
    "DETECTORS",
    "NON_FINITE",
    "StreamFileError",
    "load_table",
    "run_file",
    "sniff_separator",
    "warm_up_samples",
]

MAX_PARAMETERS = 50_000_000  # weights of a network a run may ask for (~0.6 GB with Adam's state)
MAX_AUTO_CLASSES = 20  # a whole-number target with more distinct values may be a quantity
MIN_SAMPLES_PER_CLASS = 5  # ... when its values are rarer than this on average
SEPARATORS = ",;\t|"  # what sniffing may find
NON_FINITE = ("raise", "zero")
"""How ``run`` treats empty or non-finite feature cells: stop with an error naming them, or
leave them out of their sample (the estimator reads a missing feature as 0, the scaled mean)."""

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


def sniff_separator(path: str | os.PathLike) -> str:
    r"""The column separator of a CSV file, guessed from its start among ``, ; tab |``.

    A file whose start gives no clear answer (a single column, say) is read as comma-separated.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
    ...     _ = f.write("a;b;y\n1,5;2;0\n3;4,5;1\n")
    >>> sniff_separator(f.name)
    ';'
    >>> os.remove(f.name)
    """
    with open(path, newline="", errors="replace") as stream:
        sample = stream.read(64 * 1024)
    try:
        return csv.Sniffer().sniff(sample, delimiters=SEPARATORS).delimiter
    except csv.Error:
        return ","


def load_table(
    path: str | os.PathLike, target: str | None = None, *, sep: str | None = None
) -> tuple[pd.DataFrame, pd.Series]:
    """Features and target of a CSV or NPZ file, in file order.

    ``target`` names the CSV column to predict (default: the last column); NPZ archives hold
    their target in ``y`` (or ``y_train``/``y_test``). ``sep`` separates a CSV file's columns
    (``None``: :func:`sniff_separator`; the one used is in the features' ``attrs["separator"]``);
    a file not separated by commas whose features only read as numbers with decimal commas
    (``1,5``) is read so.
    """
    path = Path(path)
    try:
        found = path.is_file()
    except OSError as err:  # e.g. a name too long for the file system
        raise StreamFileError(f"cannot read {short_path(path)}: {err.strerror}") from None
    if not found:
        raise StreamFileError(f"no such file: {short_path(path)}")
    try:
        if path.suffix == ".npz":
            return _load_npz(path)
        sep = sniff_separator(path) if sep is None else sep
        frame = pd.read_csv(path, sep=sep)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise StreamFileError(f"cannot read {path}: {err}") from None
    if frame.empty or frame.shape[1] < 2:
        raise StreamFileError(
            f"{path} needs a header and at least one feature and a target; read with the "
            f"separator {sep!r} it has {frame.shape[1]} column(s): give the right one with "
            f"--sep (e.g. --sep ';')"
        )
    target = frame.columns[-1] if target is None else target
    if target not in frame.columns:
        raise StreamFileError(f"no column {target!r} in {path}; columns: {list(frame.columns)}")
    features = frame.drop(columns=[target])
    non_numeric = _non_numeric(features)
    if non_numeric and sep != ",":  # ";"-separated files often write decimal commas
        frame = pd.read_csv(path, sep=sep, decimal=",")
        if not _non_numeric(frame.drop(columns=[target])):
            features, non_numeric = frame.drop(columns=[target]), []
    if non_numeric:
        raise StreamFileError(f"non-numeric feature columns in {path}: {non_numeric}")
    features.attrs["separator"] = sep
    return features, frame[target]


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


def _non_numeric(frame: pd.DataFrame) -> list:
    return [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]


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


def warm_up_samples(n_samples: int, batch_size: int) -> int:
    """How many samples the untimed warm-up copy learns from: 200, or 4 minibatches if more,
    at most the whole stream.

    Examples
    --------
    >>> warm_up_samples(10_000, 32), warm_up_samples(10_000, 100), warm_up_samples(50, 32)
    (200, 400, 50)
    """
    return min(n_samples, max(200, 4 * batch_size))


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
    out: str | os.PathLike | None = None,
    sep: str | None = None,
    non_finite: str = "raise",
    window: int = 500,
    progress: bool = False,
    detector: str | None = None,
) -> dict:
    """Prequential run over a file; writes ``metrics.json`` and ``accuracy.png`` into ``out``.

    Parameters
    ----------
    path
        The CSV or NPZ file (see the module's docstring).
    target
        The CSV column to predict (default: the last one).
    task
        ``"auto"``, ``"classification"`` or ``"regression"``.
    out
        The folder for the outputs; ``None`` makes a temporary one. It is made only once the
        file has been read and checked.
    sep
        The CSV separator; ``None`` sniffs it (:func:`sniff_separator`) and reports it.
    non_finite
        One of :data:`NON_FINITE`.
    progress
        Show a tqdm bar with the running metric.
    detector
        A name from :data:`DETECTORS`: the classifier is wrapped in a
        :class:`~tpsgd_stream.drift.DriftAdaptiveClassifier` watched by that river detector.

    Returns
    -------
    dict
        What ``metrics.json`` holds, ``out`` (the folder) included; ``samples_per_second``
        excludes start-up (see the module's docstring).
    """
    if non_finite not in NON_FINITE:
        raise StreamFileError(f"non_finite must be one of {NON_FINITE}, got {non_finite!r}")
    X, y = load_table(path, target, sep=sep)
    _check_target(y, task)
    task = _resolve_task(y, task)
    _check_features(X, non_finite)
    _check_size(len(X), X.shape[1], hidden_layer_sizes, batch_size, y.nunique())
    kwargs = dict(
        hidden_layer_sizes=hidden_layer_sizes,
        batch_size=batch_size,
        seed=seed,
        non_finite=non_finite,
    )
    kwargs.update({k: v for k, v in (("rule", rule), ("lr", lr)) if v is not None})
    estimator = TPSGDClassifier(**kwargs) if task == "classification" else TPSGDRegressor(**kwargs)
    learner = estimator
    if detector is not None:
        if task != "classification":
            raise StreamFileError("a drift detector needs a classification task")
        learner = DriftAdaptiveClassifier(estimator, detector=_detector(detector), seed=seed)
    model = preprocessing.StandardScaler() | learner
    folder = output_folder(out, "run")  # before the run, not after it
    records = list(zip(_records(X, non_finite), y.tolist()))
    warm_up = warm_up_samples(len(records), batch_size)
    _learn(model.clone(), records[:warm_up])  # untimed: torch's start-up lands here
    metric = metrics.Accuracy() if task == "classification" else metrics.MAE()
    scores, seconds = _prequential(model, records, metric, task, progress)
    result = {
        "file": str(path),
        "separator": X.attrs.get("separator"),
        "task": task,
        "rule": estimator.rule,
        "hidden_layer_sizes": list(hidden_layer_sizes),
        "batch_size": batch_size,
        "non_finite": non_finite,
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
        "warm_up_samples": warm_up,
    }
    (folder / "metrics.json").write_text(json.dumps(result, indent=2))
    if task == "classification":
        plot_stream_accuracy(
            {estimator.rule: scores},
            folder / "accuracy.png",
            window=min(window, len(X)),
            detections={estimator.rule: result["adaptations"]},
        )
    return {**result, "out": str(folder)}


def _check_target(y: pd.Series, task: str) -> None:
    """Refuse a target with missing values, or a text one for regression."""
    missing = np.flatnonzero(y.isna().to_numpy())
    if len(missing):
        raise StreamFileError(
            f"the target column has {len(missing)} missing value(s), at rows "
            f"{missing[:10].tolist()}; every sample needs a target: drop or fill them first"
        )
    if task == "regression" and not _is_numeric(y):
        examples = ", ".join(repr(v) for v in y.drop_duplicates().head(3))
        raise StreamFileError(
            f"--task regression needs a numeric target, but {_name(y)} holds text (e.g. "
            f"{examples}); pick a numeric column with --target, or use --task classification"
        )


def _is_numeric(y: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y)


def _name(y: pd.Series) -> str:
    return "the target" if y.name is None else f"the target column {y.name!r}"


def _resolve_task(y: pd.Series, task: str) -> str:
    """``task``, or under ``"auto"`` regression for a float target, else classification; a
    whole-number target that looks like a quantity is refused (see the module's docstring)."""
    if task != "auto":
        return task
    if pd.api.types.is_float_dtype(y):
        return "regression"
    if pd.api.types.is_integer_dtype(y) and _looks_like_a_quantity(y):
        values = y.nunique()
        raise StreamFileError(
            f"{_name(y)} holds {values} distinct whole numbers in {len(y)} rows "
            f"({y.min()} to {y.max()}): a quantity rather than class labels? Pass --task "
            f"regression to predict it as a number, or --task classification to treat each "
            f"value as a class"
        )
    return "classification"


def _looks_like_a_quantity(y: pd.Series) -> bool:
    """More than MAX_AUTO_CLASSES distinct values, rare on average or with gaps in their range.

    Examples
    --------
    >>> _looks_like_a_quantity(pd.Series(list(range(52)) * 6))  # 52 classes, 6 samples each
    False
    >>> _looks_like_a_quantity(pd.Series(range(40, 340, 3)))  # weights: rare, with gaps
    True
    """
    values = y.nunique()
    if values <= MAX_AUTO_CLASSES:
        return False
    consecutive = int(y.max()) - int(y.min()) + 1 == values
    return len(y) / values < MIN_SAMPLES_PER_CLASS or not consecutive


def _check_features(X: pd.DataFrame, non_finite: str) -> None:
    """Under ``non_finite="raise"``, refuse empty or non-finite cells, naming their columns."""
    if non_finite != "raise":
        return
    bad = ~np.isfinite(X.to_numpy(dtype=np.float64))
    if bad.any():
        rows, columns = np.nonzero(bad)
        names = list(dict.fromkeys(X.columns[columns].tolist()))
        raise StreamFileError(
            f"{int(bad.sum())} empty or non-finite feature cell(s), in column(s) {names[:10]}, "
            f"first at row {int(rows[0])}; pass --non-finite zero to leave them out of their "
            f"samples (read as 0, the scaled mean), or fill them first"
        )


def _records(X: pd.DataFrame, non_finite: str) -> list[dict]:
    """The rows as dicts; under ``non_finite="zero"`` without their empty or non-finite cells
    (the scaler skips a missing feature, the estimator reads it as 0)."""
    rows = X.to_dict(orient="records")
    if non_finite == "zero" and not np.isfinite(X.to_numpy(dtype=np.float64)).all():
        return [{k: v for k, v in row.items() if np.isfinite(v)} for row in rows]
    return rows


def _learn(model, records: list[tuple[dict, object]]) -> None:
    for x, label in records:
        model.predict_one(x)
        model.learn_one(x, label)


def _prequential(model, records, metric, task: str, progress: bool) -> tuple[np.ndarray, float]:
    """Predict then learn on each record; the per-sample scores and the seconds it took."""
    scores = np.zeros(len(records))
    bar = progress_bar(
        records, total=len(records), disable=not progress, unit=" samples", desc="run"
    )
    start = time.perf_counter()
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
    return scores, time.perf_counter() - start
