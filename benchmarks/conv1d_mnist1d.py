"""A Conv1d net on MNIST-1D trained by backprop and by local rules (a measurement, not a test).

The net is ``Network.cnn1d``: Conv1d blocks (``--channels``, kernel ``--kernel``, dilations
``--dilation``, "same" padding, leaky ReLU), global temporal pooling (``--pool``) and a
linear readout, on MNIST-1D's 4,000 training and 1,000 test sequences of 40 steps. Each rule
in ``--rules`` trains the same architecture from the same seed with Adam; the test accuracy
after each epoch, the seconds per epoch and the activation bytes a training step held
(``Network.activation_bytes``) are printed and saved. The MNIST-1D paper's anchors: CNN 94 %,
GRU 91 %, MLP 68 %, logistic regression 32 %.

Usage::

    python benchmarks/conv1d_mnist1d.py                      # 3 blocks, 4 rules, 15 epochs
    python benchmarks/conv1d_mnist1d.py --epochs 2 --rules bp local_head
    python benchmarks/conv1d_mnist1d.py --record             # to benchmarks/results/

Results go to a scratch file (``--out``, by default in the system's temporary folder) unless
``--record`` is given.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from tpsgd_stream import Network
from tpsgd_stream.datasets import load_mnist1d
from tpsgd_stream.engine.training import accuracy, fit

sys.path.insert(0, str(Path(__file__).parent))
from _common import (  # noqa: E402  (a sibling script)
    add_output_arguments,
    finish,
    output_path,
    run_header,
    without_data,
    write_results,
)

RULES = ("bp", "local_head", "fixed_readout_ce_ls", "tpsgd_l2")


def load(path: str | None) -> tuple[torch.Tensor, ...]:
    """MNIST-1D as float ``(n, 1, 40)`` sequences and integer labels."""
    x_train, y_train, x_test, y_test = (torch.as_tensor(a) for a in load_mnist1d(path))
    return x_train.float()[:, None], y_train.long(), x_test.float()[:, None], y_test.long()


def run_rule(rule: str, data: tuple[torch.Tensor, ...], args: argparse.Namespace) -> dict:
    """Train one net with ``rule``; its accuracy by epoch, seconds and held bytes."""
    x_train, y_train, x_test, y_test = data
    net = Network.cnn1d(
        1,
        x_train.shape[2],
        10,
        channels=args.channels,
        kernel_size=args.kernel,
        dilation=args.dilation,
        pool=args.pool,
        rule=rule,
        lr=args.lr,
        seed=args.seed,
    )
    accuracies, seconds = [], 0.0
    for epoch in range(args.epochs):
        start = time.perf_counter()
        fit(net, x_train, y_train, epochs=1, batch_size=args.batch)
        seconds += time.perf_counter() - start
        accuracies.append(round(accuracy(net, x_test, y_test), 4))
        print(f"{rule:12s} epoch {epoch + 1:3d}  test {accuracies[-1]:.3f}", flush=True)
    return {
        "accuracy": accuracies,
        "final": accuracies[-1],
        "best": max(accuracies),
        "seconds_per_epoch": round(seconds / args.epochs, 3),
        "held_bytes": net.activation_bytes,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="folder of the archives (or TPSGD_DATA)")
    parser.add_argument("--rules", nargs="+", default=list(RULES))
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--channels", nargs="+", type=int, default=[32, 32, 32])
    parser.add_argument("--dilation", nargs="+", type=int, default=[1, 2, 4])
    parser.add_argument("--kernel", type=int, default=5)
    parser.add_argument("--pool", choices=("avg", "max"), default="max")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    add_output_arguments(parser, "conv1d_mnist1d.json")
    args = parser.parse_args(argv)
    if len(args.dilation) == 1:
        args.dilation = args.dilation * len(args.channels)
    torch.set_num_threads(args.threads)
    try:
        data = load(args.data)
    except FileNotFoundError as err:
        without_data("conv1d_mnist1d.py", err)
    setup = {k: v for k, v in vars(args).items() if k not in ("out", "data", "record")}
    results = {**run_header("conv1d_mnist1d.py", argv), "setup": setup, "rules": {}}
    for rule in args.rules:
        results["rules"][rule] = run_rule(rule, data, args)
    for rule, row in results["rules"].items():
        print(
            f"{rule:12s} final {row['final']:.3f}  best {row['best']:.3f}  "
            f"{row['seconds_per_epoch']:.2f} s/epoch  {row['held_bytes']} bytes held"
        )
    write_results(results, output_path(args, "conv1d_mnist1d.json"))
    finish(args)
    return results


if __name__ == "__main__":
    main()
