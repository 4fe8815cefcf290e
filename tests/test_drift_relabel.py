"""Label permutations: estimated from a confusion matrix, remapped in the classifier."""

import numpy as np
import pytest
import torch

from tpsgd_stream.drift.relabel import estimate_permutation
from tpsgd_stream.models import TPSGDClassifier


def test_a_planted_permutation_is_recovered_despite_noise():
    rng = np.random.default_rng(0)
    classes = list(range(10))
    planted = dict(zip(classes, rng.permutation(10).tolist()))
    predicted = rng.integers(0, 10, 500).tolist()
    labels = [planted[p] if rng.random() < 0.7 else int(rng.integers(0, 10)) for p in predicted]
    mapping, agreement, identity = estimate_permutation(predicted, labels, classes)
    assert mapping == {k: v for k, v in planted.items() if k != v}
    assert agreement > 0.7 and identity < agreement - 0.3


def test_agreeing_predictions_and_classes_without_evidence_stay_put():
    mapping, agreement, identity = estimate_permutation([0, 1, 1], [0, 1, 1], [0, 1, 2, 3])
    assert mapping == {} and agreement == identity == 1.0
    assert estimate_permutation([], [], [0, 1]) == ({}, 0.0, 0.0)
    # unknown predictions (None, a label never seen) are skipped, not matched
    assert estimate_permutation([None, "z"], ["a", "b"], ["a", "b"])[0] == {}


def _trained(batch_size=4):
    model = TPSGDClassifier(hidden_layer_sizes=(8,), batch_size=batch_size, seed=0)
    rng = np.random.default_rng(0)
    for i in range(42):  # 10 updates and 2 samples waiting in the buffer
        label = ["cat", "dog", "eel"][i % 3]
        model.learn_one({"a": rng.normal() + i % 3, "b": rng.normal()}, label)
    return model


def test_remapping_permutes_predictions_and_leaves_every_weight_bit_identical():
    model = _trained()
    weights = [p.detach().clone() for p in model.network.parameters()]
    x = {"a": 1.0, "b": -0.5}
    before = model.predict_proba_one(x)
    waiting = [model._classes[u] for u in model._buffer_y[: model._n_buffered]]
    model.permute_classes({"cat": "dog", "dog": "eel", "eel": "cat"})
    after = model.predict_proba_one(x)
    assert after == {"dog": before["cat"], "eel": before["dog"], "cat": before["eel"]}
    assert all(torch.equal(a, b) for a, b in zip(weights, model.network.parameters()))
    # the samples in the buffer keep their labels (under the new units)
    assert [model._classes[u] for u in model._buffer_y[: model._n_buffered]] == waiting
    assert {model._classes[u]: u for u in range(3)} == model._class_index


@pytest.mark.parametrize(
    "mapping", [{"cat": "dog"}, {"cat": "fox", "fox": "cat"}, {"cat": "eel", "dog": "eel"}]
)
def test_a_mapping_that_is_not_a_permutation_of_known_labels_is_refused(mapping):
    model = _trained()
    classes = list(model._classes)
    with pytest.raises(ValueError, match="permute known labels"):
        model.permute_classes(mapping)
    assert model._classes == classes


def test_two_classes_are_swapped_only_when_the_swap_is_clear():
    rng = np.random.default_rng(0)
    predicted = rng.integers(0, 2, 400).tolist()
    poor = [p if rng.random() < 0.4 else 1 - p for p in predicted]  # 40 % right: a poor model
    flipped = [1 - p if rng.random() < 0.9 else p for p in predicted]  # a label flip
    assert estimate_permutation(predicted, poor, [0, 1])[0] == {}
    assert estimate_permutation(predicted, flipped, [0, 1])[0] == {0: 1, 1: 0}
