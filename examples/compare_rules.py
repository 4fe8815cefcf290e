"""Compare the update rules side by side on one stream: BP, DFA, DRTP, tpSGD-l1/l2/ce.

Each rule trains the same network (one hidden layer of 128) on the same prequential stream of
scikit-learn digits; the script prints each rule's accuracy and speed and plots the accuracy
over the stream.

    python examples/compare_rules.py                      # 5,400 samples, compare_rules.png
    python examples/compare_rules.py --small --plot x.png # 600 samples (CI smoke test)
"""

import argparse

from river import preprocessing

from tpsgd_stream.cli.demo import prequential
from tpsgd_stream.cli.plotting import plot_stream_accuracy
from tpsgd_stream.drift import digits_shift_stream
from tpsgd_stream.models import TPSGDClassifier

RULES = ("bp", "dfa", "drtp", "tpsgd_l1", "tpsgd_l2", "fixed_readout_ce")


def main(n_samples: int = 5400, plot: str = "compare_rules.png") -> dict:
    stream = digits_shift_stream(shifts=[], n_samples=n_samples, seed=0)
    results = {}
    for rule in RULES:
        model = preprocessing.StandardScaler() | TPSGDClassifier(
            hidden_layer_sizes=(128,), rule=rule, seed=0
        )
        results[rule] = prequential(rule, model, stream)
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
    parser.add_argument("--plot", default="compare_rules.png")
    args = parser.parse_args()
    main(600 if args.small else 5400, args.plot)
