"""Quickstart: a tpSGD classifier in a river pipeline, evaluated prequentially.

python examples/quickstart.py            # the whole Phishing stream (1,250 samples)
python examples/quickstart.py --small    # the first 300 samples (CI smoke test)
"""

import argparse
import itertools

from river import datasets, evaluate, metrics, preprocessing

from tpsgd_stream.models import TPSGDClassifier


def main(small: bool = False) -> metrics.Accuracy:
    stream = datasets.Phishing()
    if small:
        stream = itertools.islice(stream, 300)
    model = preprocessing.StandardScaler() | TPSGDClassifier(hidden_layer_sizes=(64,), seed=0)
    accuracy = evaluate.progressive_val_score(stream, model, metrics.Accuracy(), print_every=250)
    print(f"final {accuracy}")
    return accuracy


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a short stream, for a smoke test")
    main(parser.parse_args().small)
