"""Build ``BENCHMARKS.md`` from the recorded results in ``benchmarks/results/*.json``.

Every figure on the page comes from a JSON file; the page is never edited by hand::

    python benchmarks/render.py          # rewrite BENCHMARKS.md
    python benchmarks/render.py --check  # exit 1 when the committed page is out of date

A benchmark gets its section from a renderer registered under its JSON file's name (the file
name without ``.json``) with :func:`renderer`; a JSON file without one gets a generic table of
its top-level values. A renderer returns the section's body (tables, plots); the heading, the
command, the commit, the machine and the date come from the JSON's header and are added here.

Examples
--------
>>> page = render_page(RESULTS)
>>> page.startswith("# Benchmarks")
True
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
PAGE = ROOT / "BENCHMARKS.md"


@dataclass(frozen=True)
class Renderer:
    """How one results file becomes a section of the page."""

    title: str
    script: str
    order: int
    body: Callable[[dict], str]
    plots: tuple[str, ...] = ()


REGISTRY: dict[str, Renderer] = {}


def renderer(name: str, title: str, script: str, order: int, plots: tuple[str, ...] = ()):
    """Register the decorated ``body(results) -> str`` as the renderer of ``results/NAME.json``.

    Examples
    --------
    >>> @renderer("example_only", "Example", "example.py", 99)
    ... def _example(results):
    ...     return "| a |\\n|---|\\n| 1 |"
    >>> REGISTRY.pop("example_only").title
    'Example'
    """

    def register(body: Callable[[dict], str]) -> Callable[[dict], str]:
        REGISTRY[name] = Renderer(title, script, order, body, plots)
        return body

    return register


# ---------------------------------------------------------------- formatting helpers


def table(columns: list[str], rows: list[list]) -> str:
    """A Markdown table.

    Examples
    --------
    >>> print(table(["a", "b"], [[1, "x"]]))
    | a | b |
    |---|---|
    | 1 | x |
    """
    lines = [f"| {' | '.join(columns)} |", "|" + "---|" * len(columns)]
    lines += [f"| {' | '.join(str(c) for c in row)} |" for row in rows]
    return "\n".join(lines)


def pct(value: float | None, digits: int = 1, scale: float = 100.0) -> str:
    """A fraction as a percentage without the sign (``-`` for None).

    Examples
    --------
    >>> pct(0.8457, 2)
    '84.57'
    """
    return "-" if value is None else f"{scale * value:.{digits}f}"


def ratio(value: float | None, digits: int = 2) -> str:
    """``0.92x`` (``-`` for None)."""
    return "-" if value is None else f"{value:.{digits}f}x"


def mean_std(mean: float, std: float) -> str:
    """``96.28 ± 0.13``."""
    return f"{mean:.2f} ± {std:.2f}"


def span(values: list[float], fmt: str = "{:.1f}", unit: str = "") -> str:
    """The range of ``values`` as ``low to high`` (one value when they agree).

    Examples
    --------
    >>> span([0.5, 2.25, 1.0])
    '0.5 to 2.2'
    """
    low, high = fmt.format(min(values)), fmt.format(max(values))
    return f"{low}{unit}" if low == high else f"{low}{unit} to {high}{unit}"


def short_date(iso: str | None) -> str:
    """``2026-12-05T23:50:56+00:00`` as ``2026-12-05 23:50 UTC``."""
    if not iso:
        return "not recorded"
    when = datetime.datetime.fromisoformat(iso).astimezone(datetime.timezone.utc)
    return when.strftime("%Y-%m-%d %H:%M UTC")


def short_commit(commit: str | None) -> str:
    """A commit as its first 7 hex digits (and ``+changes`` when the tree was dirty)."""
    if not commit:
        return "not recorded"
    sha, _, rest = commit.partition("+")
    return sha[:7] + (f"+{rest}" if rest else "")


def portable_command(command: str) -> str:
    """A recorded command without the recording machine's paths: ``--data /x/y`` becomes
    ``--data $TPSGD_DATA`` and an environment prefix such as ``PYTHONPATH=/tmp/z`` is dropped.

    Examples
    --------
    >>> portable_command("PYTHONPATH=/tmp/x python b.py --data /srv/data --n 3")
    'python b.py --data $TPSGD_DATA --n 3'
    """
    command = re.sub(r"^(\w+=\S+\s+)+", "", command)
    command = re.sub(r"(--data[ =])/\S+", r"\1$TPSGD_DATA", command)
    return re.sub(r"(?<=\s)/\S+", "PATH", command)


def _machine(header: dict) -> str:
    torch = f", torch {header['torch']}" if header.get("torch") else ""
    threads = header.get("torch_threads")
    threads = f", {threads} torch thread{'s' if threads != 1 else ''}" if threads else ""
    return f"{header.get('machine', 'machine not recorded')}{torch}{threads}"


def provenance(header: dict, machine: bool = True) -> str:
    """One line: command, commit, machine and date of a recorded run."""
    command = portable_command(header.get("command") or "not recorded")
    where = f"{_machine(header)}, " if machine else ""
    return (
        f"`{command}` (commit {short_commit(header.get('commit'))}, {where}"
        f"{short_date(header.get('date'))})"
    )


def runs_block(headers: dict[str, dict]) -> str:
    """A list of the runs a section's figures come from, one line each (the machine once
    when they share it)."""
    machines = {_machine(h) for h in headers.values()}
    shared = len(machines) == 1
    lines = [f"- {name}: {provenance(h, not shared)}" for name, h in headers.items()]
    if shared:
        lines.append(f"- machine: {machines.pop()}")
    return "\n".join(lines)


def load(name: str, folder: Path = RESULTS) -> dict:
    """The results file ``folder/NAME.json`` (an empty dict when it is absent)."""
    path = folder / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}


# ---------------------------------------------------------------- paper tables

RULE_NAMES = {
    "bp": "backprop",
    "dfa": "DFA",
    "sdfa": "sDFA",
    "drtp": "DRTP",
    "tpsgd_l1": "`tpsgd_l1` (binary P)",
    "tpsgd_l2": "`tpsgd_l2` (normal P)",
    "tpsgd_l2_gated": "`tpsgd_l2_gated` (normal P, gated; the default)",
    "tpsgd_ce": "`fixed_readout_ce` (fixed random readout, one-hot CE)",
    "tpsgd_ce_ls": "`fixed_readout_ce_ls` (fixed random readout, smoothed CE)",
    "tpsgd_head": "`local_head` (learned local head)",
    "forward_grad": "`forward_grad`",
    "bitflip": "`bitflip` (1-bit weights)",
    "torch_bp": "plain `torch.nn` + autograd",
}
CURRENT = {
    "tpsgd_ce": "fixed_readout_ce",
    "tpsgd_ce_ls": "fixed_readout_ce_ls",
    "tpsgd_head": "local_head",
}
"""Rules recorded under their former names, and what they are called now."""
RULE_NAMES |= {  # results recorded under the rules' current names
    "fixed_readout_ce": RULE_NAMES["tpsgd_ce"],
    "fixed_readout_ce_ls": RULE_NAMES["tpsgd_ce_ls"],
    "local_head": RULE_NAMES["tpsgd_head"],
}


def short_name(rule: str) -> str:
    """A rule's name without its description (tables after the first that describes it)."""
    return RULE_NAMES.get(rule, rule).split(" (")[0]


def _accuracy_table(rows: dict, step_time: dict) -> str:
    bp_ms = step_time.get("bp", {}).get("ms_median")
    out = []
    for rule, r in rows.items():
        step = step_time.get(rule, {})
        speed = ratio(step.get("ratio_to_bp")) if step else "-"
        if rule == "bp" and bp_ms:
            speed += f" ({bp_ms:.2f} ms)"
        seeds = " / ".join(f"{a:.2f}" for a in r["accuracies"])
        out.append(
            [
                RULE_NAMES.get(rule, rule),
                mean_std(r["accuracy_mean"], r["accuracy_std"]),
                seeds,
                speed,
            ]
        )
    return table(["rule", "test accuracy % (mean ± std)", "per seed", "step time / backprop"], out)


FIXED_PROJECTION = ("tpsgd_l1", "tpsgd_l2", "tpsgd_ce", "tpsgd_ce_ls")  # no learned part


def best_local(rows: dict) -> tuple[str, dict]:
    """The most accurate rule other than backprop in a table's rows."""
    name = max((r for r in rows if r != "bp"), key=lambda r: rows[r]["accuracy_mean"])
    return name, rows[name]


@renderer(
    "paper_tables",
    "Paper tables: MNIST MLP and CNN",
    "paper_tables.py",
    10,
    plots=("memory_depth.png",),
)
def paper_tables(results: dict) -> str:
    tanh = load("paper_tables_tanh")
    paper = results["paper"]
    step = results.get("step_time", {})
    settings = results["runs"]["mlp"]
    parts = [
        f"{len(results['seeds'])} seeds, {results['epochs']} epoch, batch "
        f"{settings['batch_size']}, Adam lr {settings['settings']['bp']['lr']:g} for every rule, "
        "leaky ReLU hidden layers, each rule at its library defaults. The paper's own figures "
        "are quoted from its Tables 2 and 3 (its protocol, not rerun here).",
        f"**Table 2: MLP 784-256-256-10** (paper: tpSGD {paper['mlp']['tpsgd']} %, ZORB "
        f"{paper['mlp']['zorb']} %, LM-KARNet {paper['mlp']['lm_karnet']} %)",
        _accuracy_table(results["mlp"], step.get("mlp", {})),
        f"**Table 3: CNN, two Conv2d 16@5x5 + Linear** (paper: tpSGD {paper['cnn']['tpsgd']} %, "
        f"BP {paper['cnn']['bp']} %)",
        _accuracy_table(results["cnn"], step.get("cnn", {})),
    ]
    if tanh:
        parts += [
            "**Table 2 with tanh hidden layers** (`paper_tables_tanh.json`): the rules whose "
            "signal never shrinks (sDFA, DRTP) need a saturating activation.",
            table(
                ["rule", "leaky ReLU", "tanh"],
                [
                    [
                        short_name(rule),
                        mean_std(
                            results["mlp"][rule]["accuracy_mean"],
                            results["mlp"][rule]["accuracy_std"],
                        )
                        if rule in results["mlp"]
                        else "-",
                        mean_std(r["accuracy_mean"], r["accuracy_std"]),
                    ]
                    for rule, r in tanh["mlp"].items()
                ],
            ),
        ]
    parts += [_edge(results), _memory(results), _depth(results)]
    headers = dict(results["runs"])
    headers.update({f"tanh {k}": v for k, v in tanh.get("runs", {}).items()})
    parts.append("Runs (each merged its part into the JSON):\n\n" + runs_block(headers))
    return "\n\n".join(parts)


def _edge(results: dict) -> str:
    bp = {net: results[net]["bp"]["accuracy_mean"] for net in ("mlp", "cnn")}
    rows = []
    for net, label in (("mlp", "MLP 784-256-256-10"), ("cnn", "CNN 2x16@5x5 + Linear")):
        for rule, r in results.get("edge", {}).get(net, {}).items():
            rows.append(
                [
                    label,
                    short_name(rule),
                    mean_std(r["accuracy_mean"], r["accuracy_std"])
                    if len(r["accuracies"]) > 1
                    else f"{r['accuracy_mean']:.2f}",
                    len(r["accuracies"]),
                    f"{r['accuracy_mean'] - bp[net]:+.1f}",
                ]
            )
    return "**Forward gradients and bit flips on the same nets**\n\n" + table(
        ["net", "rule", "test accuracy %", "seeds", "vs backprop (points)"], rows
    )


def _memory(results: dict) -> str:
    memory = results.get("memory", {})
    depths = sorted({d for rule in memory.values() for d in rule}, key=int)
    rows = [
        [d] + [f"{memory[rule][d]['activation_bytes'] / 1024:,.0f}" for rule in memory]
        for d in depths
    ]
    return (
        "**Activations held by one MLP training step** (KiB; hidden layers of 256, batch 128; "
        "a local rule holds one layer's at a time)\n\n"
        + table(["hidden layers"] + [short_name(r) for r in memory], rows)
        + "\n\n![Activations held against depth](benchmarks/results/memory_depth.png)"
    )


def _depth(results: dict) -> str:
    depth = results.get("depth_step_time", {})
    if not depth:
        return ""
    rules = list(next(iter(depth.values())))
    rows = [[d] + [ratio(depth[d][r]["ratio_to_bp"]) for r in rules] for d in depth]
    return (
        "**Step time against depth** (MLP, hidden layers of 256, median step time / this "
        "library's backprop)\n\n" + table(["hidden layers"] + [short_name(r) for r in rules], rows)
    )


# ---------------------------------------------------------------- stream throughput


def paired_ratio(row: dict, reference: dict) -> float:
    """Median over seeds of ``row``'s samples/s over ``reference``'s in the same seed's run.

    Examples
    --------
    >>> paired_ratio({"samples_per_s_runs": [2, 4, 9]}, {"samples_per_s_runs": [1, 1, 3]})
    3.0
    """
    runs = zip(row["samples_per_s_runs"], reference["samples_per_s_runs"])
    return float(statistics.median(a / b for a, b in runs))


def _throughput_rows(stream: dict) -> dict[tuple[str, str], dict]:
    return {(r["model"], r["path"]): r for r in stream["results"]}


DEFAULT_MODEL = "TPSGDClassifier (tpsgd_head)"  # the default when it was measured
THROUGHPUT_LINK = "[stream throughput](#stream-throughput-river-deep-river-and-a-pytorch-loop)"
DEEP_RIVER = "deep-river MultiLayerPerceptron"
# rows kept in the JSON but not on the page: another fixed-matrix rule, the learn_many path
# through the pipeline, bitflip / forward gradients measured before their defaults (#19), and
# deep-river's pre-scaled rows (the ratios of ours still use them)
HIDDEN_THROUGHPUT = ("(tpsgd_ce)", "(forward_grad)", "(bitflip)")


def _shown_throughput_row(row: dict) -> bool:
    if row["model"] == DEEP_RIVER and row["path"] != "learn_one":
        return False
    return row["path"] != "learn_many" and not any(s in row["model"] for s in HIDDEN_THROUGHPUT)


@renderer(
    "stream_throughput",
    "Stream throughput: river, deep-river and a PyTorch loop",
    "stream_throughput.py",
    20,
    plots=("throughput.png",),
)
def stream_throughput(results: dict) -> str:
    parts = [
        f"Prequential accuracy (predict, then learn), every contender behind an online "
        f"standardisation, one hidden layer of {results['hidden_layer_sizes'][0]}, Adam lr "
        f"{results['lr']:g}, minibatch {results['batch']} (deep-river: one step per sample), "
        f"{results['repeats']} interleaved runs per contender (seeds 0-{results['repeats'] - 1}), "
        f"deep-river {results.get('deep_river', 'not installed')}. Ratios are paired: the "
        "median over seeds of the ratio between two contenders' runs of the same seed, which "
        "ran seconds apart. *model only* feeds the model pre-scaled rows (no river pipeline)."
    ]
    for name, stream in results["streams"].items():
        rows = stream["results"]
        by_key = _throughput_rows(stream)
        loop = next(r for r in rows if r["model"].startswith("PyTorch loop"))
        out = []
        for r in filter(_shown_throughput_row, rows):
            deep = by_key.get((DEEP_RIVER, r["path"]))
            vs_deep = "" if deep is None or deep is r else ratio(paired_ratio(r, deep), 1)
            accuracy = "-" if "no-op" in r["model"] else pct(r["accuracy"], 2)
            out.append(
                [
                    r["model"],
                    r["path"],
                    accuracy,
                    f"{r['samples_per_s_median']:,}",
                    ratio(paired_ratio(r, loop)),
                    vs_deep,
                ]
            )
        parts.append(
            f"**{name}** ({stream['n_samples']:,} samples, {stream['n_features']} features, "
            f"{stream['n_classes']} classes)\n\n"
            + table(
                [
                    "model",
                    "path",
                    "accuracy %",
                    "samples/s, median",
                    "vs PyTorch loop",
                    "vs deep-river, same path",
                ],
                out,
            )
        )
    parts.append("![Prequential throughput](benchmarks/results/throughput.png)")
    breakdown = load("learn_one_breakdown")
    if breakdown:
        us = breakdown["us_per_sample"]
        parts.append(
            f"**Where a `learn_one` sample's time goes** (digits, `{breakdown['rule']}`, batch "
            f"{breakdown['batch_size']}, best of {breakdown['repeats']}; "
            f"`learn_one_breakdown.json`, {provenance(breakdown)}): "
            + ", ".join(f"{k.replace('_', ' ')} {v:.1f}" for k, v in us.items())
            + " µs per sample."
        )
        if "small_updates" in breakdown:
            parts.append(small_updates(breakdown["small_updates"]))
    return "\n\n".join(parts)


def small_updates(results: dict) -> str:
    """The small updates of the defaults (issue #19), before and after, as one table."""
    rows = [
        [name, f"{r['us_before']:.0f} µs", f"{r['us_after']:.0f} µs", ratio(r["speedup"]), "-"]
        for name, r in results["steps"].items()
    ]
    rows += [
        [
            name,
            f"{r['samples_per_s_before']:,}",
            f"{r['samples_per_s_after']:,}",
            ratio(r["speedup"]),
            f"{r['scaler_ceiling_samples_per_s']:,}",
        ]
        for name, r in results["streams"].items()
    ]
    return (
        f"**Small updates of the defaults** (64-128-10 steps, then samples/s behind "
        f"`StandardScaler`; {results['clock']}; before: "
        f"{short_commit(results['baseline_commit'])})\n\n"
        + table(["", "before", "after", "speedup", "scaler alone"], rows)
    )


# ---------------------------------------------------------------- soak, fleet


@renderer("soak", "Soak: a million samples through one pipeline", "soak.py", 30)
def soak(results: dict) -> str:
    first, last = results["rss_first_last_mb"]
    return (
        f"`StandardScaler() | TPSGDClassifier()` at its defaults, `predict_one` then "
        f"`learn_one` on {results['n_samples']:,} samples of a synthetic stream whose features "
        "come and go and which gains a class at 40 %.\n\n"
        + table(
            ["measure", "value"],
            [
                ["errors", results["n_errors"]],
                ["RSS first -> last (process total, MB)", f"{first} -> {last}"],
                [
                    "RSS slope over the second half (MB per 100k samples)",
                    f"{results['rss_slope_mb_per_100k_after_half']:+.3f}",
                ],
                ["samples/s (scaler included)", f"{results['samples_per_s']:,}"],
                [
                    "features seen / classes",
                    f"{results['n_features_seen']} / {len(results['classes'])}",
                ],
                ["prequential accuracy, last 20,000 samples %", pct(results["accuracy_last_20k"])],
                [
                    "accuracy on the late class, second half %",
                    pct(results["late_class_accuracy_second_half"]),
                ],
            ],
        )
    )


@renderer("fleet", "Fleet: many keyed streams, in process and on Ray", "fleet.py", 70)
def fleet(results: dict) -> str:
    rows = [
        [
            r["backend"] + (", one actor killed half way" if r["killed_an_actor"] else ""),
            r["shards"] if r["backend"] != "local" else "-",
            f"{r['samples_per_s']:,.0f}",
            f"{r['overhead_us_per_sample']:.0f}" if r["backend"] != "local" else "-",
            pct(r["accuracy_last_10pct"]),
            span(r["recovery_seconds"], unit=" s") if r["recovery_seconds"] else "-",
        ]
        for r in results["runs"]
    ]
    return (
        "Independent models keyed by stream, fed one sample of each stream in turn; the Ray "
        "backend checkpoints every shard and replays the calls since its checkpoint when an "
        "actor dies (identical accuracy in every row: no sample lost).\n\n"
        + table(
            [
                "backend",
                "actors",
                "samples/s",
                "overhead µs/sample vs local",
                "accuracy, last 10 %",
                "recovery",
            ],
            rows,
        )
    )


# ---------------------------------------------------------------- drift recovery

FULL_RETRAINING = ("river_retrain", "scratch", "finetune")


def _drift_table(entry: dict) -> str:
    shifted = bool(entry["shifts"])
    columns = ["contender", "acc %"]
    columns += ["2,000 after shift 1 / 2 %", "delay"] if shifted else ["detections"]
    columns += [
        "adaptations (remaps) + refits",
        "MACs per detection vs full",
    ]
    rows = []
    for contender, m in entry["mean"].items():
        cells = [contender, pct(m["accuracy"])]
        if shifted:
            cells += [
                " / ".join(pct(v) for v in m["after_2000"]),
                " / ".join("-" if v is None else f"{v:.0f}" for v in m["delays"]),
            ]
        else:
            cells += [f"{m['detections']:.1f}"]
        if m["adapt_seconds"] is None and not m["remaps"]:
            cells += ["-"] * 2
        else:
            cells += [
                f"{m['adaptations']:.1f} ({m['remaps']:.1f}) + {m['refits']:.1f}",
                ratio(m.get("detection_vs_full")),
            ]
        rows.append(cells)
    return table(columns, rows)


def _stream_title(name: str, entry: dict) -> str:
    network = ", ".join(
        f"{k} {tuple(v) if isinstance(v, list) else v}" for k, v in entry["network"].items()
    )
    shifts = ", ".join(f"{k} at {s:,}" for k, s in zip(entry["kinds"], entry["shifts"]))
    title = f"**{name}** ({entry['n']:,} samples, {network}, batch {entry['batch_size']}, "
    title += f"shifts: {shifts or 'none planted'}"
    if "no_change" in entry:
        title += f"; no-change baseline {pct(entry['no_change'])} %"
    return title + ")"


def recovery_gains(results: dict, contender: str = "adaptor_tpsgd") -> list[dict]:
    """Per planted shift: ``contender``'s accuracy over the 2,000 samples after it, against
    the best full re-training (river's retraining classifier, scratch, fine-tuning)."""
    gains = []
    for name, entry in results.get("streams", {}).items():
        mean = entry["mean"]
        for i, kind in enumerate(entry["kinds"]):
            best = max(FULL_RETRAINING, key=lambda c: mean[c]["after_2000"][i])
            gains.append(
                {
                    "stream": name,
                    "kind": kind,
                    "best": best,
                    "best_acc": mean[best]["after_2000"][i],
                    "ours": mean[contender]["after_2000"][i],
                }
            )
    return gains


def _gains_table(results: dict) -> str:
    rows = [
        [
            f"{g['stream']}, {g['kind'].replace('_', ' ')} {i}",
            f"{pct(g['best_acc'])} ({g['best']})",
            pct(g["ours"]),
            f"{100 * (g['ours'] - g['best_acc']):+.1f}",
        ]
        for i, g in enumerate(recovery_gains(results), 1)
    ]
    return table(["stream, shift", "best full re-training %", "`adaptor_tpsgd` %", "points"], rows)


DRIFT_CONTENDERS = (
    "Contenders: **none** (learn on); **river_retrain** (`DriftRetrainingClassifier`, DDM); "
    "**scratch** / **finetune** (whole network re-trained after the cut, re-initialised or "
    "not); `DriftAdaptiveClassifier`, output layer only: **adaptor_plain**, **adaptor_frozen** "
    "(encoder frozen), **adaptor_tpsgd** (label remapping, refined cut, 3 refits), "
    "**adaptor_race** (depth 1-3 raced), **adaptor_bp** (on a backprop network), "
    "**adaptor_defaults** (no refits); Elec2: also river's ARF and HAT. Seed means; *MACs per "
    "detection vs full*: a repair's multiply-adds against a full re-training's."
)


def _drift(results: dict, stem: str) -> str:
    parts = [
        f"`{results['arch']}` hidden layers trained with `{results['rule']}`, seeds "
        f"{', '.join(map(str, results['seeds']))}, prequential, one sample at a time."
    ]
    for name, entry in results["streams"].items():
        plot = RESULTS / f"{stem}_{name}.png"
        link = f"\n\n![{name}](benchmarks/results/{plot.name})" if plot.exists() else ""
        parts.append(_stream_title(name, entry) + "\n\n" + _drift_table(entry) + link)
    if any(entry["shifts"] for entry in results["streams"].values()):
        parts.append("**After each planted shift** (2,000 samples)\n\n" + _gains_table(results))
    return "\n\n".join(parts)


@renderer("drift_recovery", "Drift recovery: MLP on image streams", "drift_recovery.py", 40)
def drift_recovery(results: dict) -> str:
    return DRIFT_CONTENDERS + "\n\n" + _drift(results, "drift_recovery")


@renderer("drift_recovery_cnn", "Drift recovery: CNN on image streams", "drift_recovery.py", 41)
def drift_recovery_cnn(results: dict) -> str:
    return _drift(results, "drift_recovery_cnn")


@renderer("drift_recovery_elec2", "Drift recovery: Elec2", "drift_recovery.py", 42)
def drift_recovery_elec2(results: dict) -> str:
    return (
        "Real prices with no planted shift; `elec2_window` adds causal features (each input "
        "minus its mean over the previous day).\n\n" + _drift(results, "drift_recovery")
    )


@renderer("adaptor_ceiling", "Adaptor ceiling after a rotation", "adaptor_ceiling.py", 43)
def adaptor_ceiling(results: dict) -> str:
    rows = []
    for stream, nets in results["streams"].items():
        for net, entry in nets.items():
            acc, macs = entry["accuracy"], entry["macs_vs_full"]
            for k in sorted({key.split()[0][2:] for key in acc if key.startswith("k=")}, key=int):

                def best(depth: int, k: str = k, acc: dict = acc) -> float:
                    keys = (f"k={k} depth={depth}", f"k={k} depth={depth} reinit")
                    return max(acc[key]["mean"] for key in keys if key in acc)

                rows.append(
                    [
                        f"{stream}, {net}",
                        f"{int(k):,}",
                        f"{pct(best(1))} ({ratio(macs['1'])})",
                        f"{pct(best(2))} ({ratio(macs['2'])})",
                        pct(best(3)),
                    ]
                )
    return (
        f"A network trained for one pass on the first regime, then its last layers re-trained "
        f"for {results['passes']} passes on the first k rotated samples (encoder frozen) and "
        "tested on later rotated samples; no detector in the way. Accuracy % (the better of "
        "re-initialised or not) and the multiply-adds against re-training the whole net.\n\n"
        + table(["stream, network", "k", "output layer only", "last two layers", "whole net"], rows)
    )


# ---------------------------------------------------------------- recurrent tables

VARIANTS = {
    "bp": "BPTT, sigmoid",
    "bp_tanh": "BPTT, tanh",
    "bp_tanh_clip": "BPTT, tanh, clipped",
    "drtp": "DRTP (paper)",
    "tpsgd_l1": "`tpsgd_l1` (paper)",
    "tpsgd_ce_tanh_k8": "**ours** (`fixed_readout_ce`, tanh, credit 8)",
    "tpsgd_ce_tanh_k16": "ours, credit 16",
    "control_tanh": "control (readout only)",
}
SETS = {
    "mnist_rows": "row-wise MNIST",
    "eeg": "EEG",
    "mnist1d": "MNIST-1D",
    "mnist1d_x4": "MNIST-1D (10 x 4)",
}


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


@renderer(
    "rnn_tables",
    "Recurrent tables: Elman networks",
    "rnn_tables.py",
    50,
    plots=("memory_seq_len.png",),
)
def rnn_tables(results: dict) -> str:
    quick, seeds = results["tables_quick"], results["quick_seeds012"]
    t5 = quick["table5"]
    sets = list(t5)
    parts = [
        "The paper's Table 5 (one layer), 7 (two stacked) and 8 (bidirectional), quick setting: "
        f"hidden {quick['setup']['hidden']}, {quick['setup']['epochs']} epochs, "
        f"{quick['setup']['train']:,} training samples, batch 128, Adam; accuracy of the last "
        "epoch. **Ours** is the default of `TPSGDSequenceClassifier`: a local cross-entropy per "
        "step through a fixed projection, its error sent back through the recurrent weights over "
        "8 steps (memory O(8), not O(T)).",
        "**Table 5, one seed** (`tables_quick`)\n\n"
        + table(
            ["variant"] + [SETS.get(s, s) for s in sets] + ["held / step (row-wise MNIST)"],
            [
                [VARIANTS.get(v, v)]
                + [f"{t5[s][v]['accuracy']:.2f}" for s in sets]
                + [_mb(t5[sets[0]][v]["held_bytes"])]
                for v in t5[sets[0]]
            ],
        ),
        "**Table 5, three seeds** (`quick_seeds012`, mean ± std %)\n\n"
        + table(
            ["variant"] + [SETS.get(s, s) for s in seeds["table5"]],
            [
                [VARIANTS.get(v, v)]
                + [
                    mean_std(
                        seeds["table5"][s][v]["accuracy_mean"],
                        seeds["table5"][s][v]["accuracy_std"],
                    )
                    for s in seeds["table5"]
                ]
                for v in next(iter(seeds["table5"].values()))
            ],
        ),
        "**Tables 7 (stacked) and 8 (bidirectional)**, row-wise MNIST\n\n"
        + table(
            ["variant", "Table 7 %", "Table 8 %"],
            [
                [
                    VARIANTS.get(v, v),
                    f"{quick['table7']['mnist_rows'][v]['accuracy']:.2f}",
                    f"{quick['table8']['mnist_rows'][v]['accuracy']:.2f}",
                ]
                for v in quick["table7"]["mnist_rows"]
            ],
        ),
    ]
    memory = {k: v for k, v in results["memory_current_implementation"].items() if k != "note"}
    lengths = list(next(iter(memory.values())))
    parts.append(
        "**Memory of one training step against the sequence length T** (batch 128, hidden 128; "
        "`memory_current_implementation`)\n\n"
        + table(
            ["T"] + [VARIANTS.get(v, v) for v in memory],
            [[t] + [_mb(memory[v][t]) for v in memory] for t in lengths],
        )
        + "\n\n![Memory against sequence length](benchmarks/results/memory_seq_len.png)"
    )
    parts.append(_longer_runs(results))
    shown = ("tables_quick", "quick_seeds012", *_long_labels(results))
    parts.append(_rnn_runs({k: results[k] for k in shown}))
    return "\n\n".join(parts)


def _rnn_runs(runs: dict[str, dict]) -> str:
    """The runs of the recurrent section: their common command once, their commits and dates;
    each run's own arguments are in the JSON under its label."""
    head = "python benchmarks/rnn_tables.py "
    tail = " --threads 1 --out benchmarks/results/rnn_tables.json"
    machines = sorted({_machine(run) for run in runs.values()})
    commits = sorted({short_commit(run.get("commit")) for run in runs.values()})
    dates = sorted(short_date(run.get("date")) for run in runs.values())
    return (
        f"Runs: `{head}ARGS{tail} --label LABEL`, on {', '.join(machines)}, commits "
        f"{', '.join(commits)}, {dates[0]} to {dates[-1]}; each label's ARGS, commit and date "
        "are in the JSON under that label."
    )


def _latest_long_runs(results: dict) -> dict[tuple[str, str], str]:
    """For each (data set, variant) of the full-data runs, the label of its latest run: the
    current figure (earlier runs stay in the JSON and in git)."""
    latest: dict[tuple[str, str], str] = {}
    for label, run in results.items():
        if not isinstance(run, dict) or run.get("setup", {}).get("quick", True):
            continue
        for data, variants in run["table5"].items():
            for variant in variants:
                held = latest.get((data, variant))
                if held is None or run.get("date", "") >= results[held].get("date", ""):
                    latest[(data, variant)] = label
    return latest


def _long_labels(results: dict) -> list[str]:
    shown = set(_latest_long_runs(results).values())
    return [label for label in results if label in shown]


def _longer_runs(results: dict) -> str:
    rows = []
    latest = _latest_long_runs(results)
    for label in _long_labels(results):
        for data, variants in results[label]["table5"].items():
            for variant, r in variants.items():
                if latest[(data, variant)] != label:
                    continue
                if "accuracy_mean" in r:
                    last, best = mean_std(r["accuracy_mean"], r["accuracy_std"]), "-"
                else:
                    last, best = f"{r['accuracy']:.2f}", f"{max(r['curve']):.2f}"
                rows.append([f"`{label}`", VARIANTS.get(variant, variant), last, best])
    return (
        "**Longer runs** (all training samples; the label names the data, width, epochs and "
        "learning rate; the latest run of each data set and variant)\n\n"
        + table(["run", "variant", "last epoch %", "best epoch %"], rows)
    )


@renderer("default_rule", "Choosing the default rule", "default_rule.py", 15)
def _default_rule(results: dict) -> str:
    """Each candidate rule on the MNIST MLP and on digits through the estimator."""
    rules = list(results["mlp"])
    rows = [
        [
            RULE_NAMES.get(rule, f"`{rule}`"),
            mean_std(results["mlp"][rule]["mean"], results["mlp"][rule]["std"]),
            mean_std(results["digits"][rule]["mean"], results["digits"][rule]["std"])
            if rule in results.get("digits", {})
            else "-",
        ]
        for rule in rules
    ]
    return (
        f"Seeds {', '.join(map(str, results['seeds']))}. The default must be a target "
        "projection rule (a fixed random projection of the label as each layer's target): the "
        "most accurate of those is the default; the others are one `rule=` away.\n\n"
        + table(["rule", "MNIST MLP, 1 epoch %", "digits, prequential %"], rows)
    )


@renderer("rule_defaults", "Every rule at its own defaults", "rule_defaults.py", 16)
def _rule_defaults(results: dict) -> str:
    """Each rule at its defaults on 14x14 MNIST through the estimator, gap to backprop."""
    runs = results["mnist14"]
    bp, margin = runs["bp"]["accuracy"]["mean"], results["margin"]
    rows = [
        [
            f"`{rule}`" if not rule.startswith("_") else "`sdfa`, B as drawn",
            f"{100 * r['accuracy']['mean']:.1f}",
            f"{100 * (r['accuracy']['mean'] - bp):+.1f}",
            f"{r['defaults']['activation']}, {r['defaults']['lr']:g}, "
            f"x{r['defaults'].get('hidden_lr_scale', 1):g}",
            " / ".join(f"{100 * v['mean']:.1f}" for v in r.get("by_hidden_lr_scale", {}).values())
            or "-",
            f"{100 * r['old_defaults']['mean']:.1f}",
        ]
        for rule, r in runs.items()
    ]
    digits = ", ".join(
        f"{RULE_DIGITS.get(rule, f'`{rule}`')} {100 * r['mean']:.1f}"
        for rule, r in results["digits"].items()
    )
    wide = ", ".join(f"`{rule}` {100 * m:.0f}" for rule, m in margin.items() if rule != "*")
    return (
        f"Mean of seeds {', '.join(map(str, results['seeds']))}; test accuracy %. Documented "
        f"margin: within {100 * margin['*']:.0f} points of backprop ({wide}). Defaults: "
        "activation, lr, hidden layers' multiple of lr (`hidden_lr_scale`). Digits, 5 "
        f"epochs: {digits}.\n\n"
        + table(
            ["rule", "acc.", "vs bp", "defaults", "hidden lr x0.1 / 0.3 / 1", "leaky ReLU, 1e-2"],
            rows,
        )
    )


RULE_DIGITS = {"_bench_bitflip_zero_grown": "`bitflip` grown at zero (before)"}


def _cell(result: dict | None) -> str:
    """``88.9 · 14,200/s`` (accuracy % and samples/s), ``-`` when absent."""
    return "-" if result is None else f"{pct(result['accuracy'])} · {result['samples_per_s']:,}/s"


def _speed_ratios(ours: dict, deep: dict | None) -> str:
    """``7.5x (10.1x)``: ours over deep-river's samples/s, behind the scaler (and alone)."""
    if deep is None:
        return "-"
    out = ratio(ours["samples_per_s"] / deep["samples_per_s"], 1)
    if "model_only_samples_per_s" in ours and "model_only_samples_per_s" in deep:
        alone = ours["model_only_samples_per_s"] / deep["model_only_samples_per_s"]
        out += f" ({ratio(alone, 1)})"
    return out


def _names(names: str | list[str]) -> str:
    """One name, or several joined by "and"."""
    return names if isinstance(names, str) else " and ".join(names)


@renderer(
    "short_streams", "Short streams: defaults against river and deep-river", "short_streams.py", 16
)
def _short_streams(results: dict) -> str:
    """Ours at the defaults against river's best linear model and deep-river's MLP."""
    parts = []
    compare = results.get("compare")
    if compare:
        deep = compare["deep_river"]
        rows = []
        for name, stream in compare["streams"].items():
            r = stream["results"]
            linear = max((k for k in r if k.startswith("river ")), key=lambda k: r[k]["accuracy"])
            label = f"{name} (held out)" if stream["held_out"] else name
            ours, mlp = r["TPSGDClassifier, defaults"], r.get("deep-river MultiLayerPerceptron")
            rows.append(
                [
                    label,
                    _cell(ours),
                    f"{_cell(r[linear])} ({linear.split()[-1].removesuffix('Regression')})",
                    _cell(mlp),
                    _speed_ratios(ours, mlp),
                ]
            )
        parts.append(
            "Prequential accuracy % · samples/s, seed 0, behind `StandardScaler`; defaults: "
            "least-squares readout per sample (margin 1), hidden minibatch 32, lr x0.1; speed "
            "of the pipelines (models alone: the scaler costs ~60 us a row); deep-river: 128 "
            "units, Adam lr 1e-2, a step per sample"
            f" ({deep.get('skipped') or 'deep-river ' + deep['deep_river']}).\n\n"
            + table(
                [
                    "stream",
                    "ours, defaults",
                    "river best linear",
                    "deep-river MLP",
                    "speed vs deep-river (model only)",
                ],
                rows,
            )
        )
    tune = results.get("tune")
    if tune:
        streams = tune["tuned_on"]
        shown = tune.get("shown", list(tune["rows"]))
        drift = "drifting" in tune
        rows = [
            [
                name,
                *(pct(row[s]["accuracy"]) for s in streams),
                pct(row["mean_accuracy"]),
                *([pct(row["drift_mean_accuracy"])] if drift else []),
            ]
            for name, row in tune["rows"].items()
            if name in shown
        ]
        more = len(tune["rows"]) - len(rows)
        drifting = f"; drift: {len(tune['drifting'])} drifting streams" if drift else ""
        parts.append(
            f"**Choosing the readout** (mean of seeds {', '.join(map(str, tune['seeds']))}"
            f"{drifting}; {_names(tune['held_out'])} held out; {more} more in the JSON)\n\n"
            + table(["candidate", *streams, "mean", *(["drift"] if drift else [])], rows)
        )
    threads = results.get("threads")
    if threads:
        rows = [
            [
                f"{c} (load {t['load_average']:.1f})" if "load_average" in t else c,
                f"{t['quickstart_s_before']:.2f}",
                f"{t['quickstart_s_after']:.2f}",
                ratio(t["speedup"], 1),
            ]
            for c, t in threads.items()
            if isinstance(t, dict) and "speedup" in t
        ]
        parts.append(
            "**README Quickstart, seconds** (median of runs; before: `torch_threads=None`, "
            f"torch's {threads['process_threads']} threads; after: the default scoping)\n\n"
            + table(["machine", "before", "after", "speed-up"], rows)
        )
    return "\n\n".join(parts)


SENSOR_SETS = {  # the panel of issue #18 (the summary's mean)
    "coffee": "Coffee",
    "pigcvp": "PigCVP",
    "chinatown": "Chinatown",
    "eeg5": "EEG, 5 classes",
    "mnist1d": "MNIST-1D (held out)",
}
SENSOR_ROWS = SENSOR_SETS | {"chinatown_full": "Chinatown, 345 test cases"}


def _last(curve: dict | None) -> str:
    """The accuracy after the most epochs run, and how many: ``0.909 (50)``."""
    if not curve:
        return "-"
    epochs = max(curve, key=int)
    return f"{curve[epochs]:.3f} ({epochs})"


def _final(method: dict | None) -> str:
    """A trained method's mean accuracy after its last epoch, with its seeds when not 3."""
    if not method:
        return "-"
    curve = method["accuracy_mean"]
    seeds = len(method["runs"])
    return f"{curve[max(curve, key=int)]:.3f}" + ("" if seeds == 3 else f" ({seeds})")


@renderer("sensor_panel", "Sensor panel: UCR sets, EEG and MNIST-1D", "sensor_panel.py", 25)
def _sensor_panel(results: dict) -> str:
    """Our default sequence model after 1, 10 and 50 epochs against backprop, 1-NN and
    MiniRocket."""
    rows = []
    for key, label in SENSOR_ROWS.items():
        s = results["sets"].get(key)
        if s is None:
            continue
        ours, rocket = s["ours"], s["minirocket"]
        curve = ours["accuracy_mean"]
        seconds = ours.get("train_seconds_at_mean", {})
        rows.append(
            [
                label,
                " / ".join(f"{curve[e]:.3f}" for e in sorted(curve, key=int)),
                _final(s.get("ours_bp")),
                f"{_final(s.get('conv'))} / {_final(s.get('conv_bp'))}" if "conv" in s else "-",
                f"{s['1nn_euclidean']['accuracy']:.3f}",
                f"{s['1nn_dtw']['accuracy']:.3f}",
                f"{rocket['accuracy']:.3f}",
                " / ".join(f"{seconds[e]:.0f}" for e in sorted(seconds, key=int))
                + f" vs {rocket.get('fit_seconds', float('nan')):.1f}",
                f"{ours['runs'][0]['model_tensor_bytes']:,}",
            ]
        )
    notes = "\n".join(f"- {note}" for note in results.get("notes", []))
    return (
        "`TPSGDSequenceClassifier()` (random kernels, delta-rule readout): accuracy after 1 / 10 "
        "/ 50 epochs, mean of 3 seeds (fewer in brackets); seconds at those epochs vs "
        "MiniRocket's fit. *bp*: its readout stepped by autograd. *conv*: three Conv1d layers "
        "by `local_head` / by backprop.\n\n"
        + table(
            ["set", "ours", "bp", "conv", "1-NN ED", "1-NN DTW", "MiniRocket", "seconds", "bytes"],
            rows,
        )
        + "\n\n"
        + notes
    )


STREAM_MODELS = {
    "causal_kernels": "causal kernels (default)",
    "elman": "Elman (previous)",
    "memoryless": "river, current step",
    "window_stats": "river, window stats",
    "no_change": "no change",
}


@renderer("sensor_stream", "Sensor stream: EEG chunks back to back", "sensor_stream.py", 26)
def _sensor_stream(results: dict) -> str:
    """The per-step model's front-ends against river models, prequential and held out."""
    tasks = results["tasks"]
    rows = []
    for key, label in STREAM_MODELS.items():
        cells = [
            f"{tasks[t][key]['prequential']:.3f} / {tasks[t][key]['held_out']:.3f}"
            if key in tasks[t]
            else "-"
            for t in tasks
        ]
        task = next((t for t in tasks.values() if key in t and "memoryless" in t), None)
        speed = None if task is None else task[key]["steps_per_s"]
        relative = None if task is None else speed / task["memoryless"]["steps_per_s"]
        rows.append([label, *cells, "-" if speed is None else f"{speed:,.0f} ({ratio(relative)})"])
    return (
        f"{results['chunks']} training chunks of {results['chunk_steps']} steps, each step "
        "labelled with its chunk's class, predicted then learned (prequential); then "
        f"{results['test_chunks']} test chunks only predicted (held out: no label learned; "
        "*no change*, which repeats the last label, is a constant guess there).\n\n"
        + table(
            ["model", *(f"{t}: prequential / held out" for t in tasks), "steps/s (vs current)"],
            rows,
        )
    )


# ---------------------------------------------------------------- generic, summary


def generic(results: dict) -> str:
    """A table of a results file's top-level numbers and strings (for a file no renderer
    claims).

    Examples
    --------
    >>> print(generic({"command": "x", "samples_per_s": 12.5, "runs": [1, 2]}))
    | key | value |
    |---|---|
    | samples_per_s | 12.5 |
    | runs | 2 entries |
    """
    header = {"command", "commit", "machine", "date", "torch", "load_average"}
    rows = []
    for key, value in results.items():
        if key in header:
            continue
        if isinstance(value, (dict, list)):
            value = f"{len(value)} entries"
        rows.append([key, value])
    return table(["key", "value"], rows)


def _sensor_summary(results: dict) -> list[list[str]]:
    """The sensor panel's mean against MiniRocket's, the sets where 1-NN DTW wins (with
    Chinatown's full test split when measured)."""
    sets = {k: results["sets"][k] for k in SENSOR_ROWS if k in results.get("sets", {})}
    panel = [s for k, s in sets.items() if k in SENSOR_SETS]
    if not panel:
        return []

    def last(s):
        curve = s["ours"]["accuracy_mean"]
        return curve[max(curve, key=int)]

    ours = sum(map(last, panel)) / len(panel)
    rocket = sum(s["minirocket"]["accuracy"] for s in panel) / len(panel)
    below = [
        SENSOR_SETS[k]
        for k, s in sets.items()
        if k in SENSOR_SETS and last(s) < s["1nn_dtw"]["accuracy"]
    ]
    full = sets.get("chinatown_full")
    full_note = (
        f" (on 345 test cases {last(full):.3f} vs {full['1nn_dtw']['accuracy']:.3f})"
        if full and "Chinatown" in below
        else ""
    )
    return [
        [
            f"Sensor time series ({len(panel)} sets, `TPSGDSequenceClassifier()`)",
            f"mean accuracy {ours:.3f} vs MiniRocket {rocket:.3f}; below 1-NN DTW on "
            f"{len(below)} of {len(panel)} sets{': ' if below else ''}{', '.join(below)}"
            + full_note,
            "[sensor panel](#sensor-panel-ucr-sets-eeg-and-mnist-1d)",
        ]
    ]


def summary(folder: Path = RESULTS) -> str:
    """The page's first section: what the library achieves against backprop and its peers,
    each line computed from a results file."""
    rows = []
    paper = load("paper_tables", folder)
    if paper:
        for net, label in (("mlp", "MNIST MLP, 1 epoch"), ("cnn", "MNIST CNN, 1 epoch")):
            rule, r = best_local(paper[net])
            fixed, f = best_local({k: v for k, v in paper[net].items() if k in FIXED_PROJECTION})
            bp = paper[net]["bp"]["accuracy_mean"]
            step = paper.get("step_time", {}).get(net, {}).get(rule, {}).get("ratio_to_bp")
            rows.append(
                [
                    f"Accuracy without backprop ({label})",
                    f"`{CURRENT.get(rule, rule)}` {r['accuracy_mean']:.2f} % "
                    f"vs backprop {bp:.2f} % "
                    f"({r['accuracy_mean'] - bp:+.2f} points), step time {ratio(step)} backprop's; "
                    f"best fixed-matrix rule `{CURRENT.get(fixed, fixed)}` "
                    f"{f['accuracy_mean']:.2f} %; "
                    f"the paper's tpSGD: {paper['paper'][net]['tpsgd']} %",
                    "[paper tables](#paper-tables-mnist-mlp-and-cnn)",
                ]
            )
        memory = paper.get("memory", {})
        if "bp" in memory:
            deepest = max(memory["bp"], key=int)
            local = next(r for r in memory if r != "bp")
            held = {r: memory[r][deepest]["activation_bytes"] for r in ("bp", local)}
            rows.append(
                [
                    f"Activation memory, {deepest} hidden layers",
                    f"`{local}` holds {held[local] / 1024:,.0f} KiB at any depth; backprop "
                    f"{held['bp'] / 1024:,.0f} KiB ({held['bp'] / held[local]:.1f}x)",
                    "[paper tables](#paper-tables-mnist-mlp-and-cnn)",
                ]
            )
    rows += _rule_summary(load("rule_defaults", folder))
    rows += _short_summary(load("short_streams", folder))
    rows += _stream_summary(load("stream_throughput", folder))
    rows += _sensor_summary(load("sensor_panel", folder))
    rows += _sensor_stream_summary(load("sensor_stream", folder))
    drift, cnn = load("drift_recovery", folder), load("drift_recovery_cnn", folder)
    gains = recovery_gains(drift) + recovery_gains(cnn) if drift and cnn else []
    concept = [g["ours"] - g["best_acc"] for g in gains if g["kind"] == "label_swap"]
    covariate = [g["ours"] - g["best_acc"] for g in recovery_gains(cnn) if g["kind"] == "rotate"]
    mlp_rotations = [
        g["ours"] - g["best_acc"] for g in recovery_gains(drift) if g["kind"] == "rotate"
    ]
    if concept:
        per_detection = [
            m["detection_vs_full"]
            for r in (drift, cnn)
            for e in r["streams"].values()
            for c, m in e["mean"].items()
            if c == "adaptor_tpsgd"
        ]
        rows.append(
            [
                "Recovery after drift (image streams)",
                f"the drift adaptor (`adaptor_tpsgd`: output layer re-trained, or labels "
                f"remapped) beats the best full re-training by "
                f"{span([100 * g for g in concept], '{:+.1f}')} points after label swaps and "
                f"{span([100 * g for g in covariate], '{:+.1f}')} points after rotations on the "
                f"CNN (an MLP's encoder does not survive a rotation: "
                f"{span([100 * g for g in mlp_rotations], '{:+.1f}')} points), at "
                f"{span(per_detection, '{:.2f}', 'x')} the multiply-adds per detection",
                "[drift recovery](#drift-recovery-mlp-on-image-streams)",
            ]
        )
    rnn = load("rnn_tables", folder)
    if rnn:
        t5 = rnn["quick_seeds012"]["table5"]["mnist_rows"]
        memory = rnn["memory_current_implementation"]
        rows.append(
            [
                "Sequences (row-wise MNIST, 3 seeds)",
                f"ours {t5['tpsgd_ce_tanh_k8']['accuracy_mean']:.2f} % vs BPTT "
                f"{t5['bp_tanh']['accuracy_mean']:.2f} %; memory per step flat in T "
                f"({_mb(memory['tpsgd_ce_tanh_k8']['448'])} at T = 448, BPTT "
                f"{_mb(memory['bp_tanh']['448'])})",
                "[recurrent tables](#recurrent-tables-elman-networks)",
            ]
        )
    soak_results = load("soak", folder)
    if soak_results:
        rows.append(
            [
                "Long run",
                f"{soak_results['n_samples']:,} samples, {soak_results['n_errors']} errors, memory "
                f"slope {soak_results['rss_slope_mb_per_100k_after_half']:+.3f} MB per 100k "
                "samples",
                "[soak](#soak-a-million-samples-through-one-pipeline)",
            ]
        )
    return table(["question", "answer", "details"], rows)


def _rule_summary(results: dict) -> list[list[str]]:
    if not results:
        return []
    runs = {k: v["accuracy"]["mean"] for k, v in results["mnist14"].items() if k[0] != "_"}
    gaps = {k: runs["bp"] - v for k, v in runs.items() if k != "bp"}
    wide = {k: g for k, g in gaps.items() if g > results["margin"]["*"]}
    within = f"{len(gaps) - len(wide)} of {len(gaps)} rules within "
    within += f"{100 * max(g for k, g in gaps.items() if k not in wide):.1f} points of backprop"
    if wide:
        within += " (" + ", ".join(f"`{k}` {100 * g:.1f}" for k, g in wide.items()) + ")"
    return [
        [
            "Every rule at its own defaults (14x14 MNIST, `TPSGDClassifier`, 1 epoch)",
            within,
            "[rule defaults](#every-rule-at-its-own-defaults)",
        ]
    ]


def _sensor_stream_summary(results: dict) -> list[list[str]]:
    five = (results or {}).get("tasks", {}).get("five")
    if not five:
        return []
    ours, flat = five["causal_kernels"], five["memoryless"]
    return [
        [
            "Per-step model on an EEG stream (5 classes)",
            f"causal random kernels {ours['prequential']:.3f} prequential / "
            f"{ours['held_out']:.3f} held out vs a memoryless river model "
            f"{flat['prequential']:.3f} / {flat['held_out']:.3f}",
            "[sensor stream](#sensor-stream-eeg-chunks-back-to-back)",
        ]
    ]


def _short_summary(results: dict) -> list[list[str]]:
    compare = (results or {}).get("compare")
    if not compare:
        return []
    cells = []
    tuned = set(results.get("tune", {}).get("tuned_on", compare["streams"]))
    for name, stream in compare["streams"].items():
        if name not in tuned:  # (the others: in the section)
            continue
        r = stream["results"]
        ours, deep = r["TPSGDClassifier, defaults"], r.get("deep-river MultiLayerPerceptron")
        linear = max(r[k]["accuracy"] for k in r if k.startswith("river "))
        peers = pct(linear)
        if deep:
            peers += f", {pct(deep['accuracy'])}, {_speed_ratios(ours, deep)}"
        cells.append(f"{name} {pct(ours['accuracy'])} ({peers})")
    return [
        [
            "Short streams, defaults % (river linear, deep-river, speed vs it, model only)",
            "; ".join(cells),
            "[short streams](#short-streams-defaults-against-river-and-deep-river)",
        ]
    ]


def _stream_summary(results: dict) -> list[list[str]]:
    if not results:
        return []
    rows = []
    vs_deep, vs_loop = [], []
    for name, stream in results["streams"].items():
        by_key = _throughput_rows(stream)
        ours = by_key[(DEFAULT_MODEL, "learn_one")]
        deep = by_key.get((DEEP_RIVER, "learn_one"))
        loop = next(r for r in stream["results"] if r["model"].startswith("PyTorch loop"))
        if deep:
            vs_deep.append(f"{name} {paired_ratio(ours, deep):.1f}x")
        fast = by_key.get((DEFAULT_MODEL, "learn_many, model only"))
        if fast:
            vs_loop.append(f"{paired_ratio(fast, loop):.2f}x")
    if vs_deep:
        rows.append(
            [
                "Speed vs deep-river, `local_head` at a fixed minibatch of 32 (idle machine)",
                ", ".join(vs_deep) + " deep-river's samples/s",
                THROUGHPUT_LINK,
            ]
        )
    if vs_loop:
        rows.append(
            [
                "Speed vs a hand-written PyTorch loop (`learn_many`, 32-row frames)",
                " / ".join(vs_loop)
                + " the loop's samples/s ("
                + ", ".join(results["streams"])
                + ")",
                THROUGHPUT_LINK,
            ]
        )
    return rows


# ---------------------------------------------------------------- the page

INTRO = """\
# Benchmarks

This page is generated by `python benchmarks/render.py` from `benchmarks/results/*.json`; do not
edit it by hand. Each section names the command that produced its figures, the commit it ran
at, the machine and the date; earlier runs are in git history and in the commit-pinned JSON.
Data sets are read from `--data` or `$TPSGD_DATA`. A benchmark run without `--record` writes to
a scratch folder; with `--record` it writes to `benchmarks/results/` and re-renders this page.
Older runs use the rules' former names: `tpsgd_ce`, `tpsgd_ce_ls`, `tpsgd_head` are now
`fixed_readout_ce`, `fixed_readout_ce_ls`, `local_head`.
"""


def render_section(name: str, results: dict) -> str:
    """One benchmark's section: heading, provenance, body."""
    spec = REGISTRY.get(name)
    if spec is None:
        spec = Renderer(name.replace("_", " ").capitalize(), f"{name}.py", 1000, generic)
    lines = [
        f"## {spec.title}",
        "",
        f"Script: `benchmarks/{spec.script}`, results: `benchmarks/results/{name}.json`.",
    ]
    if "command" in results or "date" in results:
        lines += ["", "Run: " + provenance(results)]
    return "\n".join(lines) + "\n\n" + spec.body(results).strip() + "\n"


# results files shown inside another file's section
FOLDED = {"paper_tables_tanh": "paper_tables", "learn_one_breakdown": "stream_throughput"}


def render_page(folder: Path = RESULTS) -> str:
    """The whole page from the results files in ``folder``."""
    names = sorted(p.stem for p in folder.glob("*.json") if p.stem not in FOLDED)
    names.sort(key=lambda n: REGISTRY[n].order if n in REGISTRY else 1000)
    sections = [render_section(name, load(name, folder)) for name in names]
    return INTRO + "\n## Summary\n\n" + summary(folder) + "\n\n" + "\n".join(sections)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if BENCHMARKS.md differs from the render"
    )
    args = parser.parse_args(argv)
    page = render_page()
    if args.check:
        if not PAGE.exists() or PAGE.read_text() != page:
            print(f"{PAGE.name} is out of date: run python benchmarks/render.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(page)
    print(f"wrote {PAGE} ({len(page.encode()) / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
