"""Domain shift: a stream with planted shifts, adaptor-only repair on drift, metrics and a plot.

python examples/domain_shift.py              # 6,000 digits: rotation at 2,000, swap at 4,000
python examples/domain_shift.py --small      # 1,200 samples (CI smoke test)
python examples/domain_shift.py --out runs   # the PNG's folder (default: a new temporary one)
"""

import argparse

from river import preprocessing
from river.drift.binary import DDM

from tpsgd_stream.cli.output import output_folder
from tpsgd_stream.cli.plotting import plot_stream_accuracy
from tpsgd_stream.drift import DriftAdaptiveClassifier, digits_shift_stream
from tpsgd_stream.drift.metrics import accuracy_after, detection_report, recovery_time
from tpsgd_stream.models import TPSGDClassifier, TPSGDImageClassifier


def main(small: bool = False, out: str | None = None) -> dict:
    plot = output_folder(out, "domain-shift") / "domain_shift.png"
    stream = digits_shift_stream(n_samples=1200 if small else 6000, seed=0)  # rotate, swap
    shifts = [s.position for s in stream.shifts]
    net = dict(hidden_layer_sizes=(64,), seed=0)
    models = {
        "no adaptation": TPSGDClassifier(**net),
        # a label swap is remapped, a covariate shift re-trained (and refitted 3 times)
        "adaptor (ADWIN, remap)": DriftAdaptiveClassifier(
            TPSGDClassifier(**net), remap_labels=True, refine_cut=True, refits=3, seed=0
        ),
        "adaptor (DDM, background)": DriftAdaptiveClassifier(
            TPSGDClassifier(**net), detector=DDM(), background=True, seed=0
        ),
        # the paper's convolutional net: its convolutions are the frozen encoder after a drift
        "CNN adaptor (ADWIN, remap)": DriftAdaptiveClassifier(
            TPSGDImageClassifier(image_shape=(8, 8), seed=0), refine_cut=True, refits=3, seed=0
        ),
    }
    pipelines = {name: preprocessing.StandardScaler() | m for name, m in models.items()}
    correct = {name: [] for name in models}
    for x, y in stream:  # prequential: predict, then learn
        for name, pipeline in pipelines.items():
            correct[name].append(pipeline.predict_one(x) == y)
            pipeline.learn_one(x, y)
    detections = {}
    for name, model in models.items():
        events = getattr(model, "drift_events", [])
        detections[name] = [e.index for e in events if e.action not in ("ignored", "refit")]
        after = accuracy_after(correct[name], shifts, n=500)
        report = detection_report(detections[name], shifts)
        print(
            f"{name:27s} acc after each shift {[round(a, 3) for a in after]}  "
            f"recovery {recovery_time(correct[name], shifts)}  delays {report.delays}  "
            f"false alarms {report.false_alarms}  actions {[e.action for e in events]}"
        )
    plot_stream_accuracy(correct, plot, shifts=shifts, detections=detections)
    print(f"plot written to {plot}")
    return correct


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a short stream, for a smoke test")
    parser.add_argument("--out", help="folder for the PNG (default: a new temporary folder)")
    args = parser.parse_args()
    main(args.small, args.out)
