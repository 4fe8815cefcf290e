"""The tpSGD paper's recurrent tables (5, 7, 8) on our Elman layers, plus rules beyond the paper.

Table 5: one recurrent layer (hidden 512, batch 128, Adam) on row-wise sequential MNIST (28
steps of 28 pixels), EEG Seizure (binary labels; each 178-sample chunk as 45 steps of 4
samples, standardised) and MNIST-1D (40 steps of 1; ``--sets mnist1d_x4``: 10 steps of 4
consecutive values, beyond the paper). Table 7: two stacked layers; Table 8: one bidirectional
layer (both on row-wise MNIST). For each variant: test accuracy (by epoch), seconds per epoch
and the activation bytes one training step holds (``RecurrentNetwork.held_bytes``), all
measured in the same run as BPTT; with several ``--seeds``, the mean and sample standard
deviation of the final accuracy. A memory part times one step at several sequence lengths.

Usage::

    python benchmarks/rnn_tables.py --data ../shared/data --epochs 20      # the paper's setting
    python benchmarks/rnn_tables.py --quick                                # hidden 128, subsets
    python benchmarks/rnn_tables.py --quick --tables sweep                 # the rule sweep

Results are merged into ``rnn_tables.json`` in a scratch folder, or with ``--record`` in
``benchmarks/results/``. The recorded runs (BENCHMARKS.md, "Recurrent tables"; rnn_tables.json,
one key per ``--label``, rows saved as they finish) used ``--quick --train 20000`` (hidden 128,
3 epochs, 20k/2k samples; also with ``--seeds 0 1 2``), ``--sets mnist1d`` / ``mnist1d_x4``
with ``--hidden 128 --epochs 100 --lr 1e-3``, and ``--hidden 512`` runs on EEG (20 epochs) and
row-wise MNIST (1 epoch); MNIST-1D was also run for 60 epochs with longer credit
(``tpsgd_ce_tanh_k16`` / ``_k40``), hidden 256 and BPTT with gradient clipping
(``bp_tanh_clip``). ``BEST`` names the best local variant of the sweep.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from tpsgd_stream.datasets import load_eeg_seizure, load_mnist, load_mnist1d
from tpsgd_stream.engine.recurrent import RecurrentNetwork

sys.path.insert(0, str(Path(__file__).parent))
from _common import (  # noqa: E402  (a sibling script)
    add_output_arguments,
    finish,
    output_path,
    run_header,
    without_data,
)

BATCH = 128
SETS = ("mnist_rows", "eeg", "mnist1d", "mnist1d_x4")
PAPER = {  # the paper's Table 5 (test accuracy, %); its EEG protocol is 45-step chunks
    "mnist_rows": {"tpsgd_l1": 79.81, "drtp": 83.39, "bp": 92.53},
    "eeg": {"tpsgd_l1": 83.57, "drtp": 89.57, "bp": 94.14},
}
# name -> RecurrentNetwork keyword arguments (Adam; lr 1e-3 unless given)
VARIANTS: dict[str, dict] = {
    "bp": {"rule": "bp"},
    "drtp": {"rule": "drtp"},
    "tpsgd_l1": {"rule": "tpsgd_l1"},
    "control": {"rule": "drtp", "train_recurrent": False},
    # beyond the paper: tanh cells, higher lr, truncated local credit, a capped W_H
    "bp_tanh": {"rule": "bp", "activation": "tanh", "lr": 3e-3},
    "drtp_tanh": {"rule": "drtp", "activation": "tanh", "lr": 3e-3},
    "drtp_tanh_lr1e-3": {"rule": "drtp", "activation": "tanh"},
    "drtp_tanh_k4": {"rule": "drtp", "activation": "tanh", "lr": 3e-3, "credit_steps": 4},
    "drtp_tanh_norm": {"rule": "drtp", "activation": "tanh", "lr": 3e-3, "max_recurrent_norm": 0.5},
    "tpsgd_l1_tanh": {"rule": "tpsgd_l1", "activation": "tanh", "lr": 3e-3},
    "tpsgd_l2_tanh": {"rule": "tpsgd_l2", "activation": "tanh", "lr": 3e-3},
    "dfa_tanh": {"rule": "dfa", "activation": "tanh", "lr": 3e-3},
    "tpsgd_ce_tanh": {"rule": "tpsgd_ce", "activation": "tanh", "lr": 3e-3},
    "control_tanh": {"rule": "drtp", "activation": "tanh", "lr": 3e-3, "train_recurrent": False},
    "drtp_tanh_k8": {"rule": "drtp", "activation": "tanh", "lr": 3e-3, "credit_steps": 8},
    "dfa_tanh_k4": {"rule": "dfa", "activation": "tanh", "lr": 3e-3, "credit_steps": 4},
    "tpsgd_ce_tanh_k4": {"rule": "tpsgd_ce", "activation": "tanh", "lr": 3e-3, "credit_steps": 4},
    "tpsgd_ce_tanh_k8": {"rule": "tpsgd_ce", "activation": "tanh", "lr": 3e-3, "credit_steps": 8},
    "tpsgd_ce_tanh_k16": {"rule": "tpsgd_ce", "activation": "tanh", "lr": 3e-3, "credit_steps": 16},
    "tpsgd_ce_tanh_k40": {"rule": "tpsgd_ce", "activation": "tanh", "lr": 3e-3, "credit_steps": 40},
    # BPTT with its joint gradient norm clipped to 1 before each step (the BPTT collapses
    # recorded in BENCHMARKS.md all ran without clipping)
    "bp_tanh_clip": {"rule": "bp", "activation": "tanh", "lr": 3e-3, "clip_grad_norm": 1.0},
    "tpsgd_ce_tanh_lr1e-2": {"rule": "tpsgd_ce", "activation": "tanh", "lr": 1e-2},
    "tpsgd_ce_tanh_norm": {
        "rule": "tpsgd_ce",
        "activation": "tanh",
        "lr": 3e-3,
        "max_recurrent_norm": 0.5,
    },
    "drtp_lr3e-3": {"rule": "drtp", "lr": 3e-3},
    "drtp_norm": {"rule": "drtp", "max_recurrent_norm": 1.0},
    "drtp_k4": {"rule": "drtp", "credit_steps": 4},
    "drtp_k8": {"rule": "drtp", "credit_steps": 8},
}
# the best local variant of the sweep (see BENCHMARKS.md, "Recurrent tables")
BEST = "tpsgd_ce_tanh_k8"
TABLES = {
    "table5": (
        ("mnist_rows", "eeg", "mnist1d"),
        {},
        ("bp", "bp_tanh", "drtp", "tpsgd_l1", BEST, "control_tanh"),
    ),
    "table7": (("mnist_rows",), {"num_layers": 2}, ("bp_tanh", "drtp", "tpsgd_l1", BEST)),
    "table8": (("mnist_rows",), {"bidirectional": True}, ("bp_tanh", "drtp", "tpsgd_l1", BEST)),
    "sweep": (("mnist_rows",), {}, tuple(VARIANTS)),
}


def load(name: str, data: str | None):
    """``(X_train, y_train, X_test, y_test)`` as float tensors ``(n, T, d)`` and int labels."""
    if name == "mnist_rows":
        X_train, y_train, X_test, y_test = load_mnist(data)
        X_train, X_test = (torch.tensor(X / 255.0, dtype=torch.float32) for X in (X_train, X_test))
    elif name == "eeg":
        X_train, y_train, X_test, y_test = load_eeg_seizure(data)
        scale = float(np.std(X_train))
        X_train, X_test = (
            torch.tensor(np.pad(X, ((0, 0), (0, 2))) / scale, dtype=torch.float32).reshape(
                len(X), 45, 4
            )
            for X in (X_train, X_test)
        )
    elif name in ("mnist1d", "mnist1d_x4"):  # 40 steps of 1 value, or 10 steps of 4
        X_train, y_train, X_test, y_test = load_mnist1d(data)
        width = 4 if name == "mnist1d_x4" else 1
        X_train, X_test = (
            torch.tensor(X, dtype=torch.float32).reshape(len(X), -1, width)
            for X in (X_train, X_test)
        )
    else:
        raise ValueError(f"unknown data set {name!r}")
    return X_train, torch.tensor(y_train), X_test, torch.tensor(y_test)


def run(variant, data, *, hidden, epochs, seed, extra) -> dict:
    X_train, y_train, X_test, y_test = data
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    kwargs = {"lr": 1e-3, **VARIANTS[variant], **extra}
    net = RecurrentNetwork(X_train.shape[2], hidden, n_classes, seed=seed, **kwargs)
    order = torch.Generator().manual_seed(seed)
    seconds, held, curve = [], 0, []
    for _ in range(epochs):
        perm = torch.randperm(len(X_train), generator=order)
        start = time.perf_counter()
        for i in range(0, len(X_train), BATCH):
            idx = perm[i : i + BATCH]
            net.train_step(X_train[idx], net.one_hot(y_train[idx]))
            held = max(held, net.held_bytes)
        seconds.append(time.perf_counter() - start)
        correct = sum(
            int((net.predict(X_test[i : i + 1000]) == y_test[i : i + 1000]).sum())
            for i in range(0, len(X_test), 1000)
        )
        curve.append(round(100.0 * correct / len(X_test), 2))
    return {
        "accuracy": curve[-1],
        "curve": curve,
        "seconds_per_epoch": round(sum(seconds) / epochs, 2),
        "held_bytes": held,
        "recurrent_weight_norm": round(
            float(torch.linalg.matrix_norm(net.cells[0].weight_h.detach())), 1
        ),
    }


def over_seeds(rows: dict[int, dict]) -> dict:
    """Mean and sample standard deviation of the final accuracy over seeds, plus each row.

    Parameters
    ----------
    rows
        Seed -> the row ``run`` returned for it.

    Returns
    -------
    dict
        ``accuracy_mean``, ``accuracy_std``, the mean ``seconds_per_epoch``, the largest
        ``held_bytes`` and ``seeds`` (seed -> row).
    """
    accuracies = np.array([row["accuracy"] for row in rows.values()])
    seconds = np.array([row["seconds_per_epoch"] for row in rows.values()])
    return {
        "accuracy_mean": round(float(accuracies.mean()), 2),
        "accuracy_std": round(float(accuracies.std(ddof=1)), 2),
        "seconds_per_epoch": round(float(seconds.mean()), 2),
        "held_bytes": max(row["held_bytes"] for row in rows.values()),
        "seeds": {str(seed): row for seed, row in rows.items()},
    }


def memory_part(hidden: int) -> dict:
    """Bytes held by one training step against the sequence length T (one layer, batch 128)."""
    rows = {}
    for variant in ("bp_tanh", "drtp", BEST):
        rows[variant] = {}
        for steps in (28, 112, 448):
            net = RecurrentNetwork(28, hidden, 10, seed=0, **VARIANTS[variant])
            x, y = torch.rand(BATCH, steps, 28), torch.arange(BATCH) % 10
            start = time.perf_counter()
            net.train_step(x, net.one_hot(y))
            rows[variant][steps] = {
                "held_bytes": net.held_bytes,
                "seconds": round(time.perf_counter() - start, 3),
            }
    return rows


def save(results: dict, args: argparse.Namespace) -> None:
    """Merge ``results`` into ``args.out`` (if given) under ``args.label``, keeping other runs.

    Parameters
    ----------
    results
        This run's tables so far.
    args
        The parsed command line (``out``, ``label``, ``quick``, ``epochs``).
    """
    if not args.out:
        return
    path = Path(args.out)
    merged = json.loads(path.read_text()) if path.exists() else {}
    path.parent.mkdir(parents=True, exist_ok=True)
    key = args.label or ("quick" if args.quick else f"full_{args.epochs}ep")
    merged.setdefault(key, {}).update(results)
    path.write_text(json.dumps(merged, indent=1) + "\n")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="folder of the archives (or TPSGD_DATA)")
    parser.add_argument("--tables", nargs="+", default=["table5", "table7", "table8", "memory"])
    parser.add_argument("--variants", nargs="+", default=None, help="override the variants")
    parser.add_argument(
        "--sets", nargs="+", choices=SETS, default=None, help="data sets instead of the table's"
    )
    parser.add_argument("--epochs", type=int, default=None, help="20 (--quick: 3)")
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--train", type=int, default=None, help="training subset size")
    parser.add_argument("--test", type=int, default=None, help="test subset size")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="mean +- std if >1")
    parser.add_argument("--lr", type=float, default=None, help="override every variant's lr")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="hidden 128, 10k/2k, 3 epochs")
    # (the recorded quick runs passed --train 20000: 20k training / 2k test samples)
    add_output_arguments(parser, "rnn_tables.json")  # (merged into if it exists)
    parser.add_argument("--label", default=None, help="key of this run in the JSON file")
    args = parser.parse_args(argv)
    args.out = str(output_path(args, "rnn_tables.json"))
    if args.epochs is None:
        args.epochs = 3 if args.quick else 20
    if args.quick:
        args.hidden = 128
        args.train, args.test = args.train or 10_000, args.test or 2_000
    torch.set_num_threads(args.threads)
    setup = {k: v for k, v in vars(args).items() if k not in ("out", "data", "record")}
    results = {**run_header("rnn_tables.py", argv), "setup": setup}
    cache = {}
    for table in args.tables:
        if table == "memory":
            results["memory"] = memory_part(args.hidden)
            print("memory", json.dumps(results["memory"]), flush=True)
            continue
        sets, extra, variants = TABLES[table]
        if args.lr is not None:
            extra = {**extra, "lr": args.lr}
        results[table] = {}
        for name in args.sets or sets:
            if name not in cache:
                try:
                    X_train, y_train, X_test, y_test = load(name, args.data)
                except FileNotFoundError as err:
                    print(f"skipping {name}: {err}", file=sys.stderr)
                    continue
                cache[name] = (
                    X_train[: args.train],
                    y_train[: args.train],
                    X_test[: args.test],
                    y_test[: args.test],
                )
            results[table][name] = {}
            for variant in args.variants or variants:
                rows = {
                    seed: run(
                        variant,
                        cache[name],
                        hidden=args.hidden,
                        epochs=args.epochs,
                        seed=seed,
                        extra=extra,
                    )
                    for seed in args.seeds
                }
                row = rows[args.seeds[0]] if len(rows) == 1 else over_seeds(rows)
                results[table][name][variant] = row
                save(results, args)  # after every row: a stopped run keeps what it measured
                print(table, name, variant, json.dumps(row), flush=True)
    if not cache and "memory" not in args.tables:
        without_data("rnn_tables.py", "none of the sets asked for is available (see above)")
    save(results, args)
    finish(args)
    return results


if __name__ == "__main__":
    # Saturated tanh cells send subnormal floats through BPTT's (and the credit's) products;
    # on x86 these made whole epochs ~10x slower (measured: 12 s against 1 s on MNIST-1D).
    # Set here, not in main(), so that a caller's process keeps its own setting.
    torch.set_flush_denormal(True)
    main()
