"""How far can re-training only the last layers go after a covariate shift?

The drift benchmark's targets ask an adaptor (the last layers, re-trained on the new regime with
the encoder frozen) to come within 1 point of full-network fine-tuning after a rotation, at
most 1/5 of a full re-training's multiply-adds. This measures the ceiling of that idea without
a detector or a stream in the way:

1. train a network (``tpsgd_head`` hidden layers, Adam lr 0.01, batch 32) for one pass on the
   first regime of the rotated stream (``digits``: 3,000 samples; ``mnist``: 10,000 samples of
   MNIST 14x14), as the stream would: ``--arch mlp``, the drift benchmark's MLP (hidden
   (64, 64) on digits, (128, 128) on MNIST), or ``--arch cnn``, two Conv2d 16@kxk and a linear
   readout (the paper's Table 3 net; k = 3 on 8x8 digits, 5 on MNIST);
2. copy it, and re-train its last ``depth`` trainable layers (1: the output layer; the
   deepest: the whole network, i.e. fine-tuning) for 10 passes on the first ``k`` samples
   after the rotation, from the current weights or (``reinit``) from fresh ones;
3. test on held-out samples of the rotated regime (the last 1,500 of it).

Inputs are standardised with the whole stream's mean and standard deviation (an oracle
scaler, the best case for every variant). ``MACs vs full`` is the re-training's multiply-adds
against fine-tuning the whole network on the same samples and passes (the encoder runs
forward once, as ``DriftAdaptiveClassifier`` caches it; a convolution costs its weights times
its output positions a sample).

Run: ``python benchmarks/adaptor_ceiling.py [--arch mlp cnn] [--seeds 0 1 2] [--data DIR]``;
writes ``adaptor_ceiling.json`` into ``benchmarks/results/`` with ``--record``, else into a
scratch folder (see ``_common.py``). MNIST is skipped when its archive is absent.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

from tpsgd_stream.drift import Shift, ShiftStream, digits_shift_stream
from tpsgd_stream.drift.adaptive import retraining_multiply_adds
from tpsgd_stream.engine.network import Network

sys.path.insert(0, str(Path(__file__).parent))
from _common import (  # noqa: E402
    add_output_arguments,
    finish,
    output_path,
    run_header,
    without_data,
    write_results,
)
from drift_recovery import mnist14  # noqa: E402  (sibling scripts)

PASSES = 10
BATCH = 32
N_TEST = 1500


def stream_arrays(name: str, seed: int, data) -> tuple[np.ndarray, np.ndarray, int]:
    """Standardised inputs (flat), labels and the rotation's position of one stream."""
    if name == "digits":
        n, shift = 6000, 3000
        stream = digits_shift_stream([Shift("rotate", shift)], n_samples=n, seed=seed)
    else:
        X, y = mnist14(data)
        n, shift = 20000, 10000
        stream = ShiftStream(
            X[:20000],
            y[:20000],
            [Shift("rotate", shift)],
            n_samples=n,
            image_shape=(14, 14),
            seed=seed,
        )
    samples = list(stream)
    X = np.array([list(x.values()) for x, _ in samples], dtype=np.float32)
    y = np.array([t for _, t in samples])
    std = X.std(0)
    std[std < 1e-3] = 1.0  # pixels blank in every sample
    return (X - X.mean(0)) / std, y, shift


def make_network(name: str, arch: str, seed: int) -> Network:
    """The network of a stream and an architecture, on 10 classes."""
    kwargs = dict(rule="tpsgd_head", lr=1e-2, seed=seed)
    side = 8 if name == "digits" else 14
    if arch == "cnn":
        return Network.cnn((1, side, side), 10, kernel_size=3 if side == 8 else 5, **kwargs)
    hidden = (64, 64) if name == "digits" else (128, 128)
    return Network.mlp(side * side, hidden, 10, **kwargs)


def retrain(net, X, T, layers, passes: int, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    for _ in range(passes):
        order = torch.randperm(len(X), generator=generator)
        for begin in range(0, len(X), BATCH):
            chosen = order[begin : begin + BATCH]
            net.train_step(X[chosen], T[chosen], layers=layers, start=layers[0])


def macs_vs_full(net: Network, sample: torch.Tensor, depth: int) -> float:
    """Re-training the last ``depth`` layers (encoder forward once) against the whole net, as
    ``DriftAdaptiveClassifier`` counts it."""
    adaptor, full = retraining_multiply_adds(net.multiply_adds(sample), depth, 1, PASSES)
    return adaptor / full


def measure(name: str, arch: str, seed: int, data, sizes) -> dict:
    X, y, shift = stream_arrays(name, seed, data)
    X = torch.from_numpy(X)
    if arch == "cnn":
        side = int(round(X.shape[1] ** 0.5))
        X = X.reshape(len(X), 1, side, side)
    T = torch.nn.functional.one_hot(torch.from_numpy(y), 10).float()
    labels = torch.from_numpy(y)
    net = make_network(name, arch, seed)
    for begin in range(0, shift, BATCH):  # the first regime, one pass, as the stream does
        net.train_step(X[begin : begin + BATCH], T[begin : begin + BATCH])
    test = slice(len(X) - N_TEST, len(X))
    out = {"before": float((net.predict(X[test]) == labels[test]).float().mean())}
    n_trainable = len(net.trainable_indices)
    for k in sizes:
        fit = slice(shift, shift + k)
        features = {}
        for depth in range(1, n_trainable + 1):
            for reinit in (False, True):
                copy = make_network(name, arch, seed)
                copy.load_state_dict(net.state_dict())
                layers = copy.trainable_indices[-depth:]
                if reinit:
                    for i in layers:
                        copy.layers[i].reset_parameters(torch.Generator().manual_seed(seed + i))
                    copy.reset_optimizer_state(layers)
                if layers[0] not in features:  # the frozen encoder's output, computed once
                    features[layers[0]] = copy.forward(X[fit], stop=layers[0])
                retrain(copy, features[layers[0]], T[fit], layers, PASSES, seed)
                accuracy = (copy.predict(X[test]) == labels[test]).float().mean()
                out[f"k={k} depth={depth}{' reinit' if reinit else ''}"] = float(accuracy)
    out["macs_vs_full"] = {str(d): macs_vs_full(net, X[:1], d) for d in range(1, n_trainable + 1)}
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 1500])
    parser.add_argument("--streams", nargs="+", default=["digits", "mnist"])
    parser.add_argument("--arch", nargs="+", default=["mlp", "cnn"], choices=["mlp", "cnn"])
    parser.add_argument("--data", default=os.environ.get("TPSGD_DATA"), help="data folder")
    add_output_arguments(parser, "adaptor_ceiling.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results = {
        **run_header("adaptor_ceiling.py", argv),
        "passes": PASSES,
        "seeds": args.seeds,
        "streams": {},
    }
    for name in args.streams:
        for arch in args.arch:
            try:
                runs = [measure(name, arch, seed, args.data, args.sizes) for seed in args.seeds]
            except FileNotFoundError as err:
                print(f"skipping {name}: {err}", file=sys.stderr)
                break
            keys = [k for k in runs[0] if k != "macs_vs_full"]
            summary = {
                k: {"mean": float(np.mean([r[k] for r in runs])), "per_seed": [r[k] for r in runs]}
                for k in keys
            }
            entry = {"accuracy": summary, "macs_vs_full": runs[0]["macs_vs_full"]}
            results["streams"].setdefault(name, {})[arch] = entry
            for k in keys:
                print(f"{name:7s} {arch} {k:24s} {100 * summary[k]['mean']:6.1f} %", flush=True)
            print(f"{name:7s} {arch} MACs vs full by depth: {entry['macs_vs_full']}", flush=True)
    if not results["streams"]:
        without_data("adaptor_ceiling.py", "none of the streams asked for is available (see above)")
    write_results(results, output_path(args, "adaptor_ceiling.json"))
    finish(args)
    return results


if __name__ == "__main__":
    main()
