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


def run(stream: dict, classifier, repeats: int) -> dict:
    """Prequential accuracy and speed of ``StandardScaler() | MLP`` on one stream: the
    accuracy of the first run (the MLP is seeded), the best speed of ``repeats`` runs; and
    with ``stream["scaled"]`` (rows ``(x to predict, x to learn, y)`` scaled beforehand as the
    scaler hands them on) the best speed of the MLP alone on them."""
    x, y = stream["x"], stream["y"]
    runs = [run_once(x, y, classifier) for _ in range(repeats)]
    out = {"accuracy": runs[0]["accuracy"], "samples_per_s": max(r["samples_per_s"] for r in runs)}
    if "scaled" in stream:
        alone = [run_alone(stream["scaled"], y, classifier) for _ in range(repeats)]
        out["model_only_samples_per_s"] = max(alone)
    return out


def mlp(n_features: int, y: list, classifier):
    """The MLP of the module's docstring for ``n_features`` inputs and the labels ``y``."""
    n_classes = len(set(map(json.dumps, y)))
    return classifier(
        n_features=n_features,
        n_width=WIDTH,
        n_layers=1,  # the input layer feeds the output: one hidden layer of WIDTH
        n_init_classes=n_classes,
        optimizer_fn="adam",
        lr=LR,
        is_class_incremental=True,
        seed=SEED,
    )


def run_alone(rows: list, y: list, classifier) -> float:
    """Samples/s of the MLP alone on rows scaled beforehand."""
    model = mlp(len(rows[0][0]), y, classifier)
    start = time.perf_counter()
    for seen, learned, yi in rows:
        model.predict_one(seen)
        model.learn_one(learned, yi)
    return len(rows) / (time.perf_counter() - start)


def run_once(x: list[dict], y: list, classifier) -> dict:
    from river import metrics, preprocessing

    model = preprocessing.StandardScaler() | mlp(len(x[0]), y, classifier)
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
    out = {name: run(s, MultiLayerPerceptron, repeats) for name, s in streams.items()}
    import river

    out["_versions"] = {
        "deep_river": deep_river.__version__,
        "river": river.__version__,
        "torch": torch.__version__,
    }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
