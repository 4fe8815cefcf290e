"""Reproduce the tpSGD paper's Table 2 (MNIST MLP) and Table 3 (MNIST CNN), plus memory and speed.

Table 2: MLP 784-256-256-10, leaky ReLU, batch 128, Adam, 1 epoch. Table 3: two Conv2d 16@5x5
and a linear readout (``Network.cnn((1, 28, 28), 10)``). For each rule: test accuracy (mean and
std over seeds), training seconds per epoch and per step. Then, for MLPs with 2, 4 and 8 hidden
layers of 256: the activation bytes a training step holds (``Network.activation_bytes``) and the
process's peak RSS, each configuration in a fresh subprocess; and the step-time ratio of every
rule to backprop on the same net, timed interleaved on the same MNIST minibatches in training.

Usage::

    python benchmarks/paper_tables.py --data ../shared/data --seeds 3
    python benchmarks/paper_tables.py --quick          # a few seconds: smoke test
    python benchmarks/paper_tables.py --parts cnn --rules tpsgd_head   # one row, merged in
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from tpsgd_stream import Network, get_rule
from tpsgd_stream.datasets import load_mnist
from tpsgd_stream.engine.training import accuracy, fit

sys.path.insert(0, str(Path(__file__).parent))
from _common import (  # noqa: E402  (a sibling script)
    add_output_arguments,
    finish,
    output_path,
    run_header,
    without_data,
)

BATCH = 128
MLP_RULES = (
    "bp",
    "dfa",
    "sdfa",
    "drtp",
    "tpsgd_l1",
    "tpsgd_l2",
    "tpsgd_ce",
    "tpsgd_ce_ls",
    "tpsgd_head",
)
CNN_RULES = ("bp", "drtp", "tpsgd_l1", "tpsgd_l2", "tpsgd_ce", "tpsgd_ce_ls", "tpsgd_head")
DEPTHS = (2, 4, 8)
MEMORY_RULES = ("bp", "tpsgd_ce_ls", "forward_grad", "bitflip")
EDGE_RULES = ("forward_grad", "bitflip")  # the other on-device families, beside the tables
SPEED_DEPTH_RULES = ("bp", "drtp", "tpsgd_l2", "tpsgd_ce", "tpsgd_head")
PARTS = ("mlp", "cnn", "memory", "speed", "depth_speed", "edge")
# Network settings per rule (Adam, lr 1e-3 unless listed), chosen by sweeps (see the git
# history of BENCHMARKS.md).
SETTINGS: dict[str, dict] = {}
PAPER = {
    "mlp": {"tpsgd": 88.3, "zorb": 89.4, "lm_karnet": 89.9},
    "cnn": {"tpsgd": 96.6, "bp": 97.1},
}


def build(
    arch: str, rule: str, *, seed: int, depth: int = 2, activation: str = "leaky_relu"
) -> Network:
    kwargs = {"lr": 1e-3, **SETTINGS.get(rule, {}), "rule": rule, "seed": seed}
    kwargs["activation"] = activation
    if arch == "mlp":
        return Network.mlp(784, (256,) * depth, 10, **kwargs)
    return Network.cnn((1, 28, 28), 10, **kwargs)


def shaped(arch: str, X: torch.Tensor) -> torch.Tensor:
    return X.reshape(len(X), -1) if arch == "mlp" else X[:, None]


def accuracy_table(arch, rules, seeds, epochs, data, bar, activation="leaky_relu") -> dict:
    X_train, y_train, X_test, y_test = data
    X_train, X_test = shaped(arch, X_train), shaped(arch, X_test)
    steps = epochs * -(-len(X_train) // BATCH)
    rows = {}
    for rule in rules:
        accs, seconds = [], []
        for seed in seeds:
            bar.set_postfix_str(f"{arch} {rule} seed {seed}")
            net = build(arch, rule, seed=seed, activation=activation)
            start = time.perf_counter()
            fit(net, X_train, y_train, epochs=epochs, batch_size=BATCH, progress=False)
            seconds.append(time.perf_counter() - start)
            accs.append(100.0 * accuracy(net, X_test, y_test))
            bar.update()
        rows[rule] = {
            "accuracy_mean": statistics.mean(accs),
            "accuracy_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "accuracies": accs,
            "seconds_per_epoch": statistics.mean(seconds) / epochs,
            "ms_per_step": 1e3 * statistics.mean(seconds) / steps,
        }
    return rows


class TorchBackprop:
    """The step a user writes by hand: ``nn.Sequential`` MLP, autograd and ``torch.optim.Adam``.

    The same widths, leaky ReLU slope, initial weights and lr as ``build("mlp", "bp")``, so its
    time is that of the engine's ``bp`` net trained the usual PyTorch way.
    """

    def __init__(self, depth: int) -> None:
        net = build("mlp", "bp", seed=0, depth=depth)
        modules: list[torch.nn.Module] = []
        for layer in net.layers:
            linear = torch.nn.Linear(layer.in_features, layer.out_features)
            with torch.no_grad():
                linear.weight.copy_(layer.weight)
                linear.bias.copy_(layer.bias)
            modules += [linear, torch.nn.LeakyReLU(0.1)]
        self.model = torch.nn.Sequential(*modules[:-1])
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(self.model(x), y.argmax(1))
        loss.backward()
        self.optimizer.step()


def step_times(
    arch: str, rules, data, *, reps: int = 400, warmup: int = 300, depth: int = 2
) -> dict:
    """Median ms per ``train_step`` in training: after ``warmup`` steps on MNIST, ``reps`` more
    consecutive minibatches are timed, the rules in turn (interleaved) on the same batches, in
    the listed order on even steps and the reverse order on odd ones (no rule always runs
    right after the same other one). ``"torch_bp"`` is :class:`TorchBackprop` (MLP only).

    Timing trained networks matters for gated rules, which skip the samples they have learned.
    Subnormal floats are flushed to 0 while timing (``torch.set_flush_denormal``): some rules'
    products otherwise ran 2x slower on subnormal activations (DRTP at depth 8), which times
    the processor's slow path rather than the rule's arithmetic.
    """
    torch.set_flush_denormal(True)
    try:
        return _step_times(arch, rules, data, reps=reps, warmup=warmup, depth=depth)
    finally:
        torch.set_flush_denormal(False)


def _step_times(arch: str, rules, data, *, reps: int, warmup: int, depth: int) -> dict:
    X_train, y_train = shaped(arch, data[0]), data[1]
    nets = {
        rule: TorchBackprop(depth) if rule == "torch_bp" else build(arch, rule, seed=0, depth=depth)
        for rule in rules
    }
    times: dict[str, list[float]] = {rule: [] for rule in rules}
    for step in range(warmup + reps):
        start_row = step * BATCH % (len(X_train) - BATCH)
        x = X_train[start_row : start_row + BATCH]
        y = torch.nn.functional.one_hot(y_train[start_row : start_row + BATCH], 10).float()
        for rule in rules if step % 2 == 0 else rules[::-1]:
            net = nets[rule]
            start = time.perf_counter()
            net.train_step(x, y)
            if step >= warmup:
                times[rule].append(time.perf_counter() - start)
    median = {rule: 1e3 * statistics.median(t) for rule, t in times.items()}
    fastest = {rule: 1e3 * min(t) for rule, t in times.items()}
    return {
        rule: {
            "ms_median": median[rule],
            "ratio_to_bp": median[rule] / median["bp"],
            "ms_min": fastest[rule],
            "ratio_to_bp_min": fastest[rule] / fastest["bp"],
        }
        for rule in rules
    }


def peak_rss_bytes() -> int:
    """This process's peak resident set size.

    On Linux, ``VmHWM`` from ``/proc/self/status``: ``ru_maxrss`` of a child started by
    ``subprocess`` keeps the parent's high-water mark from before ``exec`` (here the ~0.7 GB of
    the benchmark process with MNIST loaded), which would hide the figure being measured.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    # ru_maxrss is in KiB on Linux, bytes on macOS
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def memory_worker(rule: str, depth: int, steps: int, threads: int) -> dict:
    """Run in a fresh process: peak RSS and held activation bytes of ``steps`` MLP steps."""
    torch.set_num_threads(threads)
    net = build("mlp", rule, seed=0, depth=depth)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, 784, generator=generator)
    y = torch.nn.functional.one_hot(torch.arange(BATCH) % 10, 10).float()
    before = peak_rss_bytes()
    peak = 0
    for _ in range(steps):
        net.train_step(x, y)
        peak = max(peak, net.activation_bytes)
    after = peak_rss_bytes()
    return {
        "activation_bytes": peak,
        "rss_peak_bytes": after,
        "rss_growth_during_training_bytes": after - before,
    }


def memory_table(rules, steps: int, threads: int, bar) -> dict:
    rows: dict[str, dict] = {}
    for rule in rules:
        for depth in DEPTHS:
            bar.set_postfix_str(f"memory {rule} depth {depth}")
            command = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--memory-worker",
                f"{rule},{depth},{steps},{threads}",
            ]
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            rows.setdefault(rule, {})[str(depth)] = json.loads(out.strip().splitlines()[-1])
            bar.update()
    return rows


def print_report(result: dict) -> None:
    for arch, title in (("mlp", "Table 2: MLP 784-256-256-10"), ("cnn", "Table 3: CNN 2x16@5x5")):
        if arch not in result:
            continue
        print(f"\n{title}, {result['epochs']} epoch(s), {len(result['seeds'])} seeds")
        print(f"{'rule':12s} {'test acc %':>16s} {'s/epoch':>8s} {'ms/step':>8s} {'step/bp':>8s}")
        speed = result.get("step_time", {}).get(arch, {})
        for rule, row in result[arch].items():
            ratio = speed.get(rule, {}).get("ratio_to_bp")
            acc = f"{row['accuracy_mean']:.2f} +- {row['accuracy_std']:.2f}"
            ratio_text = "-" if ratio is None else f"{ratio:.2f}"  # (--parts speed not run)
            print(
                f"{rule:12s} {acc:>16s} {row['seconds_per_epoch']:8.1f} "
                f"{row['ms_per_step']:8.2f} {ratio_text:>8s}"
            )
    for arch, rows in result.get("edge", {}).items():
        print(f"\nOther on-device families, {arch.upper()}, {result['epochs']} epoch(s)")
        for rule, row in rows.items():
            acc = f"{row['accuracy_mean']:.2f} +- {row['accuracy_std']:.2f}"
            print(
                f"{rule:12s} {acc:>16s} {row['seconds_per_epoch']:8.1f} {row['ms_per_step']:8.2f}"
            )
    by_depth = result.get("depth_step_time", {})
    if by_depth:
        print("\nMLP step time / the engine's bp step, hidden layers of 256 (median)")
        print(f"{'rule':12s} " + " ".join(f"{depth + ' layers':>10s}" for depth in by_depth))
        for rule in next(iter(by_depth.values())):
            ratios = [rows[rule]["ratio_to_bp"] for rows in by_depth.values()]
            print(f"{rule:12s} " + " ".join(f"{ratio:10.2f}" for ratio in ratios))
    if "memory" not in result:
        return
    print("\nMemory of one MLP training step (hidden layers of 256, batch 128)")
    print(
        f"{'rule':12s} {'depth':>5s} {'activations KiB':>16s} {'peak RSS MiB':>13s} "
        f"{'RSS growth KiB':>15s}"
    )
    for rule, by_depth in result["memory"].items():
        for depth, row in by_depth.items():
            print(
                f"{rule:12s} {depth:>5s} {row['activation_bytes'] / 1024:16.0f} "
                f"{row['rss_peak_bytes'] / 2**20:13.1f} "
                f"{row['rss_growth_during_training_bytes'] / 1024:15.0f}"
            )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="folder holding mnist.npz (or TPSGD_DATA)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--quick", action="store_true", help="2,000 samples, 1 seed: smoke test")
    add_output_arguments(parser, "paper_tables.json")
    parser.add_argument(
        "--parts",
        default=",".join(PARTS),
        help="comma-separated subset of " + ",".join(PARTS) + "; the others are kept from --out",
    )
    parser.add_argument(
        "--rules",
        default=None,
        help="comma-separated rules for the mlp and cnn tables (default: all); their rows "
        "replace those in --out and the other rows are kept",
    )
    parser.add_argument(
        "--activation",
        default="leaky_relu",
        help="hidden activation of the mlp and cnn tables (the paper's: leaky_relu); write "
        "another one's tables to their own --out",
    )
    parser.add_argument("--memory-worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_worker:
        rule, depth, steps, threads = args.memory_worker.split(",")
        print(json.dumps(memory_worker(rule, int(depth), int(steps), int(threads))))
        return {}
    torch.set_num_threads(args.threads)

    try:
        X_train, y_train, X_test, y_test = load_mnist(args.data, standardize=True)
    except FileNotFoundError as err:
        without_data("paper_tables.py", err)
    seeds = list(range(1 if args.quick else args.seeds))
    if args.quick:
        X_train, y_train = X_train[:2000], y_train[:2000]
        X_test, y_test = X_test[:1000], y_test[:1000]
    data = tuple(torch.as_tensor(a) for a in (X_train, y_train, X_test, y_test))
    parts = [part for part in args.parts.split(",") if part]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; expected some of {PARTS}")
    chosen = None if args.rules is None else [r for r in args.rules.split(",") if r]
    if chosen is not None and not set(chosen) <= set(MLP_RULES) | set(CNN_RULES):
        parser.error(f"unknown rules {sorted(set(chosen) - set(MLP_RULES) - set(CNN_RULES))}")
    mlp_rules = [r for r in MLP_RULES if chosen is None or r in chosen]
    cnn_rules = [r for r in CNN_RULES if chosen is None or r in chosen]
    total = (
        len(seeds) * (len(mlp_rules) * ("mlp" in parts) + len(cnn_rules) * ("cnn" in parts))
        + len(MEMORY_RULES) * len(DEPTHS) * ("memory" in parts)
        + len(EDGE_RULES) * (len(seeds) + 1) * ("edge" in parts)
    )
    stamp = {
        **run_header("paper_tables.py", argv),
        "torch_threads": torch.get_num_threads(),
        "epochs": args.epochs,
        "seeds": seeds,
        "batch_size": BATCH,
        "activation": args.activation,
        "rules": {rule: repr(get_rule(rule)) for rule in MLP_RULES},
        "settings": {rule: {"lr": 1e-3, **SETTINGS.get(rule, {})} for rule in MLP_RULES},
    }
    produced: dict = {}
    with tqdm(total=total, desc="paper tables", unit="run") as bar:
        if "mlp" in parts:
            produced["mlp"] = accuracy_table(
                "mlp", mlp_rules, seeds, args.epochs, data, bar, args.activation
            )
        if "cnn" in parts:
            produced["cnn"] = accuracy_table(
                "cnn", cnn_rules, seeds, args.epochs, data, bar, args.activation
            )
        if "memory" in parts:
            steps = 5 if args.quick else 50
            produced["memory"] = memory_table(MEMORY_RULES, steps, args.threads, bar)
        if "edge" in parts:  # the CNN once (seed 0): forward gradients cost 2K passes a step
            produced["edge"] = {
                "mlp": accuracy_table("mlp", EDGE_RULES, seeds, args.epochs, data, bar),
                "cnn": accuracy_table("cnn", EDGE_RULES, seeds[:1], args.epochs, data, bar),
            }
    if "speed" in parts:
        reps = 20 if args.quick else 400
        produced["step_time"] = {
            "mlp": step_times("mlp", MLP_RULES, data, reps=reps),
            "cnn": step_times("cnn", CNN_RULES, data, reps=max(reps // 4, 5), warmup=100),
        }
    if "depth_speed" in parts:
        reps = 20 if args.quick else 200
        rules = (*SPEED_DEPTH_RULES, "torch_bp")
        produced["depth_step_time"] = {
            str(depth): step_times("mlp", rules, data, reps=reps, depth=depth) for depth in DEPTHS
        }
    # a run of some parts keeps the other parts already in --out (read now, not at the start,
    # so that runs of different parts side by side all land in the file)
    out = output_path(args, "paper_tables.json")
    partial = (len(parts) < len(PARTS) or chosen is not None) and out.is_file()
    result = json.loads(out.read_text()) if partial else {}
    if chosen is not None:  # the chosen rules' rows replace theirs, in the tables' order
        for arch, rules in (("mlp", MLP_RULES), ("cnn", CNN_RULES)):
            if arch in produced:
                rows = {**result.get(arch, {}), **produced[arch]}
                produced[arch] = {rule: rows[rule] for rule in rules if rule in rows}
    result.update(produced)
    result.update({"epochs": args.epochs, "seeds": seeds, "paper": PAPER})
    suffix = "" if chosen is None else f" ({','.join(chosen)})"
    result["runs"] = {**result.get("runs", {}), **{part + suffix: stamp for part in parts}}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print_report(result)
    print(f"\nwritten to {out}")
    finish(args)
    return result


if __name__ == "__main__":
    main()
