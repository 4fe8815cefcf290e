"""Which target-projection rule is the default: the measurement behind ``DEFAULT_RULE``.

Part ``mlp``: the MNIST MLP 784-256-256-10 (leaky ReLU, Adam lr 1e-3, batch 128, 1 epoch),
test accuracy per rule, mean and std over seeds. Part ``digits``: scikit-learn's digits
(pixels / 16) through ``TPSGDClassifier`` at its defaults, prequentially (predict, then learn)
in a seeded shuffle. ``tpsgd_l2_gated@m`` is the gated rule with ``margin=m``.

Usage::

    python benchmarks/default_rule.py --parts mlp digits --seeds 0 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from tpsgd_stream import Network, get_rule
from tpsgd_stream.datasets import load_mnist
from tpsgd_stream.engine.rules import GatedTargetProjection
from tpsgd_stream.engine.training import accuracy, fit
from tpsgd_stream.models import TPSGDClassifier

sys.path.insert(0, str(Path(__file__).parent))
from _common import (  # noqa: E402  (a sibling script)
    add_output_arguments,
    finish,
    output_path,
    run_header,
    without_data,
    write_results,
)

RULES = (
    "bp",
    "local_head",
    "fixed_readout_ce_ls",
    "fixed_readout_ce",
    "tpsgd_l1",
    "tpsgd_l2",
    "tpsgd_l2_gated@1.0",
    "tpsgd_l2_gated@0.9",
    "tpsgd_l2_gated",
    "tpsgd_l2_gated@0.6",
    "tpsgd_l2_gated@0.4",
)


def make_rule(spec: str):
    name, _, margin = spec.partition("@")
    return get_rule(name, margin=float(margin)) if margin else get_rule(name)


def mlp_accuracy(spec: str, seed: int, data) -> float:
    X, y, X_test, y_test = data
    net = Network.mlp(784, (256, 256), 10, rule=make_rule(spec), lr=1e-3, seed=seed)
    fit(net, X, y, epochs=1, batch_size=128, progress=False)
    return 100.0 * accuracy(net, X_test, y_test)


def registered(spec: str) -> str:
    """A rule name the estimators take for ``spec`` (a margin variant is registered)."""
    name, _, margin = spec.partition("@")
    if not margin:
        return name

    def __init__(self, **kwargs):
        GatedTargetProjection.__init__(self, margin=float(margin), **kwargs)

    variant = f"_bench_{name}_{margin}"
    type(variant, (GatedTargetProjection,), {"name": variant, "__init__": __init__})
    return variant


def digits_accuracy(spec: str, seed: int) -> float:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    model = TPSGDClassifier(rule=registered(spec), seed=seed)
    correct = 0
    for i in np.random.default_rng(seed).permutation(len(X)):
        x = {f"p{j}": v / 16.0 for j, v in enumerate(X[i].tolist())}
        correct += model.predict_one(x) == y[i]
        model.learn_one(x, int(y[i]))
    return 100.0 * correct / len(X)


def summary(values: list[float]) -> dict:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.mean(values), "std": std, "values": values}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="folder of mnist.npz")
    parser.add_argument("--parts", nargs="+", default=["mlp", "digits"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--rules", nargs="+", default=list(RULES))
    add_output_arguments(parser, "default_rule.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", DeprecationWarning)
    result = {**run_header("default_rule.py"), "seeds": args.seeds}
    if "mlp" in args.parts:
        try:
            X, y, X_test, y_test = load_mnist(args.data, standardize=True)
        except FileNotFoundError as err:
            without_data("default_rule.py", err)
        data = (
            torch.from_numpy(X.reshape(len(X), -1)),
            torch.from_numpy(y).long(),
            torch.from_numpy(X_test.reshape(len(X_test), -1)),
            torch.from_numpy(y_test).long(),
        )
        result["mlp"] = {}
        for spec in args.rules:
            result["mlp"][spec] = summary([mlp_accuracy(spec, s, data) for s in args.seeds])
            print("mlp", spec, result["mlp"][spec]["mean"], flush=True)
    if "digits" in args.parts:
        result["digits"] = {}
        for spec in args.rules:
            result["digits"][spec] = summary([digits_accuracy(spec, s) for s in args.seeds])
            print("digits", spec, result["digits"][spec]["mean"], flush=True)
    write_results(result, output_path(args, "default_rule.json"))
    finish(args)


if __name__ == "__main__":
    main()
