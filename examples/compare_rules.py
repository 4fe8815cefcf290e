"""Compare the update rules side by side on one stream: BP, DFA, DRTP, tpSGD-l1/l2/ce.

Each rule trains the same network (one hidden layer of 128) on the same prequential stream of
scikit-learn digits; the script prints each rule's accuracy and speed (after an untimed
warm-up of each rule, so that torch's start-up is not counted) and plots the accuracy over the
stream into ``--out`` (default: a new temporary folder, printed).

    python examples/compare_rules.py                     # 5,400 samples
    python examples/compare_rules.py --small --out runs  # 600 samples (CI smoke test)
"""

import argparse

from river import preprocessing

from tpsgd_stream.cli.demo import WARM_UP_SAMPLES, prequential
from tpsgd_stream.cli.output import output_folder
from tpsgd_stream.cli.plotting import plot_stream_accuracy
from tpsgd_stream.drift import digits_shift_stream
from tpsgd_stream.models import TPSGDClassifier

RULES = ("bp", "dfa", "drtp", "tpsgd_l1", "tpsgd_l2", "fixed_readout_ce")


def _model(rule: str):
    return preprocessing.StandardScaler() | TPSGDClassifier(
        hidden_layer_sizes=(128,), rule=rule, seed=0
    )


def main(n_samples: int = 5400, out: str | None = None) -> dict:
    plot = output_folder(out, "compare-rules") / "compare_rules.png"
    stream = list(digits_shift_stream(shifts=[], n_samples=n_samples, seed=0))
    for rule in RULES:  # untimed copies first: start-up is not counted
        prequential(rule, _model(rule), stream[:WARM_UP_SAMPLES])
    results = {}
    for rule in RULES:
        results[rule] = prequential(rule, _model(rule), stream)
        r = results[rule]
        print(f"{rule:<10} accuracy {r.accuracy:.3f}  {r.samples_per_second:7.0f} samples/s")
    plot_stream_accuracy(
        {rule: r.correct for rule, r in results.items()},
        plot,
        window=min(300, n_samples),
        title="Update rules on a stream of digits",
    )
    print(f"plot: {plot}")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="600 samples, for a smoke test")
    parser.add_argument("--out", help="folder for the PNG (default: a new temporary folder)")
    args = parser.parse_args()
    main(600 if args.small else 5400, args.out)
