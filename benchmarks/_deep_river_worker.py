"""deep-river's side of ``short_streams.py``, run by another Python (a helper, not a benchmark).

deep-river 0.3.4 needs river 0.25, so it lives in its own environment; this file imports only
river, deep_river and the standard library. It reads ``{stream: {"x": [...], "y": [...]}}`` as
JSON on stdin, runs ``StandardScaler() | MultiLayerPerceptron`` prequentially (predict, then
learn) on each stream (``argv[1]`` times: the best speed counts) and writes ``{stream: {"accuracy",
"samples_per_s"}}`` as JSON on stdout; ``{"error": ...}`` when deep_river cannot be imported.

The MLP is what a fair user would pick to match ``TPSGDClassifier``'s defaults: one hidden layer
of 128 ReLU units, Adam at lr 1e-2, one update per sample (deep-river's design), the classes
known from the start (``n_init_classes``) and still allowed to grow.
"""

from __future__ import annotations

import json
import sys
import time

WIDTH, LR, SEED = 128, 1e-2, 0


def run(x: list[dict], y: list, classifier, repeats: int) -> dict:
    """Prequential accuracy and speed of ``StandardScaler() | MLP`` on one stream: the
    accuracy of the first run (the MLP is seeded), the best speed of ``repeats`` runs."""
    runs = [run_once(x, y, classifier) for _ in range(repeats)]
    return {"accuracy": runs[0]["accuracy"], "samples_per_s": max(r["samples_per_s"] for r in runs)}


def run_once(x: list[dict], y: list, classifier) -> dict:
    from river import metrics, preprocessing

    n_classes = len(set(map(json.dumps, y)))
    model = preprocessing.StandardScaler() | classifier(
        n_features=len(x[0]),
        n_width=WIDTH,
        n_layers=1,  # the input layer feeds the output: one hidden layer of WIDTH
        n_init_classes=n_classes,
        optimizer_fn="adam",
        lr=LR,
        is_class_incremental=True,
        seed=SEED,
    )
    accuracy = metrics.Accuracy()
    start = time.perf_counter()
    for xi, yi in zip(x, y):
        accuracy.update(yi, model.predict_one(xi))
        model.learn_one(xi, yi)
    seconds = time.perf_counter() - start
    return {"accuracy": accuracy.get(), "samples_per_s": len(x) / seconds}


def main() -> None:
    import torch

    torch.set_num_threads(1)  # as a user of small models is told to (ours sets it per call)
    try:
        import deep_river
        from deep_river.classification.zoo import MultiLayerPerceptron
    except Exception as error:  # (not installed, or a river it does not match)
        json.dump({"error": f"{type(error).__name__}: {error}"}, sys.stdout)
        return
    streams = json.load(sys.stdin)
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    out = {name: run(s["x"], s["y"], MultiLayerPerceptron, repeats) for name, s in streams.items()}
    import river

    out["_versions"] = {
        "deep_river": deep_river.__version__,
        "river": river.__version__,
        "torch": torch.__version__,
    }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
