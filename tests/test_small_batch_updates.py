"""The default classifier's small-batch updates, pinned against the update written out by hand.

``TPSGDClassifier`` with a minibatch ramp from 1 makes hundreds of tiny updates of every layer
on a short stream, and the engine takes shortcuts on them (skipped work, fused ops); this file
checks that the weights after a stream are those of the plain formulas: ``tpsgd_l2_gated`` on
the hidden layer, softmax cross-entropy on the readout, Adam on both, classes added on the way.
(The per-sample readout, the default, has its own checks in ``test_readout_cadence.py``.)
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import act_by_hand, slope_by_hand, softmax_by_hand

from tpsgd_stream.engine.network import Network
from tpsgd_stream.models import TPSGDClassifier

N_FEATURES, HIDDEN, MARGIN, LR = 6, 128, 0.8, 1e-2
BETAS, EPS = (0.9, 0.999), 1e-8


def stream(n: int = 160, seed: int = 0) -> list[tuple[dict, int]]:
    """Three noisy clusters; class 2 first appears at sample 40 (the readout grows)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 2.0, (3, N_FEATURES))
    out = []
    for i in range(n):
        label = i % 2 if i < 40 else i % 3
        row = centres[label] + rng.normal(0.0, 1.0, N_FEATURES)
        out.append(({f"f{j}": float(v) for j, v in enumerate(row)}, label))
    return out


class AdamByHand:
    """Adam on one tensor, ``torch.optim.Adam``'s update written out; rows it gains start at 0."""

    def __init__(self, param: torch.Tensor):
        self.param, self.t = param, 0
        self.m, self.v = torch.zeros_like(param), torch.zeros_like(param)

    def grow_rows(self, n_new: int) -> None:
        pad = torch.zeros(n_new, *self.param.shape[1:])
        self.param, self.m, self.v = (torch.cat([t, pad]) for t in (self.param, self.m, self.v))

    def step(self, grad: torch.Tensor) -> None:
        b1, b2 = BETAS
        self.t += 1
        self.m = b1 * self.m + (1 - b1) * grad
        self.v = b2 * self.v + (1 - b2) * grad * grad
        m_hat, v_hat = self.m / (1 - b1**self.t), self.v / (1 - b2**self.t)
        self.param = self.param - LR * m_hat / (v_hat.sqrt() + EPS)


class DefaultByHand:
    """A hidden layer trained by ``tpsgd_l2_gated`` (margin 0.8, leaky ReLU), a readout by
    cross-entropy, both by Adam; started from the initial weights of ``Network.mlp``."""

    def __init__(self, projection: torch.Tensor, seed: int):
        start = Network.mlp(N_FEATURES, (HIDDEN,), 1, seed=seed)  # the initial weights only
        self.opts = [AdamByHand(p.detach().clone()) for p in start.parameters()]
        self.projection = projection
        self.gated = self.learning = 0

    def add_class(self) -> None:
        for opt in self.opts[2:]:  # the readout's weight and bias
            opt.grow_rows(1)

    def step(self, x: torch.Tensor, labels: list[int]) -> None:
        w1, b1, w2, b2 = (opt.param for opt in self.opts)
        n, k = len(labels), w2.shape[0]
        target = torch.eye(k)[labels]
        z = x @ w1.T + b1
        a = act_by_hand("leaky_relu", z)
        p = self.projection[:k]
        dist = ((a[:, None, :] - p[None]) ** 2).sum(2)  # ||a - P_c||^2, (n, k)
        keep = torch.ones(n, dtype=torch.bool)
        if k > 1:
            own = dist[torch.arange(n), labels]
            other = dist.masked_fill(target > 0, math.inf).min(1).values
            keep = own > MARGIN * other
        self.gated += int((~keep).sum())
        self.learning += int(keep.sum())
        delta1 = keep[:, None] * 2.0 * (a - target @ p) * slope_by_hand("leaky_relu", z) / n
        delta2 = (softmax_by_hand(a @ w2.T + b2) - target) / n
        for opt, grad in zip(self.opts, (delta1.T @ x, delta1.sum(0), delta2.T @ a, delta2.sum(0))):
            opt.step(grad)


def ramp(n_batched: int, batch_size: int, over: int) -> int:
    return min(batch_size, 1 + n_batched * batch_size // over)


@pytest.mark.parametrize("batch_size, over", [(8, 256), (32, 4096)])
def test_default_classifier_matches_its_update_by_hand(batch_size, over):
    """After a stream of single samples and small minibatches, with a class added on the way,
    the weights of ``TPSGDClassifier`` at its defaults equal those of the hand-written update."""
    data = stream()
    model = TPSGDClassifier(  # (the minibatch readout by the optimizer, as before least squares)
        seed=0,
        batch_size=batch_size,
        batch_ramp=over,
        readout_per_sample=False,
        readout_solver="optimizer",
        hidden_lr_scale=1,
    )
    for x, y in data:
        model.learn_one(x, y)
    projection = model.network.projection(0).matrix(3, (HIDDEN,))

    ref = DefaultByHand(projection, seed=0)
    classes, rows, labels, n_batched = [], [], [], 0
    for x, y in data:
        if y not in classes:
            classes.append(y)
            if len(classes) > 1:
                ref.add_class()
        rows.append([x[f"f{j}"] for j in range(N_FEATURES)])
        labels.append(classes.index(y))
        if len(rows) == ramp(n_batched, batch_size, over):
            ref.step(torch.tensor(rows, dtype=torch.float32), labels)
            n_batched += len(rows)
            rows, labels = [], []

    assert ref.gated > 0 and ref.learning > 0  # both sides of the gate were taken
    assert model._n_updates == ref.opts[0].t
    for param, opt in zip(model.network.parameters(), ref.opts):
        torch.testing.assert_close(param.detach(), opt.param, rtol=1e-4, atol=1e-5)


def _clipped(logits: torch.Tensor) -> np.ndarray:
    """A least-squares readout's probabilities: its scores clipped to [0.01, 1] and
    normalised (tests/test_least_squares.py)."""
    clipped = np.clip(logits.numpy(), 0.01, 1.0)
    return clipped / clipped.sum()


@pytest.mark.parametrize(
    "solver, probabilities",
    [("rls", _clipped), ("optimizer", lambda logits: softmax_by_hand(logits[None])[0])],
)
def test_predictions_after_small_updates_match_the_weights(solver, probabilities):
    """Predictions made between single-sample updates come from the weights of that moment."""
    model = TPSGDClassifier(seed=0, readout_solver=solver)
    for x, y in stream(60):
        model.learn_one(x, y)
        w1, b1, w2, b2 = (p.detach().double() for p in model.network.parameters())
        row = torch.tensor([x[f"f{j}"] for j in range(N_FEATURES)], dtype=torch.float64)
        logits = act_by_hand("leaky_relu", row @ w1.T + b1) @ w2.T + b2
        proba = model.predict_proba_one(x)
        expected = probabilities(logits)
        np.testing.assert_allclose([proba[c] for c in model.classes], expected, atol=1e-9)
