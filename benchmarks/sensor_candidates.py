"""Feature candidates for the sensor panel (issue #18): MultiRocket's ideas on the tuning sets.

Each candidate changes the random-kernel features only; the readout is the default's (online
standardisation, the normalised delta rule in minibatches of 8, a fresh order each epoch), run
here on features computed once:

- ``base``: the default transform (PPV pooling of the series), 9,996 features;
- ``diff``: half of the features from the series, half from its first difference;
- ``pool``: PPV, the mean of positive values (MPV) and the longest stretch of positive values
  (LSPV, over the pooled positions) per kernel, dilation and bias, a third of the biases each;
- ``diffpool``: both.

MNIST-1D is held out of tuning and is not a choice here. EEG runs on stratified samples of
1,000 / 500 cases (``--eeg-sample``). Results go to a scratch file unless ``--record``.

    python benchmarks/sensor_candidates.py --sets chinatown,coffee --seeds 3
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from tpsgd_stream.engine.random_kernels import RandomKernels

sys.path.insert(0, str(Path(__file__).parent))
from _common import (  # noqa: E402  (a sibling script)
    add_output_arguments,
    finish,
    output_path,
    run_header,
    without_data,
    write_results,
)
from sensor_panel import CHECKPOINTS, load, subsample  # noqa: E402

TUNING_SETS = ("chinatown", "coffee", "pigcvp", "eeg5")
CANDIDATES = {  # name -> (pooling operators, also the first difference)
    "base": (("ppv",), False),
    "diff": (("ppv",), True),
    "pool": (("ppv", "mpv", "lspv"), False),
    "diffpool": (("ppv", "mpv", "lspv"), True),
}


def pool(rk: RandomKernels, x: torch.Tensor, operators: tuple[str, ...]) -> torch.Tensor:
    """``(n, n_features * len(operators))``: each operator over every kernel, dilation and bias
    of a fitted transform, on sequences of one length ``x`` ``(n, channels, T)``."""
    lengths = torch.full((len(x),), x.shape[2])
    positions = torch.arange(x.shape[2])
    columns = []
    with torch.no_grad():
        for i, bias in enumerate(rk.biases):
            out = rk._convolve(x, i)
            start, stop = rk._valid_span(lengths, i)
            pooled = (positions >= start[..., None]) & (positions < stop[..., None])
            count = (stop - start).float()
            for b in range(bias.shape[1]):
                above = out - bias[None, :, b, None]
                stack = [operator(name, above, pooled, count) for name in operators]
                columns.append(torch.stack(stack, 2))
    return torch.cat([c.flatten(1) for c in columns], 1)


def operator(name: str, above: torch.Tensor, pooled: torch.Tensor, count: torch.Tensor):
    """One pooling operator of ``above`` (the output less a bias) over ``pooled`` positions."""
    positive = (above > 0) & pooled
    n_positive = positive.sum(2).float()
    if name == "ppv":
        return n_positive / count
    if name == "mpv":
        return (above * positive).sum(2) / n_positive.clamp(min=1)
    return longest_run(positive).float() / count


def longest_run(positive: torch.Tensor) -> torch.Tensor:
    """The longest stretch of ``True`` along the last axis.

    Examples
    --------
    >>> longest_run(torch.tensor([[0, 1, 1, 0, 1, 1, 1, 0], [0] * 8]).bool()).tolist()
    [3, 0]
    """
    t = torch.arange(positive.shape[-1]).expand_as(positive)
    last_off = torch.where(positive, -1, t).cummax(-1).values
    return ((t - last_off) * positive).amax(-1)


def candidate_features(name: str, x_train, x_test, seed: int, n_features: int = 9996):
    """Train and test features of a candidate, the transforms fitted on the first 8 cases."""
    operators, with_diff = CANDIDATES[name]
    parts = [(torch.from_numpy(x_train), torch.from_numpy(x_test))]
    if with_diff:
        parts.append(tuple(p.diff(dim=2) for p in parts[0]))
    per = n_features // len(operators) // len(parts)
    train, test = [], []
    for r, (a, b) in enumerate(parts):
        rk = RandomKernels(a.shape[1], a.shape[2], n_features=per, seed=seed + 1000 * r)
        rk.fit(a[:8])
        for x, into in ((a, train), (b, test)):
            into.append(
                torch.cat([pool(rk, x[i : i + 64], operators) for i in range(0, len(x), 64)])
            )
    return torch.cat(train, 1), torch.cat(test, 1)


def delta_rule(f_train, y_train, f_test, y_test, seed: int, epochs: int) -> dict:
    """Test accuracy at the checkpoints of the default readout's rule trained on features."""
    classes, y_index = np.unique(y_train, return_inverse=True)
    targets = 2 * torch.nn.functional.one_hot(torch.from_numpy(y_index), len(classes)) - 1.0
    d = f_train.shape[1]
    mean, m2, count = torch.zeros(d), torch.zeros(d), 0
    weight = torch.zeros(d + 1, len(classes))
    order, accuracy = np.random.default_rng(seed), {}

    def standardise(f):
        sd = (m2 / max(count - 1, 1)).sqrt()
        sd = torch.where(sd > 1e-6, sd, torch.ones_like(sd))
        return torch.cat([(f - mean) / sd, torch.ones(len(f), 1)], 1)

    for epoch in range(1, epochs + 1):
        perm = order.permutation(len(f_train))
        for start in range(0, len(perm), 8):
            rows = perm[start : start + 8]
            f, n = f_train[rows], len(rows)
            delta, total = f.mean(0) - mean, count + n
            m2 = m2 + ((f - f.mean(0)) ** 2).sum(0) + delta**2 * count * n / total
            mean, count = mean + delta * n / total, total
            z = standardise(f)
            largest = torch.linalg.eigvalsh(z @ z.T)[-1].clamp(min=1e-12)
            weight = weight - z.T @ (z @ weight - targets[rows]) / largest
        if epoch in CHECKPOINTS:
            predicted = classes[(standardise(f_test) @ weight).argmax(1).numpy()]
            accuracy[epoch] = float(np.mean(predicted == y_test))
    return accuracy


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default=",".join(TUNING_SETS))
    parser.add_argument("--candidates", default=",".join(CANDIDATES))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--eeg-sample", default="1000,500", help="train,test cases of EEG")
    add_output_arguments(parser, "sensor_candidates.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results = run_header("sensor_candidates.py", argv) | {"sets": {}}
    for name in args.sets.split(","):
        if name not in TUNING_SETS:
            parser.error(f"{name!r} is not a tuning set; expected some of {TUNING_SETS}")
        try:
            data = load(name, quick=False)
        except FileNotFoundError as err:
            print(f"skipping {name}: {err}", file=sys.stderr)
            continue
        if name == "eeg5":
            data = subsample(data, *map(int, args.eeg_sample.split(",")))
        results["sets"][name] = {}
        for candidate in args.candidates.split(","):
            start, runs = time.perf_counter(), []
            for seed in range(args.seeds):
                f_train, f_test = candidate_features(candidate, data[0], data[2], seed)
                runs.append(delta_rule(f_train, data[1], f_test, data[3], seed, args.epochs))
            mean = {e: round(float(np.mean([r[e] for r in runs])), 4) for e in runs[0]}
            results["sets"][name][candidate] = {
                "accuracy_mean": mean,
                "features": f_train.shape[1],
                "seconds": round(time.perf_counter() - start, 1),
            }
            print(name, candidate, results["sets"][name][candidate], flush=True)
        write_results(results, output_path(args, "sensor_candidates.json"))
    if not results["sets"]:
        without_data("sensor_candidates.py", "none of the sets asked for is available (see above)")
    finish(args)
    return results


if __name__ == "__main__":
    main()
