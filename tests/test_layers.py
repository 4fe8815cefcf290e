"""Layers: hand-made weight gradients equal autograd's; conv layers use their projection."""

from __future__ import annotations

import pytest
import torch
from conftest import capture_grads, one_hot, params_of, seeded, slope_by_hand
from torch.nn import functional as F

from tpsgd_stream import (
    ACTIVATIONS,
    RULES,
    AvgPool2d,
    Conv2d,
    Dense,
    Flatten,
    MaxPool2d,
    Network,
    get_activation,
    get_rule,
)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_derivative_matches_autograd(name):
    z = torch.linspace(-3, 3, 61)
    z = z[z != 0]  # the kink of (leaky) relu
    act = get_activation(name)
    leaf = z.clone().requires_grad_(True)
    (auto,) = torch.autograd.grad(act.forward(leaf).sum(), leaf)
    torch.testing.assert_close(act.derivative(z, act.forward(z)), auto)
    torch.testing.assert_close(act.derivative(z, None), auto)


def test_unknown_activation_raises():
    with pytest.raises(ValueError, match="Unknown activation 'swish'"):
        get_activation("swish")
    with pytest.raises(ValueError, match="Unknown activation"):
        Dense(3, 2, activation="swish")


def local_l2_by_autograd(layer, x, target):
    """Autograd of ``||sigma(linear(x)) - target||^2 / n`` on this layer alone."""
    w = layer.weight.detach().clone().requires_grad_(True)
    b = layer.bias.detach().clone().requires_grad_(True)
    if isinstance(layer, Conv2d):
        z = F.conv2d(x, w, b, stride=layer.stride, padding=layer.padding)
    else:
        z = x @ w.T + b
    a = layer.act.forward(z)
    loss = ((a - target) ** 2).sum() / x.shape[0]
    return torch.autograd.grad(loss, (w, b))


def hand_l2_delta(layer, x, target):
    z = layer.linear(x).detach()
    a = layer.act.forward(z)
    return 2.0 * (a - target) * slope_by_hand(layer.activation, z) / x.shape[0]


@pytest.mark.parametrize(
    "stride, padding, activation", [(1, 0, "leaky_relu"), (2, 1, "tanh"), (1, 2, "sigmoid")]
)
def test_conv_set_grads_equals_autograd_of_local_l2(stride, padding, activation):
    layer = Conv2d(2, 3, 3, stride=stride, padding=padding, activation=activation)
    x = seeded(5, 2, 7, 7, seed=1)
    out_shape = layer.linear(x).shape
    target = seeded(*out_shape, seed=2)
    layer.set_grads(x, hand_l2_delta(layer, x, target))
    gw, gb = local_l2_by_autograd(layer, x, target)
    torch.testing.assert_close(layer.weight.grad, gw)
    torch.testing.assert_close(layer.bias.grad, gb)


def test_dense_set_grads_equals_autograd_of_local_l2():
    layer = Dense(3, 4, activation="tanh")
    x = seeded(5, 3, seed=1)
    target = seeded(5, 4, seed=2)
    layer.set_grads(x, hand_l2_delta(layer, x, target))
    gw, gb = local_l2_by_autograd(layer, x, target)
    torch.testing.assert_close(layer.weight.grad, gw)
    torch.testing.assert_close(layer.bias.grad, gb)
    delta = seeded(5, 4, seed=3)
    layer.set_grads(x, delta)
    torch.testing.assert_close(layer.weight.grad, delta.T @ x)
    torch.testing.assert_close(layer.bias.grad, delta.sum(0))


@pytest.mark.parametrize(
    "layer, x_shape",
    [
        (Dense(3, 4), (5, 3)),
        (Conv2d(2, 3, 3, stride=2, padding=1), (5, 2, 7, 7)),
        (MaxPool2d(2), (5, 3, 6, 6)),
        (AvgPool2d(2), (5, 3, 6, 6)),
        (Flatten(), (5, 3, 2, 2)),
    ],
)
def test_input_grad_is_the_vector_jacobian_product(layer, x_shape):
    x = seeded(*x_shape, seed=1)
    leaf = x.clone().requires_grad_(True)
    out = layer.linear(leaf) if hasattr(layer, "linear") else layer(leaf)
    grad_out = seeded(*out.shape, seed=2)
    (expected,) = torch.autograd.grad(out, leaf, grad_out)
    with torch.no_grad():
        got = layer.input_grad(grad_out, x)
    torch.testing.assert_close(got, expected)


def conv_net(rule, *, seed=0):
    layers = [
        Conv2d(2, 3, 3, stride=1, padding=0, activation="leaky_relu", rule=rule),
        Flatten(),
        Dense(3 * 6 * 6, 4, activation="identity"),
    ]
    return Network(layers, optimizer="sgd", lr=1.0, seed=seed)


def test_conv_layer_in_network_uses_filter_projection():
    net = conv_net(get_rule("tpsgd_l2", projection="filter"))
    x = seeded(5, 2, 8, 8, seed=1)
    target = one_hot([0, 1, 2, 3, 1], 4)
    before = params_of(net)
    grads = capture_grads(net)
    net.train_step(x, target)

    projection = net.projection(0)
    assert projection.kind == "filter"
    matrix = projection.matrix(4, (3, 6, 6))
    assert matrix.shape == (4, 3, 6, 6)
    # the paper's filter kind: filter i's entries have std (i + 1) / n_filters (times the scale)
    stds = matrix.transpose(0, 1).reshape(3, -1).std(dim=1) / projection.scale
    torch.testing.assert_close(stds, torch.tensor([1 / 3, 2 / 3, 1.0]), rtol=0.15, atol=0)
    # the update is the gradient of the local l2 loss towards y* P, P reshaped to the map
    w = before[0]["weight"].clone().requires_grad_(True)
    b = before[0]["bias"].clone().requires_grad_(True)
    a = F.leaky_relu(F.conv2d(x, w, b), 0.1)
    tgt = (target @ matrix.reshape(4, -1)).reshape(a.shape)
    gw, gb = torch.autograd.grad(((a - tgt) ** 2).sum() / 5, (w, b))
    torch.testing.assert_close(grads[0]["weight"], gw)
    torch.testing.assert_close(grads[0]["bias"], gb)


@pytest.mark.parametrize("name", ["tpsgd_l2", "fixed_readout_ce", "drtp", "dfa"])
def test_conv_default_projection_covers_the_whole_feature_map(name):
    net = conv_net(name)
    net.train_step(seeded(5, 2, 8, 8, seed=1), one_hot([0, 1, 2, 3, 1], 4))
    projection = net.projection(0)
    assert projection.kind == get_rule(name).projection
    assert projection.matrix(4, (3, 6, 6)).shape == (4, 3, 6, 6)
    if name == "fixed_readout_ce":  # the temperature counts every unit of the map, not the channels
        assert projection.scale == pytest.approx(RULES[name].temperature / (3 * 6 * 6) ** 0.5)


def test_filter_projection_on_dense_layer_raises():
    layers = [
        Dense(3, 4, rule=get_rule("tpsgd_l2", projection="filter")),
        Dense(4, 2, activation="identity"),
    ]
    net = Network(layers)
    with pytest.raises(ValueError, match="filter"):
        net.train_step(seeded(5, 3), one_hot([0, 1, 0, 1, 1], 2))


def test_dense_growth_pads_with_zeros():
    layer = Dense(3, 4)
    weight = layer.weight.detach().clone()
    parameter = layer.weight
    layer.grow_inputs(2)
    assert layer.weight is parameter  # same Parameter object: optimizers keep tracking it
    assert layer.weight.shape == (4, 5) and layer.in_features == 5
    assert torch.equal(layer.weight[:, :3], weight)
    assert torch.equal(layer.weight[:, 3:], torch.zeros(4, 2))
    layer.grow_outputs(1)
    assert layer.weight.shape == (5, 5) and layer.bias.shape == (5,)
    assert layer.out_features == 5
    assert torch.equal(layer.weight[4], torch.zeros(5)) and float(layer.bias[4].detach()) == 0.0
