"""Drift recovery: what each way of reacting to a detected drift buys, and what it costs.

Streams (prequential: predict, then learn, one sample at a time):

- ``digits``: scikit-learn digits (8x8), rotated 90 degrees at 1/3 (covariate shift), labels
  permuted at 2/3 (concept shift).
- ``mnist``: MNIST downsampled to 14x14, the same two shifts (as in DESIGN's calibration).
- ``swap``: digits with two label permutations, at 1/3 and 2/3 (concept shifts only).
- ``elec2``: Elec2 in its own order (real drift, no planted shift).
- ``elec2_window``: the same with 5 more features, each non-period feature minus its mean over
  the 48 previous samples (one day; past inputs only, computed causally). Elec2's label says
  whether the NSW price is above its moving average, so these features nearly decide it.

Networks (``--arch``): ``mlp``, a ``TPSGDClassifier`` (hidden (64, 64); (128, 128) on MNIST),
on every stream; ``cnn``, a ``TPSGDImageClassifier`` (the paper's Table 3 net: two Conv2d
16@kxk and a linear readout, k = 3 on digits, 5 on MNIST 14x14), on the image streams only:
there the convolutions are the encoder and the readout the adaptor, and ``scratch`` and
``finetune`` re-train the convolutions too.

Contenders, all on the same ``StandardScaler() | network``:

- ``none``: keep learning online, no detector.
- ``river_retrain``: river's ``drift.DriftRetrainingClassifier`` (DDM; a fresh model trained in
  the background from the warning, swapped in at the drift).
- ``scratch``: on a drift, re-initialise the whole network and re-train it on the samples after
  the cut (ADWIN; ``DriftAdaptiveClassifier`` with every layer as the adaptor).
- ``finetune``: the same, without re-initialising (full-network fine-tuning).
- ``adaptor_plain``: re-initialise and re-train the output layer only (encoder frozen for the
  re-training, then learning on: ``freeze_encoder=False``), hidden layers learn with tpSGD
  (``--rule``, by default ``tpsgd_head``, the classifier's default).
- ``adaptor_frozen``: ``adaptor_plain`` with ``freeze_encoder=True`` (after the first
  adaptation only the output layer learns).
- ``adaptor_tpsgd``: ``adaptor_plain`` with ``remap_labels=True`` (a label permutation is
  remapped instead of re-trained), ``refits=3`` (the output layer re-trained again, from its
  current weights, at 2, 4 and 8 times the samples of the adaptation, each at about the same
  cost) and the library's ``freeze_encoder=None`` (frozen after the first adaptation on the
  CNN, learning on for the MLP).
- ``adaptor_race``: ``adaptor_plain`` with the adaptor's depth raced at each drift (1-3 layers).
- ``adaptor_bp``: ``adaptor_tpsgd`` with ``rule="bp"``.
- ``adaptor_defaults``: ``adaptor_tpsgd`` without refits: the library's defaults, with the
  benchmark's detector, passes, ``min_samples`` and ``refine_cut``; every repair a single
  re-training of the output layer, or a remap.
- on Elec2 also river's ``forest.ARFClassifier`` and ``tree.HoeffdingAdaptiveTreeClassifier``.

Every ``DriftAdaptiveClassifier`` contender uses ADWIN with ``refine_cut=True`` (the cut moved
to the change point of the error after ADWIN's cut). The networks update every 32 samples on
the image streams and after every sample on Elec2 (``batch_size=1``: its regime changes within
tens of samples; ``--batch-size`` sets one size for all streams).

Reported per stream and contender (mean over seeds): accuracy over the 500 and 2,000 samples
after each shift, recovery time (samples until the 200-sample accuracy regains 95 % of its
pre-shift value), detection delay, false alarms (detections matched to no shift, repeated
detections of one shift included), and per adaptation its seconds, multiply-adds (and their
ratio to a full re-training on the same samples), parameters re-trained and bytes held
(``DriftEvent.memory_bytes``), the scheduled re-trainings (``refits``) and the multiply-adds
of all repairs of a run together. Elec2 also gets the accuracy of the no-change baseline
(predict the previous label).

Run: ``python benchmarks/drift_recovery.py [--quick] [--seeds 0 1 2] [--data DIR] [--arch cnn]``.
Writes ``drift_recovery.json`` (``drift_recovery_cnn.json`` with ``--arch cnn``) and one PNG
per stream (seed 0) beside it, ``drift_recovery[_cnn]_STREAM.png``: into ``benchmarks/results/``
with ``--record``, else into a scratch folder (see ``_common.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from river import drift, forest, preprocessing, tree
from river.drift import ADWIN
from river.drift.binary import DDM

from tpsgd_stream.cli.plotting import plot_stream_accuracy
from tpsgd_stream.datasets import load_elec2, load_mnist
from tpsgd_stream.drift import DriftAdaptiveClassifier, Shift, ShiftStream, digits_shift_stream
from tpsgd_stream.drift.metrics import accuracy_after, detection_report, recovery_time
from tpsgd_stream.models import TPSGDClassifier, TPSGDImageClassifier

sys.path.insert(0, str(Path(__file__).parent))
from _common import (  # noqa: E402  (a sibling script)
    add_output_arguments,
    finish,
    output_path,
    run_header,
    without_data,
    write_results,
)

RESULTS = Path(__file__).resolve().parent / "results"
CONTENDERS = (
    "none",
    "river_retrain",
    "scratch",
    "finetune",
    "adaptor_plain",
    "adaptor_frozen",
    "adaptor_tpsgd",
    "adaptor_race",
    "adaptor_bp",
    "adaptor_defaults",
)
WINDOW_CONTENDERS = ("none", "finetune", "adaptor_tpsgd", "adaptor_bp")  # on elec2_window
STREAMS = ("digits", "swap", "mnist", "elec2", "elec2_window")
IMAGE_STREAMS = ("digits", "swap", "mnist")


def cnn(name: str) -> dict:
    """The paper's Table 3 net (two Conv2d 16@kxk, a linear readout) for an image stream:
    k = 3 on 8x8 digits, 5 on 14x14 MNIST."""
    side, kernel = (14, 5) if name == "mnist" else (8, 3)
    return {"image_shape": (side, side), "channels": (16, 16), "kernel_size": kernel}


# ----------------------------------------------------------------------------- streams
def mnist14(data) -> tuple[np.ndarray, np.ndarray]:
    X, y, _, _ = load_mnist(data)
    X = X.reshape(len(X), 14, 2, 14, 2).astype(np.float32).mean((2, 4)) / 255.0
    return ((X - X.mean()) / X.std()).reshape(len(X), -1), y


def elec2_window(X: np.ndarray, n: int = 48) -> np.ndarray:
    """``X`` and, for each column but the first (the period), its value minus its mean over
    the ``n`` previous rows (the first row: 0); row ``t`` uses rows ``< t`` and ``t`` only.

    Examples
    --------
    >>> elec2_window(np.array([[0.0, 1.0], [0.5, 3.0], [1.0, 2.0]]), n=1)[:, 2].tolist()
    [0.0, 2.0, -1.0]
    """
    sums = np.vstack([np.zeros((1, X.shape[1])), np.cumsum(X, axis=0)])
    rows = np.arange(len(X))
    low = np.maximum(rows - n, 0)
    mean = (sums[rows] - sums[low]) / np.maximum(rows - low, 1)[:, None]
    mean[0] = X[0]
    return np.hstack([X, X[:, 1:] - mean[:, 1:]]).astype(np.float32)


def make_streams(args, seed: int) -> dict:
    """name -> (ShiftStream, shift kinds, hidden sizes); absent data sets are skipped."""
    n_digits = 6000 if args.quick else 9000
    n_mnist = 9000 if args.quick else 30000
    rotate_swap = lambda n: [Shift("rotate", n // 3), Shift("label_swap", 2 * n // 3)]  # noqa: E731
    streams = {
        "digits": (digits_shift_stream(rotate_swap(n_digits), n_samples=n_digits, seed=seed),),
        "swap": (
            digits_shift_stream(
                [Shift("label_swap", n_digits // 3), Shift("label_swap", 2 * n_digits // 3)],
                n_samples=n_digits,
                seed=seed,
            ),
        ),
    }
    try:
        X, y = mnist14(args.data)
        stream = ShiftStream(
            X[:20000],
            y[:20000],
            rotate_swap(n_mnist),
            n_samples=n_mnist,
            image_shape=(14, 14),
            seed=seed,
        )
        streams["mnist"] = (stream,)
    except FileNotFoundError as err:
        print(f"skipping mnist: {err}", file=sys.stderr)
    try:
        load_elec2(args.data)
        X_train, y_train, X_test, y_test = load_elec2(args.data)
        X, y = np.concatenate([X_train, X_test]), np.concatenate([y_train, y_test])
        n = 15000 if args.quick else len(X)
        streams["elec2"] = (ShiftStream(X[:n], y[:n], (), order="original"),)
        window = elec2_window(X[:n])
        streams["elec2_window"] = (ShiftStream(window, y[:n], (), order="original"),)
    except FileNotFoundError as err:
        print(f"skipping elec2: {err}", file=sys.stderr)
    return {name: s[0] for name, s in streams.items() if name in args.streams}


# --------------------------------------------------------------------------- contenders
def make_model(
    name: str,
    network: dict,
    seed: int,
    passes: int = 3,
    min_samples: int = 100,
    batch_size: int = 32,
    rule: str = "tpsgd_head",
):
    """Contender ``name`` on the network ``network`` (``hidden_layer_sizes`` for an MLP;
    ``image_shape``, ``kernel_size`` and ``channels`` for a CNN)."""
    estimator = TPSGDImageClassifier if "image_shape" in network else TPSGDClassifier

    def net(rule=rule):
        return estimator(**network, rule=rule, lr=1e-2, batch_size=batch_size, seed=seed)

    depth = net().n_trainable_layers
    adaptive = dict(
        detector=ADWIN(),
        passes=passes,
        min_samples=min_samples,
        refine_cut=True,
        remap_labels=False,
        freeze_encoder=False,
        seed=seed,
    )
    # (d) and (e): the library's defaults (freeze_encoder=None: frozen on a CNN, not on an MLP)
    ours = adaptive | dict(remap_labels=True, refits=3, freeze_encoder=None)
    return {
        "none": lambda: net(),
        "river_retrain": lambda: drift.DriftRetrainingClassifier(net(), drift_detector=DDM()),
        "scratch": lambda: DriftAdaptiveClassifier(net(), adaptor_layers=depth, **adaptive),
        "finetune": lambda: DriftAdaptiveClassifier(
            net(), adaptor_layers=depth, reinitialise=False, **adaptive
        ),
        "adaptor_plain": lambda: DriftAdaptiveClassifier(net(), **adaptive),
        "adaptor_frozen": lambda: DriftAdaptiveClassifier(
            net(), **adaptive | dict(freeze_encoder=True)
        ),
        "adaptor_tpsgd": lambda: DriftAdaptiveClassifier(net(), **ours),
        "adaptor_race": lambda: DriftAdaptiveClassifier(net(), adaptor_layers="race", **adaptive),
        "adaptor_bp": lambda: DriftAdaptiveClassifier(net("bp"), **ours),
        # (d) without refits: the library's defaults but for the benchmark's detector settings
        "adaptor_defaults": lambda: DriftAdaptiveClassifier(net(), **ours | dict(refits=0)),
        "arf": lambda: forest.ARFClassifier(seed=seed),
        "hat": lambda: tree.HoeffdingAdaptiveTreeClassifier(seed=seed),
    }[name]()


def run_one(samples, name: str, network: dict, seed: int, **options) -> dict:
    """Prequential run of one contender; returns its 0/1 correctness, detections, events."""
    torch.manual_seed(seed)  # nothing here should use it; a guard against hidden randomness
    model = make_model(name, network, seed, **options)
    scaled = name not in ("arf", "hat")
    pipeline = preprocessing.StandardScaler() | model if scaled else model
    correct, detections = [], []
    river_wrapper = isinstance(model, drift.DriftRetrainingClassifier)
    start = time.perf_counter()
    for i, (x, y) in enumerate(samples):
        correct.append(pipeline.predict_one(x) == y)
        pipeline.learn_one(x, y)
        if river_wrapper and model.drift_detector.drift_detected:
            detections.append(i)
    seconds = time.perf_counter() - start
    events = getattr(model, "drift_events", [])
    if events:
        detections = [e.index for e in events if e.action not in ("ignored", "refit")]
    adaptations = [e for e in events if e.action in ("adapt", "swap", "remap", "refit")]
    return {
        "correct": np.array(correct, dtype=np.int8),
        "detections": detections,
        "seconds": seconds,
        "adaptations": [
            {
                "index": e.index,
                "action": e.action,
                "n_samples": e.n_samples,
                "seconds": e.seconds,
                "multiply_adds": e.multiply_adds,
                "full_multiply_adds": e.full_multiply_adds,
                "memory_bytes": e.memory_bytes,
                "parameters": e.parameters,
                "adaptor_layers": e.adaptor_layers,
                "race": {str(k): v for k, v in e.race.items()},
            }
            for e in adaptations
        ],
    }


def summarise(run: dict, shifts: list[int]) -> dict:
    correct = run["correct"]
    out = {"accuracy": float(correct.mean()), "stream_seconds": run["seconds"]}
    if shifts:
        report = detection_report(run["detections"], shifts)
        out |= {
            "after_500": accuracy_after(correct, shifts, n=500),
            "after_2000": accuracy_after(correct, shifts, n=2000),
            "recovery": recovery_time(correct, shifts),
            "delays": report.delays,
            "false_alarms": report.false_alarms,
        }
    else:
        out["detections"] = len(run["detections"])
    adaptations = run["adaptations"]
    out["adaptations"] = sum(a["action"] != "refit" for a in adaptations)
    out["refits"] = sum(a["action"] == "refit" for a in adaptations)
    out["remaps"] = sum(a["action"] == "remap" for a in adaptations)
    out["total_multiply_adds"] = sum(a["multiply_adds"] for a in adaptations)
    out["actions"] = [a["action"] for a in adaptations]
    out["adaptor_layers"] = [a["adaptor_layers"] for a in adaptations]
    trained = [a for a in adaptations if a["full_multiply_adds"]]  # remaps train nothing
    mean = lambda key: _mean([a[key] for a in trained])  # noqa: E731
    ratio = lambda a: a["multiply_adds"] / a["full_multiply_adds"]  # noqa: E731
    out |= {
        "adapt_seconds": mean("seconds"),
        "adapt_multiply_adds": mean("multiply_adds"),
        "adapt_vs_full": _mean([ratio(a) for a in trained]),
        # the repairs a detection triggered (re-trainings, swaps), without the scheduled refits
        "detection_vs_full": _mean([ratio(a) for a in trained if a["action"] != "refit"]),
        "adapt_parameters": mean("parameters"),
        "adapt_memory_bytes": mean("memory_bytes"),
    }
    return out


def average(summaries: list[dict]) -> dict:
    """Mean over seeds of every number (elementwise for lists; None-aware)."""
    out = {}
    for key, value in summaries[0].items():
        values = [s.get(key) for s in summaries]
        if isinstance(value, list) and key not in ("adaptor_layers", "actions"):
            columns = list(zip(*values))
            out[key] = [_mean(c) for c in columns]
        elif value is None or isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = _mean(values)
        else:
            out[key] = values
    return out


def _mean(values):
    numbers = [v for v in values if v is not None]
    return float(np.mean(numbers)) if numbers else None


# ------------------------------------------------------------------------------- main
def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter streams (CI / smoke)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data", default=os.environ.get("TPSGD_DATA"), help="data folder")
    parser.add_argument("--streams", nargs="+", default=list(STREAMS))
    parser.add_argument("--contenders", nargs="+", default=list(CONTENDERS))
    parser.add_argument("--passes", type=int, default=3, help="re-training passes")
    parser.add_argument("--min-samples", type=int, default=100, help="new samples to wait for")
    parser.add_argument("--rule", default="tpsgd_head", help="hidden layers (not adaptor_bp)")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="of every stream (default: 32; Elec2 1)"
    )
    parser.add_argument(
        "--arch",
        default="mlp",
        choices=["mlp", "cnn"],
        help="the network: the MLP, or (image streams only) the paper's Table 3 CNN",
    )
    add_output_arguments(parser, "drift_recovery[_cnn].json")
    parser.add_argument("--no-plots", action="store_true", help="write the JSON only")
    parser.add_argument(
        "--tables-from",
        metavar="JSON",
        nargs="+",
        help="print the tables of results files (a later file's streams, and its contenders "
        "on the streams of an earlier file, join them), run nothing",
    )
    args = parser.parse_args(argv)
    if args.tables_from:
        results, *others = (json.loads(Path(path).read_text()) for path in args.tables_from)
        for other in others:
            for name, entry in other["streams"].items():
                mean = results["streams"].setdefault(name, entry)["mean"]
                mean |= {c: m for c, m in entry["mean"].items() if c not in mean}
        print(markdown_tables(results))
        return {}
    suffix = "_cnn" if args.arch == "cnn" else ""
    args.out = str(output_path(args, f"drift_recovery{suffix}.json"))
    torch.set_num_threads(1)
    plot_prefix = "drift_recovery_cnn" if args.arch == "cnn" else "drift_recovery"
    networks = {name: {"hidden_layer_sizes": (64, 64)} for name in STREAMS}
    networks["mnist"] = {"hidden_layer_sizes": (128, 128)}
    if args.arch == "cnn":
        networks = {name: cnn(name) for name in IMAGE_STREAMS}
        args.streams = [name for name in args.streams if name in IMAGE_STREAMS]
    batch = {name: 1 if name.startswith("elec2") else 32 for name in networks}
    if args.batch_size is not None:
        batch = dict.fromkeys(networks, args.batch_size)
    results = {
        **run_header("drift_recovery.py", argv),
        "seeds": args.seeds,
        "rule": args.rule,
        "arch": args.arch,
        "streams": {},
    }
    for seed in args.seeds:
        for name, stream in make_streams(args, seed).items():
            samples = list(stream)
            shifts = [s.position for s in stream.shifts]
            entry = results["streams"].setdefault(
                name,
                {
                    "n": len(samples),
                    "shifts": shifts,
                    "kinds": [s.kind for s in stream.shifts],
                    "network": networks[name],
                    "batch_size": batch[name],
                    "runs": {},
                },
            )
            contenders = list(args.contenders)
            if name == "elec2_window":
                contenders = [c for c in contenders if c in WINDOW_CONTENDERS]
            if name.startswith("elec2"):
                labels = np.array([y for _, y in samples])
                entry["no_change"] = float((labels[1:] == labels[:-1]).mean())
                contenders += ["arf", "hat"]
            curves, marks = {}, {}
            for contender in contenders:
                options = dict(
                    passes=args.passes,
                    min_samples=args.min_samples,
                    batch_size=batch[name],
                    rule=args.rule,
                )
                run = run_one(samples, contender, networks[name], seed, **options)
                summary = summarise(run, shifts)
                entry["runs"].setdefault(contender, []).append(summary)
                print(f"seed {seed} {name:7s} {contender:14s} {_line(summary)}", flush=True)
                curves[contender], marks[contender] = run["correct"], run["detections"]
            if seed == args.seeds[0] and not args.no_plots:
                plot_stream_accuracy(
                    curves,
                    Path(args.out).with_name(f"{plot_prefix}_{name}.png"),
                    shifts=shifts,
                    detections=marks,
                    title=f"{name}: prequential accuracy (seed {seed})",
                )
    if not results["streams"]:
        without_data("drift_recovery.py", "none of the streams asked for is available (see above)")
    for entry in results["streams"].values():
        entry["mean"] = {c: average(runs) for c, runs in entry["runs"].items()}
    write_results(results, args.out)
    finish(args)
    return results


def markdown_tables(results: dict) -> str:
    """Per-stream tables with every column (means over the seeds) from a results JSON."""
    blocks = []
    for name, entry in results["streams"].items():
        network = entry.get("network") or {"hidden_layer_sizes": entry["hidden"]}
        shape = ", ".join(
            f"{k} {tuple(v) if isinstance(v, list) else v}" for k, v in network.items()
        )
        shifts = ", ".join(f"{k} at {s}" for k, s in zip(entry["kinds"], entry["shifts"]))
        title = f"**{name}** ({entry['n']} samples, {shape}, batch {entry['batch_size']}, "
        title += f"shifts {shifts or 'none planted'}"
        if "no_change" in entry:
            title += f"; no-change baseline {100 * entry['no_change']:.1f} %"
        columns = ["contender", "acc %"]
        if entry["shifts"]:
            columns += ["500 after %", "2,000 after %", "recovery", "delay", "false alarms"]
        else:
            columns += ["detections"]
        columns += ["adaptations (remaps) + refits", "s / re-training", "MACs / re-training"]
        columns += ["vs full", "per detection vs full", "params", "KiB held", "MACs per run"]
        rows = [f"| {' | '.join(columns)} |", "|" + "---|" * len(columns)]
        for contender, m in entry["mean"].items():
            cells = [contender, f"{100 * m['accuracy']:.1f}"]
            if entry["shifts"]:
                cells += [_pair(m["after_500"], 100, ".1f"), _pair(m["after_2000"], 100, ".1f")]
                cells += [_pair(m["recovery"], 1, ".0f"), _pair(m["delays"], 1, ".0f")]
                cells += [f"{m['false_alarms']:.1f}"]
            else:
                cells += [f"{m['detections']:.1f}"]
            if m["adapt_seconds"] is None and not m["remaps"]:
                cells += ["-"] * 8
            else:
                cells += [f"{m['adaptations']:.1f} ({m['remaps']:.1f}) + {m['refits']:.1f}"]
                cells += [_number(m["adapt_seconds"], ".3f"), _si(m["adapt_multiply_adds"])]
                cells += [_number(m["adapt_vs_full"], ".2f", "x")]
                cells += [_number(m.get("detection_vs_full"), ".2f", "x")]
                cells += [_number(m["adapt_parameters"], ",.0f")]
                memory = m.get("adapt_memory_bytes")
                cells += [_number(None if memory is None else memory / 1024, ",.0f")]
                cells += [_si(m["total_multiply_adds"])]
            rows.append(f"| {' | '.join(cells)} |")
        blocks.append(title + ")\n\n" + "\n".join(rows))
    return "\n\n".join(blocks)


def _pair(values: list, scale: float, spec: str) -> str:
    return " / ".join("-" if v is None else format(scale * v, spec) for v in values)


def _number(value, spec: str, unit: str = "") -> str:
    return "-" if value is None else format(value, spec) + unit


def _si(value) -> str:
    """Multiply-adds as ``64.1 M`` or ``3.33 G``."""
    if value is None:
        return "-"
    return f"{value / 1e9:.2f} G" if value >= 1e9 else f"{value / 1e6:.1f} M"


def _line(s: dict) -> str:
    text = f"acc {s['accuracy']:.3f}"
    if "after_500" in s:
        text += f" after500 {[round(a, 3) for a in s['after_500']]}"
        text += f" after2000 {[round(a, 3) for a in s['after_2000']]} delays {s['delays']}"
        text += f" false {s['false_alarms']} recovery {s['recovery']}"
    if s["adapt_seconds"] is not None:
        text += f" adapt x{s['adaptations']} (+{s['refits']} refits) {s['adapt_seconds']:.3f}s"
        text += f" {s['adapt_vs_full']:.2f}xfull depth {s['adaptor_layers']}"
    if s["remaps"]:
        text += f" remaps {s['remaps']}"
    return text + f" ({s['stream_seconds']:.0f}s)"


if __name__ == "__main__":
    main()
