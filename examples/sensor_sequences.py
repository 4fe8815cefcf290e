"""EEG seizure detection on a stream of sensor sequences, learned without backprop through time.

Each 178-sample EEG chunk (UCI Epileptic Seizure Recognition) becomes a sequence of 45 steps of
4 consecutive samples (scaled by the training set's standard deviation). Two ways to learn:

- ``TPSGDSequenceClassifier``: one whole chunk per ``learn_one`` (prequential: predict, then
  learn), minibatches of padded sequences;
- ``TPSGDStreamingSequenceClassifier(encoder="elman", window=45)``: the same data as one
  sensor stream, one 4-channel step per ``learn_one``, the hidden state carried across calls
  and reset every 45 steps; the label of a chunk is predicted from its last step.

Usage::

    python examples/sensor_sequences.py --data ../shared/data     # or set TPSGD_DATA
    python examples/sensor_sequences.py --small                    # a few seconds
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
from river import metrics

from tpsgd_stream.datasets import load_eeg_seizure
from tpsgd_stream.models import TPSGDSequenceClassifier, TPSGDStreamingSequenceClassifier

STEPS, CHANNELS = 45, 4


def chunks(X: np.ndarray, scale: float) -> np.ndarray:
    """``(n, 178)`` samples -> ``(n, 45, 4)`` sequences (two zeros pad the last step)."""
    return (np.pad(X.astype(np.float64), ((0, 0), (0, 2))) / scale).reshape(-1, STEPS, CHANNELS)


def whole_sequences(X, y, *, hidden, batch_size, seed) -> float:
    model = TPSGDSequenceClassifier(
        encoder="elman", hidden_size=hidden, batch_size=batch_size, seed=seed
    )
    accuracy = metrics.Accuracy()
    for x, label in zip(X, y):
        accuracy.update(label, model.predict_one(x))
        model.learn_one(x, label)
    return accuracy.get()


def one_step_at_a_time(X, y, *, hidden, batch_size, seed) -> float:
    model = TPSGDStreamingSequenceClassifier(
        encoder="elman", hidden_size=hidden, batch_size=batch_size, window=STEPS, seed=seed
    )
    accuracy = metrics.Accuracy()
    for x, label in zip(X, y):
        for t, step in enumerate(x):
            reading = {f"ch{c}": value for c, value in enumerate(step)}
            if t == STEPS - 1:  # the chunk's verdict, from its last step
                accuracy.update(label, model.predict_one(reading))
            model.learn_one(reading, label)
    return accuracy.get()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="folder of eeg_seizure_uci.npz")
    parser.add_argument("--small", action="store_true", help="120 chunks, hidden 32")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # one small sequence at a time: threads only add overhead
    try:
        X_train, y_train, X_test, y_test = load_eeg_seizure(args.data)
    except FileNotFoundError as err:
        print(f"EEG data not available, nothing was run: {err}", file=sys.stderr)
        return 2
    X = chunks(np.concatenate([X_train, X_test]), float(np.std(X_train)))
    y = np.concatenate([y_train, y_test]).tolist()
    n, hidden = (120, 32) if args.small else (len(X), 128)
    print(f"{n} EEG chunks as {STEPS} steps x {CHANNELS} channels; {np.mean(y[:n]):.1%} seizure")
    for name, run in (
        ("whole sequences", whole_sequences),
        ("one step at a time", one_step_at_a_time),
    ):
        start = time.perf_counter()
        acc = run(X[:n], y[:n], hidden=hidden, batch_size=16, seed=args.seed)
        print(f"{name:>20}: prequential accuracy {acc:.2%} ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
