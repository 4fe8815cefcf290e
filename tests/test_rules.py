"""Each rule's update on a tiny dense layer equals its line in the paper's Table 1, by hand.

The expected ``delta`` is written out here with plain torch ops from the layer's input, the
pre-update weights and the layer's fixed matrix (read from ``Network.projection``); the
library's own delta helpers are never called. ``weight grad = delta^T x``,
``bias grad = delta.sum(0)``.
"""

from __future__ import annotations

import math

import pytest
import torch
from conftest import (
    act_by_hand,
    capture_grads,
    one_hot,
    params_of,
    seeded,
    slope_by_hand,
    softmax_by_hand,
)
from torch.nn import functional as F

from tpsgd_stream import RULES, Conv2d, Dense, Flatten, LocalLoss, Network, Projection, get_rule

N_IN, N_HIDDEN, N_CLASSES, BATCH = 3, 4, 3, 5
LABELS = [0, 2, 1, 1, 0]

# rule name -> (default projection kind, default scale for N_HIDDEN units)
DEFAULT_MATRIX = {
    "dfa": ("uniform", 1.0),
    "sdfa": ("uniform", 1.0),
    "drtp": ("orthogonal", 1.0),
    "tpsgd_l1": ("binary", 1.0),
    "tpsgd_l2": ("normal", 1.0),
    # entry std = temperature / sqrt(units): the softmax temperature of the local readout
    "fixed_readout_ce": ("normal", RULES["fixed_readout_ce"].temperature / math.sqrt(N_HIDDEN)),
}
TARGET_RULES = ("tpsgd_l1", "tpsgd_l2", "fixed_readout_ce")


def tiny_net(rule, activation="tanh", *, lr=1.0, loss="cross_entropy", seed=3):
    layers = [
        Dense(N_IN, N_HIDDEN, activation=activation, rule=rule),
        Dense(N_HIDDEN, N_CLASSES, activation="identity"),
    ]
    return Network(layers, loss=loss, optimizer="sgd", lr=lr, seed=seed)


def run_step(net, *, x_seed=1):
    """One train_step; returns the inputs, one-hot target, pre-update params and grads."""
    x = seeded(BATCH, N_IN, seed=x_seed)
    target = one_hot(LABELS, N_CLASSES)
    before = params_of(net)
    grads = capture_grads(net)
    net.train_step(x, target)
    return x, target, before, grads


def hand_delta(name, *, x, target, w0, b0, w1, b1, matrix, activation, target_on):
    """Table 1, written out: ``delta = dL/dz`` of the hidden layer."""
    n = x.shape[0]
    z = x @ w0.T + b0
    a = act_by_hand(activation, z)
    slope = slope_by_hand(activation, z)
    o = a @ w1.T + b1  # logits from the pre-update weights
    e = softmax_by_hand(o) - target
    if target_on == "activation":
        h, s = a, slope
    else:
        h, s = z, torch.ones_like(z)
    if name == "drtp":
        return (target @ matrix) * slope / n
    if name == "dfa":
        return (e @ matrix) * slope / n
    if name == "sdfa":  # B centred over the classes (SignDFA's default, centre=True)
        return (torch.sign(e) @ (matrix - matrix.mean(0, keepdim=True))) * slope / n
    if name == "sdfa_uncentred":
        return (torch.sign(e) @ matrix) * slope / n
    if name == "tpsgd_l1":
        return torch.sign(h - target @ matrix) * s / n
    if name == "tpsgd_l2":
        return 2.0 * (h - target @ matrix) * s / n
    if name == "fixed_readout_ce":
        return ((softmax_by_hand(h @ matrix.T) - target) @ matrix) * s / n
    raise AssertionError(name)


def step_and_hand_delta(net, name: str, activation: str, target_on: str):
    """One step of ``net``: its input, its weight gradients, and ``hand_delta`` of rule
    ``name`` on the same weights, batch and projection."""
    x, target, before, grads = run_step(net)
    delta = hand_delta(
        name,
        x=x,
        target=target,
        w0=before[0]["weight"],
        b0=before[0]["bias"],
        w1=before[1]["weight"],
        b1=before[1]["bias"],
        matrix=net.projection(0).matrix(N_CLASSES, (N_HIDDEN,)),
        activation=activation,
        target_on=target_on,
    )
    return x, grads, delta


CASES = [
    (name, activation, "activation")
    for name in DEFAULT_MATRIX
    for activation in ("tanh", "leaky_relu", "sigmoid")
] + [(name, "tanh", "preactivation") for name in TARGET_RULES]


@pytest.mark.parametrize("name, activation, target_on", CASES)
def test_hidden_update_matches_table_1(name, activation, target_on):
    net = tiny_net(get_rule(name, target_on=target_on), activation)
    x, grads, delta = step_and_hand_delta(net, name, activation, target_on)
    assert delta.abs().sum() > 0
    torch.testing.assert_close(grads[0]["weight"], delta.T @ x, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grads[0]["bias"], delta.sum(0), rtol=1e-5, atol=1e-7)


def test_sdfa_with_centre_false_is_the_plain_rule():
    net = tiny_net(get_rule("sdfa", centre=False))
    x, grads, delta = step_and_hand_delta(net, "sdfa_uncentred", "tanh", "activation")
    torch.testing.assert_close(grads[0]["weight"], delta.T @ x, rtol=1e-5, atol=1e-7)


def test_sdfa_keeps_a_single_row_as_drawn():
    # a regression output has one row: centred, it would be zero and nothing would learn
    rule = get_rule("sdfa")
    drawn = torch.tensor([[0.5, -1.0]])
    assert torch.equal(rule._centred(drawn), drawn)
    assert rule._centred(torch.tensor([[1.0, 2.0], [3.0, 0.0]])).sum(0).abs().max() == 0


@pytest.mark.parametrize("name", sorted(DEFAULT_MATRIX))
def test_default_matrix_kind_and_scale(name):
    net = tiny_net(name)
    assert net.projection(0) is None or net.projection(0).kind == DEFAULT_MATRIX[name][0]
    run_step(net)
    kind, scale = DEFAULT_MATRIX[name]
    projection = net.projection(0)
    assert projection.kind == kind
    assert projection.scale == pytest.approx(scale)
    matrix = projection.matrix(N_CLASSES, (N_HIDDEN,))
    assert matrix.shape == (N_CLASSES, N_HIDDEN)


def test_explicit_projection_and_scale_are_used():
    rule = get_rule("tpsgd_l2", projection="binary", scale=0.5)
    net = tiny_net(rule)
    x, target, before, grads = run_step(net)
    projection = net.projection(0)
    assert (projection.kind, projection.scale) == ("binary", 0.5)
    matrix = projection.matrix(N_CLASSES, (N_HIDDEN,))
    assert set(matrix.unique().tolist()) == {-0.5, 0.5}
    z = x @ before[0]["weight"].T + before[0]["bias"]
    delta = 2.0 * (torch.tanh(z) - target @ matrix) * (1 - torch.tanh(z) ** 2) / BATCH
    torch.testing.assert_close(grads[0]["weight"], delta.T @ x)


@pytest.mark.parametrize("name", sorted(RULES))
def test_output_layer_learns_from_true_cross_entropy(name):
    net = tiny_net(name)
    x, target, before, grads = run_step(net)
    a = act_by_hand("tanh", x @ before[0]["weight"].T + before[0]["bias"])
    o = a @ before[1]["weight"].T + before[1]["bias"]
    delta = (softmax_by_hand(o) - target) / BATCH
    torch.testing.assert_close(grads[1]["weight"], delta.T @ a)
    torch.testing.assert_close(grads[1]["bias"], delta.sum(0))


@pytest.mark.parametrize(
    "loss, reference",
    [
        ("mse", lambda o, t: ((o - t) ** 2).sum(1).mean()),
        ("huber", lambda o, t: F.huber_loss(o, t, reduction="sum", delta=1.0) / o.shape[0]),
    ],
)
def test_output_layer_regression_losses_match_autograd(loss, reference):
    net = tiny_net("tpsgd_l2", loss=loss)
    x = seeded(BATCH, N_IN, seed=1)
    target = 3.0 * seeded(BATCH, N_CLASSES, seed=2)  # large enough to hit Huber's linear part
    before = params_of(net)
    grads = capture_grads(net)
    net.train_step(x, target)
    a = torch.tanh(x @ before[0]["weight"].T + before[0]["bias"])
    w = before[1]["weight"].clone().requires_grad_(True)
    b = before[1]["bias"].clone().requires_grad_(True)
    gw, gb = torch.autograd.grad(reference(a @ w.T + b, target), (w, b))
    torch.testing.assert_close(grads[1]["weight"], gw)
    torch.testing.assert_close(grads[1]["bias"], gb)


@pytest.mark.parametrize("lr", [1.0, 0.25])
def test_sgd_weight_change_is_minus_lr_times_grad(lr):
    net = tiny_net("tpsgd_l2", lr=lr)
    _, _, before, grads = run_step(net)
    for i in (0, 1):
        for key in ("weight", "bias"):
            change = getattr(net.layers[i], key).detach() - before[i][key]
            torch.testing.assert_close(change, -lr * grads[i][key])
            assert change.abs().sum() > 0


def smooth_l1(h, t):
    return F.smooth_l1_loss(h, t, reduction="sum")


@pytest.mark.parametrize("target_on", ["activation", "preactivation"])
@pytest.mark.parametrize("loss", [smooth_l1, lambda h, t: ((h - t) ** 4).sum()])
def test_local_loss_equals_autograd_of_the_loss(loss, target_on):
    net = tiny_net(LocalLoss(loss, target_on=target_on), activation="tanh")
    x, target, before, grads = run_step(net)
    matrix = net.projection(0).matrix(N_CLASSES, (N_HIDDEN,))
    w = before[0]["weight"].clone().requires_grad_(True)
    b = before[0]["bias"].clone().requires_grad_(True)
    z = x @ w.T + b
    h = torch.tanh(z) if target_on == "activation" else z
    gw, gb = torch.autograd.grad(loss(h, target @ matrix) / BATCH, (w, b))
    assert gw.abs().sum() > 0
    torch.testing.assert_close(grads[0]["weight"], gw)
    torch.testing.assert_close(grads[0]["bias"], gb)


@pytest.mark.parametrize(
    "name, local_loss",
    [
        ("tpsgd_l1", lambda h, t: (h - t).abs().sum()),
        ("tpsgd_l2", lambda h, t: ((h - t) ** 2).sum()),
        ("fixed_readout_ce", lambda h, t: -(t * torch.log_softmax(h, 1)).sum()),
    ],
)
def test_target_projection_rules_are_gradients_of_their_local_loss(name, local_loss):
    """A second, independent check: autograd of the stated local loss, through the layer."""
    net = tiny_net(name, activation="leaky_relu")
    x, target, before, grads = run_step(net)
    matrix = net.projection(0).matrix(N_CLASSES, (N_HIDDEN,))
    w = before[0]["weight"].clone().requires_grad_(True)
    b = before[0]["bias"].clone().requires_grad_(True)
    a = F.leaky_relu(x @ w.T + b, 0.1)
    if name == "fixed_readout_ce":
        loss = local_loss(a @ matrix.T, target)  # logits = a P^T
    else:
        loss = local_loss(a, target @ matrix)
    gw, gb = torch.autograd.grad(loss / BATCH, (w, b))
    torch.testing.assert_close(grads[0]["weight"], gw)
    torch.testing.assert_close(grads[0]["bias"], gb)


def test_rule_names_are_the_public_contract():
    assert {"bp", "dfa", "sdfa", "drtp", "tpsgd_l1", "tpsgd_l2", "fixed_readout_ce"} <= set(RULES)
    for name in RULES:
        assert get_rule(name).name == name


@pytest.mark.parametrize(
    "make, error, fragment",
    [
        (lambda: get_rule("nope"), ValueError, "Unknown rule 'nope'"),
        (lambda: get_rule("tpsgd_l2", target_on="output"), ValueError, "target_on"),
        (lambda: LocalLoss("not callable"), TypeError, "callable"),
    ],
)
def test_bad_rule_arguments(make, error, fragment):
    with pytest.raises(error, match=fragment):
        make()


@pytest.mark.parametrize(
    "kwargs", [{"projection": "bogus"}, {"scale": -1.0}, {"scale": float("nan")}]
)
def test_bad_projection_arguments_fail_at_construction(kwargs):
    """Hyperparameters are checked when the rule is built (style habit 10), not at step 1."""
    with pytest.raises(ValueError):
        get_rule("tpsgd_l2", **kwargs)


@pytest.mark.skipif("fixed_readout_ce_ls" not in RULES, reason="no label-smoothed CE rule here")
@pytest.mark.parametrize("scale", [None, 3.0])
def test_label_smoothed_ce_update_by_hand(scale):
    """``delta = m ((softmax(a P^T) - t) P) sigma'(z) / n``, ``t = (1 - eps) y* + eps / K``,
    ``m = [p . y* < c]``, with the rule's own ``eps`` and ``c``."""
    rule = get_rule("fixed_readout_ce_ls", scale=scale)
    eps, confident = rule.smoothing, getattr(rule, "confident", math.inf)
    net = tiny_net(rule)
    x, target, before, grads = run_step(net)
    matrix = net.projection(0).matrix(N_CLASSES, (N_HIDDEN,))
    a = torch.tanh(x @ before[0]["weight"].T + before[0]["bias"])
    probs = softmax_by_hand(a @ matrix.T)
    gate = ((probs * target).sum(1, keepdim=True) < confident).float()
    smoothed = (1 - eps) * target + eps / N_CLASSES
    delta = gate * ((probs - smoothed) @ matrix) * (1 - a**2) / BATCH
    torch.testing.assert_close(grads[0]["weight"], delta.T @ x)
    torch.testing.assert_close(grads[0]["bias"], delta.sum(0))


@pytest.mark.parametrize("activation", ["leaky_relu", "tanh"])  # tanh's slope reads a's rows
@pytest.mark.parametrize("confident, sparse", [(0.45, True), (0.7, False)])
def test_gated_rule_row_path_equals_the_dense_reference(confident, sparse, activation):
    """fixed_readout_ce_ls computes the weight gradient from the learning rows only (a
    RowDelta) when at most half the samples learn; either way it equals the dense reference
    ``smoothed_cross_entropy_delta`` on all rows."""
    from tpsgd_stream.engine.rules import (
        FixedReadoutSmoothedCE,
        RowDelta,
        smoothed_cross_entropy_delta,
    )

    rule = FixedReadoutSmoothedCE()
    rule.confident = confident  # two classes: p is near 0.5 at first
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 6, generator=g), torch.arange(32) % 2
    net = Network(
        [Dense(6, 16, activation=activation, rule=rule), Dense(16, 2, activation="identity")],
        optimizer="sgd",
        lr=1.0,
        seed=0,
    )
    target = net.one_hot(y)
    layer = net.layers[0]
    w0 = layer.weight.detach().clone()
    with torch.no_grad():
        z = layer.linear(x)
        a = layer.act.forward(z)
        net.train_step(x, target)  # builds the projection on the first step
        matrix = net.projection(0).matrix(2, (16,))
        delta = rule.delta(z=z, a=a, act=layer.act, target=target, error=None, matrix=matrix)
        reference = smoothed_cross_entropy_delta(
            output=a,
            target=target,
            projection=matrix,
            backward=lambda grad: layer.act.backward(grad, z, a),
            smoothing=rule.smoothing,
            confident=rule.confident,
        )
    assert isinstance(delta, RowDelta) == sparse
    if sparse:
        assert 0 < len(delta.rows) <= 16
        delta = delta.dense(like=z)
    torch.testing.assert_close(delta, reference)
    torch.testing.assert_close(w0 - layer.weight.detach(), reference.T @ x)


def head_net(first, *, seed=0):
    """``first`` (trained by local_head) and a linear readout, trained by SGD with lr 1; a
    convolution takes 8x8 inputs (6x6 maps)."""
    flat = [Flatten()] if isinstance(first, Conv2d) else []
    units = first.out_channels * 6 * 6 if isinstance(first, Conv2d) else first.out_features
    layers = [first, *flat, Dense(units, N_CLASSES, activation="identity")]
    return Network(layers, optimizer="sgd", lr=1.0, seed=seed)


def initial_head(rule, units, *, seed):
    """The head a local_head layer (index 0) starts with: its rule's orthogonal projection."""
    projection = Projection("orthogonal", scale=rule.entry_std, seed=seed, stream=0)
    return projection.matrix(N_CLASSES, (units,))


HEAD_LAYERS = [
    (lambda rule: Dense(N_IN, N_HIDDEN, activation="tanh", rule=rule), 2),
    (lambda rule: Conv2d(2, 3, 3, activation="leaky_relu", rule=rule), None),
    (lambda rule: Conv2d(2, 3, 3, activation="leaky_relu", rule=rule), 2),  # 6x6 -> 2x2
    (lambda rule: Conv2d(2, 3, 3, activation="tanh", rule=rule), 4),  # 6x6 -> 4x4: overlaps
]


@pytest.mark.parametrize("first, pool", HEAD_LAYERS)
@pytest.mark.parametrize("target_on", ["activation", "preactivation"])
@pytest.mark.parametrize("gate", ["default", "half"])
def test_local_head_update_equals_autograd_of_its_loss(first, pool, target_on, gate):
    """local_head: the layer's and its head's SGD steps are minus the autograd gradients of
    ``sum_i m_i CE(pool(h_i) @ H^T, y_i) / n`` with label smoothing ``eps`` and the gate
    ``m_i = [p_i . y*_i < c]``, on this layer and head alone. With ``c`` in the middle of
    the ``p . y*`` only two of the five samples learn, and the layer's weight gradient is formed
    from their rows alone (a RowDelta)."""
    rule = get_rule("local_head", pool=pool, target_on=target_on)
    net = head_net(first(rule))
    layer = net.layers[0]
    spatial = isinstance(layer, Conv2d)
    x = seeded(BATCH, 2, 8, 8) if spatial else seeded(BATCH, N_IN)
    labels = torch.tensor(LABELS)
    w, b = (t.detach().clone().requires_grad_(True) for t in (layer.weight, layer.bias))
    z = F.conv2d(x, w, b) if spatial else x @ w.T + b
    out = act_by_hand(layer.activation, z) if target_on == "activation" else z
    features = (F.adaptive_avg_pool2d(out, pool) if spatial and pool else out).reshape(BATCH, -1)
    h0 = initial_head(rule, features.shape[1], seed=0).requires_grad_(True)
    logits = features @ h0.T
    own = softmax_by_hand(logits.detach())[torch.arange(BATCH), labels]
    if gate == "half":  # halfway between the second and third smallest: two samples learn
        rule.confident = own.sort().values[1:3].mean().item()
    keep = own < rule.confident
    assert int(keep.sum()) == (BATCH if gate == "default" else 2)
    per_sample = F.cross_entropy(logits, labels, label_smoothing=rule.smoothing, reduction="none")
    loss = (per_sample * keep).sum() / BATCH
    expected = torch.autograd.grad(loss, (w, b, h0))

    assert net.head(0) is None  # made on the layer's first step
    net.train_step(x, one_hot(LABELS, N_CLASSES))
    for before, after, grad in zip((w, b, h0), (layer.weight, layer.bias, net.head(0)), expected):
        assert grad.abs().sum() > 0
        torch.testing.assert_close(before.detach() - after.detach(), grad)


@pytest.mark.parametrize("first, pool", HEAD_LAYERS)
@pytest.mark.parametrize("confident, sparse", [(0.45, True), (0.7, False)])
def test_local_head_row_path_equals_the_dense_reference(first, pool, confident, sparse):
    """The rule's row-gathering path equals the dense reference ``local_head_delta``."""
    from tpsgd_stream.engine.rules import HeadDelta, RowDelta, local_head_delta

    rule = get_rule("local_head", pool=pool)
    rule.confident = confident  # two classes: p is near 0.5 at first
    layer = first(rule)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, *((2, 8, 8) if isinstance(layer, Conv2d) else (N_IN,)), generator=g)
    target = one_hot(torch.arange(32) % 2, 2)
    with torch.no_grad():
        z = layer.linear(x)
        a = layer.act.forward(z)
        units = (
            math.prod(F.adaptive_avg_pool2d(a, pool).shape[1:])
            if a.dim() == 4 and pool
            else math.prod(a.shape[1:])
        )
        head = torch.randn(2, units, generator=g) * 0.3
        out = rule.delta(z=z, a=a, act=layer.act, target=target, error=None, matrix=head)
        reference = local_head_delta(
            output=a,
            target=target,
            head=head,
            backward=lambda grad: layer.act.backward(grad, z, a),
            pool=pool,
            smoothing=rule.smoothing,
            confident=confident,
        )
    assert isinstance(out, HeadDelta) and isinstance(out.delta, RowDelta) == sparse
    delta = out.delta.dense(like=z) if sparse else out.delta
    if sparse:
        assert 0 < len(out.delta.rows) <= 16
    torch.testing.assert_close(delta, reference.delta)
    torch.testing.assert_close(out.head_grad, reference.head_grad)


def test_local_head_size_and_pool_check():
    net = head_net(Conv2d(2, 5, 3, rule=get_rule("local_head", pool=3)), seed=4)
    net.train_step(seeded(BATCH, 2, 8, 8), one_hot(LABELS, N_CLASSES))
    assert net.head(0).shape == (N_CLASSES, 5 * 3 * 3)
    assert net.head(2) is None and net.projection(0) is None
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="pool"):
            get_rule("local_head", pool=bad)


# ------------------------------------------------------------------ names and the registry
OLD_NAMES = {
    "tpsgd_ce": "fixed_readout_ce",
    "tpsgd_ce_ls": "fixed_readout_ce_ls",
    "tpsgd_head": "local_head",
}


@pytest.mark.parametrize("old, new", sorted(OLD_NAMES.items()))
def test_old_rule_names_warn_and_give_the_renamed_rule(old, new):
    assert old in RULES and old not in list(RULES) and new in list(RULES)
    with pytest.warns(DeprecationWarning, match=old):
        assert RULES[old] is RULES[new]
    with pytest.warns(DeprecationWarning, match=old):
        assert get_rule(old) == get_rule(new)
    with pytest.warns(DeprecationWarning, match=old):
        net = Network.mlp(N_IN, (N_HIDDEN,), N_CLASSES, rule=old, seed=0)
    assert net.default_rule.name == new
    net.train_step(seeded(BATCH, N_IN), one_hot(LABELS, N_CLASSES))


def test_old_rule_name_in_an_estimator_warns_and_trains():
    from tpsgd_stream.models import TPSGDClassifier

    with pytest.warns(DeprecationWarning, match="tpsgd_head"):
        model = TPSGDClassifier(rule="tpsgd_head", batch_size=2, seed=0)
        for x, y in [({"a": 0.0}, 0), ({"a": 1.0}, 1)] * 2:
            model.learn_one(x, y)
    assert model._net.default_rule.name == "local_head" and model._net.head(0) is not None


def test_old_class_names_warn():
    import tpsgd_stream.engine.rules as rules

    with pytest.warns(DeprecationWarning, match="TPSGDLocalHead"):
        assert rules.TPSGDLocalHead is rules.LocalHead
    with pytest.warns(DeprecationWarning, match="TPSGDSmoothedCE"):
        assert rules.TPSGDSmoothedCE is rules.FixedReadoutSmoothedCE


def test_every_entry_point_defaults_to_the_target_projection_rule():
    import inspect

    from tpsgd_stream.engine.recurrent import RecurrentNetwork
    from tpsgd_stream.engine.rules import DEFAULT_RULE, GatedTargetProjection
    from tpsgd_stream.models import (
        TPSGDClassifier,
        TPSGDImageClassifier,
        TPSGDRegressor,
        TPSGDSequenceClassifier,
        TPSGDStreamingSequenceClassifier,
    )

    assert isinstance(get_rule(DEFAULT_RULE), GatedTargetProjection)
    for entry in (
        Network,
        RecurrentNetwork,
        TPSGDClassifier,
        TPSGDImageClassifier,
        TPSGDRegressor,
        TPSGDSequenceClassifier,
        TPSGDStreamingSequenceClassifier,
    ):
        assert inspect.signature(entry).parameters["rule"].default == DEFAULT_RULE, entry


def test_gated_target_projection_stops_samples_nearest_their_own_target():
    """tpsgd_l2_gated: tpsgd_l2's delta on the samples whose output is not yet nearer their own
    class's target than ``margin`` times the nearest other's; zero on the others."""
    net = tiny_net(get_rule("tpsgd_l2_gated", margin=0.9))
    x, target, before, grads = run_step(net)
    matrix = net.projection(0).matrix(N_CLASSES, (N_HIDDEN,))
    z = x @ before[0]["weight"].T + before[0]["bias"]
    a = torch.tanh(z)
    dist = ((a[:, None, :] - matrix[None]) ** 2).sum(2)  # (n, K)
    own = dist[torch.arange(BATCH), torch.tensor(LABELS)]
    other = dist.masked_fill(target > 0, float("inf")).min(1).values
    keep = (own > 0.9 * other).float()[:, None]
    delta = keep * 2.0 * (a - target @ matrix) * (1 - a**2) / BATCH
    torch.testing.assert_close(grads[0]["weight"], delta.T @ x, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grads[0]["bias"], delta.sum(0), rtol=1e-5, atol=1e-7)


def test_gated_target_projection_row_path_equals_the_dense_one():
    from tpsgd_stream.engine.activations import get_activation
    from tpsgd_stream.engine.rules import RowDelta, dense_delta

    g = torch.Generator().manual_seed(0)
    P = torch.randn(3, 6, generator=g)
    target = one_hot(torch.arange(12) % 3, 3)
    near = target @ P + 0.01 * torch.randn(12, 6, generator=g)  # nearly all learned
    near[:2] = torch.randn(2, 6, generator=g) * 3  # two still learning
    act = get_activation("tanh")
    z = torch.atanh(near.clamp(-0.99, 0.99))
    a = act.forward(z)
    rule = get_rule("tpsgd_l2_gated")
    out = rule.delta(z=z, a=a, act=act, target=target, error=None, matrix=P)
    assert isinstance(out, RowDelta) and len(out.rows) <= 6
    keep = torch.zeros(12, dtype=torch.bool)
    keep[out.rows] = True
    dense = keep[:, None] * 2.0 * (a - target @ P) * (1 - a**2) / 12
    torch.testing.assert_close(dense_delta(out, like=z), dense)


def test_gated_target_projection_never_gates_regression_targets():
    y = torch.randn(BATCH, 2)
    plain = tiny_net("tpsgd_l2", loss="mse")
    gated = tiny_net(get_rule("tpsgd_l2_gated", margin=1.0), loss="mse")
    plain.train_step(seeded(BATCH, N_IN), y[:, :1].repeat(1, N_CLASSES))
    gated.train_step(seeded(BATCH, N_IN), y[:, :1].repeat(1, N_CLASSES))
    for p, q in zip(plain.parameters(), gated.parameters()):
        torch.testing.assert_close(p, q)


def test_a_custom_rule_in_one_class_trains_through_an_estimator():
    """Adding a rule is one class: its name registers it for every entry point."""
    from tpsgd_stream.engine.rules import Rule
    from tpsgd_stream.models import TPSGDClassifier

    class HalfTarget(Rule):
        name = "test_half_target"

        def delta(self, *, z, a, act, target, error, matrix):
            return act.backward((a - 0.5 * target @ matrix) / len(z), z, a)

    try:
        model = TPSGDClassifier(rule="test_half_target", batch_size=4, seed=0)
        for x, y in [({"a": -1.0}, "no"), ({"a": 1.0}, "yes")] * 40:
            model.learn_one(x, y)
        assert model.predict_one({"a": 1.0}) == "yes"
        assert model._net.projection(0) is not None  # the default state: a fixed matrix
    finally:
        del RULES["test_half_target"]


def test_a_network_pickled_before_the_rules_kept_their_state_loads():
    """Pickles from before the rules owned their state hold ``_projections`` and ``_head_of``;
    unpickling turns them into rule states (here simulated from a fresh network's state)."""
    layers = [
        Dense(N_IN, N_HIDDEN, activation="tanh"),
        Dense(N_HIDDEN, N_HIDDEN, activation="tanh", rule="tpsgd_l2"),
        Dense(N_HIDDEN, N_CLASSES, activation="identity"),
    ]
    net = Network(layers, rule="local_head", seed=0)
    x, target = seeded(BATCH, N_IN), one_hot(LABELS, N_CLASSES)
    net.train_step(x, target)
    state = dict(net.__getstate__())
    states = state.pop("_states")
    del state["_updaters"]
    state["_projections"] = {i: s.projection for i, s in states.items() if s.projection}
    state["_head_of"] = {i: s.param for i, s in states.items() if s.param is not None}
    old = Network.__new__(Network)
    old.__setstate__(state)
    assert old.head(0) is net.head(0) and old.projection(1) is net.projection(1)
    old.train_step(x, target)
    old.grow_outputs(1)
    assert old.head(0).shape == (N_CLASSES + 1, N_HIDDEN)


def test_gated_target_projection_gate_is_the_same_in_numpy_and_torch():
    """On CPU the gate runs on numpy views of the scores; it decides every row as the torch
    gate does (a target that needs gradients takes the torch path): one-hot rows near and far
    from their target, soft labels, a single nonzero entry other than 1, regression rows."""
    from tpsgd_stream.engine.rules.target_projection import learning_rows

    g = torch.Generator().manual_seed(0)
    P = torch.randn(4, 16, generator=g)
    labels = torch.arange(40) % 4
    target = one_hot(labels, 4)
    h = P[labels] + torch.randn(40, 16, generator=g) * torch.linspace(0.1, 3.0, 40)[:, None]
    target[0] = torch.tensor([0.5, 0.5, 0.0, 0.0])  # soft label
    target[1] = torch.tensor([0.0, 2.0, 0.0, 0.0])  # one nonzero entry, not 1
    target[2] = torch.tensor([0.7, -0.2, 0.3, 0.2])  # sums to 1, not a label
    fast = learning_rows(h, target, P, margin=0.8)
    slow = learning_rows(h, target.clone().requires_grad_(True), P, margin=0.8)
    assert torch.equal(fast, slow)
    assert fast[:3].all() and 0 < int(fast.sum()) < 40  # both sides of the gate are taken
