"""Forward gradients and bit-flip training: right direction, allowed values, determinism."""

import pytest
import torch
from torch.nn import functional as F

from tpsgd_stream import Network
from tpsgd_stream.engine.bitflip import BitFlip, discretise, flip_update
from tpsgd_stream.engine.forward_gradient import ForwardGradient, perturbation_gradients, quantise


def _problem(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    return x, y


def _estimate_and_truth(rule, k_seed=0):
    net = Network.mlp(4, (5,), 3, seed=1)
    x, y = _problem()
    target = net.one_hot(y)
    params = list(net.parameters())
    if rule.bits is not None:
        with torch.no_grad():
            for p in params:
                p.copy_(quantise(p, rule.bits))
    with torch.enable_grad():
        leaves = [p.detach().clone().requires_grad_(True) for p in params]
        h = F.leaky_relu(x @ leaves[0].T + leaves[1], 0.1)
        loss = F.cross_entropy(h @ leaves[2].T + leaves[3], y)
        truth = torch.autograd.grad(loss, leaves)
    with torch.no_grad():
        before = [p.clone() for p in params]
        estimate = perturbation_gradients(
            params,
            lambda: F.cross_entropy(net.forward(x), y),
            rule,
            seed=k_seed,
        )
        assert all(torch.equal(a, b) for a, b in zip(before, params))  # restored exactly
    del target
    flat = lambda ts: torch.cat([t.reshape(-1) for t in ts])  # noqa: E731
    return flat(estimate), flat(truth)


def test_forward_gradient_points_where_autograd_does():
    estimate, truth = _estimate_and_truth(ForwardGradient(n_perturbations=3000, epsilon=1e-3))
    assert F.cosine_similarity(estimate, truth, dim=0) > 0.9
    few, _ = _estimate_and_truth(ForwardGradient(n_perturbations=2, epsilon=1e-3))
    assert F.cosine_similarity(few, truth, dim=0) < 0.9  # the test can tell a poor estimate


@pytest.mark.parametrize("bits, tolerance", [(16, 0.9), (8, 0.8)])
def test_fixed_point_estimates_stay_close_to_float_ones(bits, tolerance):
    # stated tolerance: cosine with autograd >= 0.9 (int16) and >= 0.8 (int8), K = 3000
    estimate, truth = _estimate_and_truth(
        ForwardGradient(n_perturbations=3000, epsilon=1, bits=bits)
    )
    assert F.cosine_similarity(estimate, truth, dim=0) > tolerance


def test_fixed_point_training_keeps_weights_on_the_grid():
    net = Network.mlp(4, (5,), 3, rule=ForwardGradient(n_perturbations=4, bits=8), seed=0)
    x, y = _problem()
    for _ in range(3):
        net.train_step(x, net.one_hot(y))
    for p in net.parameters():
        step = p.abs().max() / 127
        assert torch.allclose(p / step, (p / step).round(), atol=1e-3)


def test_forward_gradient_training_lowers_the_loss_deterministically():
    x, y = _problem(256)
    nets = [Network.mlp(4, (8,), 3, rule="forward_grad", lr=1e-2, seed=3) for _ in range(2)]
    start = F.cross_entropy(nets[0].forward(x), y)
    for net in nets:
        for _ in range(150):
            net.train_step(x, net.one_hot(y))
    assert F.cross_entropy(nets[0].forward(x), y) < 0.8 * start
    assert all(torch.equal(a, b) for a, b in zip(nets[0].parameters(), nets[1].parameters()))


@pytest.mark.parametrize("levels, allowed", [(2, {-1.0, 1.0}), (3, {-1.0, 0.0, 1.0})])
def test_bitflip_lowers_the_error_and_keeps_weights_discrete(levels, allowed):
    x, y = _problem(512)
    net = Network.mlp(4, (16,), 3, rule=BitFlip(levels=levels, flip_rate=0.1), seed=0)
    twin = Network.mlp(4, (16,), 3, rule=BitFlip(levels=levels, flip_rate=0.1), seed=0)
    before = (net.predict(x) != y).float().mean()
    for step in range(60):
        batch = slice(step % 8 * 64, step % 8 * 64 + 64)
        for model in (net, twin):
            model.train_step(x[batch], model.one_hot(y[batch]))
        for layer in (net.layers[0], net.layers[1]):
            scale = layer.weight[0].numel() ** 0.5
            assert set((layer.weight * scale).round().unique().tolist()) <= allowed
            assert not layer.bias.any()
    after = (net.predict(x) != y).float().mean()
    assert after < before - 0.1
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), twin.parameters()))


def test_flip_update_flips_only_the_harmful_weights():
    weight = discretise(torch.tensor([[0.5, -0.5, 0.5, -0.5]]), 2)
    grad = torch.tensor([[1.0, 1.0, -1.0, -3.0]])  # w * g > 0 for weights 0 and 3
    flipped = flip_update(weight, grad, BitFlip(flip_rate=1.0))
    assert flipped == 2
    assert (weight * 2).tolist() == [[-1.0, -1.0, 1.0, 1.0]]


@pytest.mark.parametrize(
    "make",
    [
        lambda: ForwardGradient(n_perturbations=0),
        lambda: ForwardGradient(epsilon=-1.0),
        lambda: ForwardGradient(bits=4),
        lambda: BitFlip(levels=4),
        lambda: BitFlip(flip_rate=0.0),
    ],
)
def test_bad_settings_are_refused(make):
    with pytest.raises(ValueError):
        make()
