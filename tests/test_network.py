"""Network behaviour: bp equals autograd, mixed rules, growth, determinism, pickling,
schedules, no backward for local rules, memory flat in depth, input validation."""

from __future__ import annotations

import pickle
from copy import deepcopy

import pytest
import torch
from conftest import (
    LiveBytes,
    autograd_forward,
    capture_grads,
    cross_entropy_by_hand,
    leaf_params,
    one_hot,
    seeded,
    state_copy,
)
from torch import nn

from tpsgd_stream import (
    Conv2d,
    Dense,
    Flatten,
    LocalLoss,
    MaxPool2d,
    Network,
    Projection,
    get_rule,
)
from tpsgd_stream.engine.training import fit

LOCAL_RULES = ("dfa", "sdfa", "drtp", "tpsgd_l1", "tpsgd_l2", "fixed_readout_ce", "local_head")
ALL_RULES = ("bp", *LOCAL_RULES)


def batch(n=8, n_in=6, n_classes=3, seed=1):
    x = seeded(n, n_in, seed=seed)
    labels = torch.arange(n) % n_classes
    return x, one_hot(labels, n_classes)


def image_batch(n=6, n_classes=3, seed=1):
    x = seeded(n, 2, 10, 10, seed=seed)
    return x, one_hot(torch.arange(n) % n_classes, n_classes)


def conv_layers(rule=None):
    return [
        Conv2d(2, 3, 3, padding=1, rule=rule),  # 10x10
        MaxPool2d(2),  # 5x5
        Conv2d(3, 4, 2, stride=1, rule=rule),  # 4x4
        Flatten(),
        Dense(4 * 4 * 4, 3, activation="identity"),
    ]


def assert_grads_equal(grads, expected, indices):
    for i in indices:
        torch.testing.assert_close(grads[i]["weight"], expected[i][0], msg=f"layer {i} weight")
        torch.testing.assert_close(grads[i]["bias"], expected[i][1], msg=f"layer {i} bias")


# ----------------------------------------------------------------------- bp equals autograd
def test_bp_mlp_equals_autograd():
    net = Network.mlp(6, (5, 4), 3, rule="bp", optimizer="sgd", lr=1.0, seed=2)
    x, target = batch()
    params = leaf_params(net)
    logits = autograd_forward(net, params, x)[-1]
    flat = [t for i in sorted(params) for t in params[i]]
    auto = torch.autograd.grad(cross_entropy_by_hand(logits, target), flat)
    expected = {i: (auto[2 * k], auto[2 * k + 1]) for k, i in enumerate(sorted(params))}

    before = state_copy(net)
    grads = capture_grads(net)
    returned = net.train_step(x, target)
    torch.testing.assert_close(returned, logits.detach())  # logits of the pre-update weights
    assert_grads_equal(grads, expected, [0, 1, 2])
    # SGD with lr 1: the weight change is minus the gradient
    for i in (0, 1, 2):
        change = net.layers[i].weight.detach() - before[f"layers.{i}.weight"]
        torch.testing.assert_close(change, -expected[i][0])


def test_bp_conv_net_equals_autograd():
    net = Network(conv_layers(), rule="bp", optimizer="sgd", lr=1.0, seed=4)
    x, target = image_batch()
    params = leaf_params(net)
    logits = autograd_forward(net, params, x)[-1]
    indices = sorted(params)
    auto = torch.autograd.grad(
        cross_entropy_by_hand(logits, target), [t for i in indices for t in params[i]]
    )
    expected = {i: (auto[2 * k], auto[2 * k + 1]) for k, i in enumerate(indices)}
    grads = capture_grads(net)
    net.train_step(x, target)
    assert_grads_equal(grads, expected, indices)


def local_l2(a, target, matrix):
    residual = a.reshape(len(a), -1) - target @ matrix.reshape(len(matrix), -1)
    return (residual**2).sum() / len(a)


def test_bp_layers_under_a_local_layer_get_its_local_loss_gradient():
    layers = [
        Dense(6, 5, rule="bp"),
        Dense(5, 5, activation="tanh", rule="bp"),
        Dense(5, 4, rule="tpsgd_l2"),
        Dense(4, 3, activation="identity"),
    ]
    net = Network(layers, optimizer="sgd", lr=1.0, seed=1)
    x, target = batch()
    params = leaf_params(net)
    grads = capture_grads(net)
    net.train_step(x, target)
    matrix = net.projection(2).matrix(3, (4,))
    outs = autograd_forward(net, params, x)
    local = torch.autograd.grad(
        local_l2(outs[2], target, matrix), [t for i in (0, 1, 2) for t in params[i]]
    )
    expected = {i: (local[2 * i], local[2 * i + 1]) for i in (0, 1, 2)}
    # the output layer learns from the true loss, its input detached
    w, b = params[3]
    out = torch.autograd.grad(cross_entropy_by_hand(outs[2].detach() @ w.T + b, target), (w, b))
    expected[3] = out
    assert_grads_equal(grads, expected, [0, 1, 2, 3])


def test_bp_conv_under_local_conv_through_pooling():
    net = Network(
        conv_layers()[:1]
        + [
            MaxPool2d(2),
            Conv2d(3, 4, 2, rule="tpsgd_l2"),
            Flatten(),
            Dense(64, 3, activation="identity"),
        ],
        rule="bp",
        optimizer="sgd",
        lr=1.0,
        seed=3,
    )
    x, target = image_batch()
    params = leaf_params(net)
    grads = capture_grads(net)
    net.train_step(x, target)
    outs = autograd_forward(net, params, x)
    matrix = net.projection(2).matrix(3, (4, 4, 4))
    local = torch.autograd.grad(local_l2(outs[2], target, matrix), [*params[0], *params[2]])
    assert_grads_equal(grads, {0: local[:2], 2: local[2:]}, [0, 2])


def test_bp_under_dfa_backpropagates_the_dfa_delta():
    layers = [
        Dense(6, 5, activation="tanh", rule="bp"),
        Dense(5, 4, rule="dfa"),
        Dense(4, 3, activation="identity"),
    ]
    net = Network(layers, optimizer="sgd", lr=1.0, seed=0)
    x, target = batch()
    p = {
        i: (net.layers[i].weight.detach().clone(), net.layers[i].bias.detach().clone())
        for i in (0, 1, 2)
    }
    grads = capture_grads(net)
    net.train_step(x, target)
    z0 = x @ p[0][0].T + p[0][1]
    a0 = torch.tanh(z0)
    z1 = a0 @ p[1][0].T + p[1][1]
    a1 = torch.where(z1 > 0, z1, 0.1 * z1)
    o = a1 @ p[2][0].T + p[2][1]
    e = torch.softmax(o, 1) - target
    matrix = net.projection(1).matrix(3, (4,))
    delta1 = (e @ matrix) * torch.where(z1 > 0, 1.0, 0.1) / len(x)
    delta0 = (delta1 @ p[1][0]) * (1 - a0**2)
    torch.testing.assert_close(grads[1]["weight"], delta1.T @ a0)
    torch.testing.assert_close(grads[0]["weight"], delta0.T @ x)
    torch.testing.assert_close(grads[0]["bias"], delta0.sum(0))


# ---------------------------------------------------------------------------------- growth
def train_a_little(net, steps=3, n_in=6, n_classes=3):
    for s in range(steps):
        net.train_step(*batch(n_in=n_in, n_classes=n_classes, seed=10 + s))


@pytest.mark.parametrize("rule", ALL_RULES)
def test_grow_outputs_keeps_old_logits_and_training_continues(rule):
    net = Network.mlp(6, (8,), 3, rule=rule, seed=0)
    train_a_little(net)
    x, _ = batch(seed=99)
    old_logits = net.forward(x)
    out = net.layers[net.output_index]
    opt_state = net.optimizers[net.output_index].state[out.weight]
    opt_state = {k: v.clone() for k, v in opt_state.items()}
    old_matrix = None
    if net.projection(0) is not None:
        old_matrix = net.projection(0).matrix(3, (8,)).clone()

    net.grow_outputs(2)
    assert net.n_outputs == 5
    new_logits = net.forward(x)
    torch.testing.assert_close(new_logits[:, :3], old_logits, rtol=0, atol=1e-6)
    assert torch.equal(new_logits[:, 3:], torch.zeros(len(x), 2))
    # Adam moments padded with zeros, the old ones kept
    state = net.optimizers[net.output_index].state[out.weight]
    for key in ("exp_avg", "exp_avg_sq"):
        assert state[key].shape == out.weight.shape
        assert torch.equal(state[key][:3], opt_state[key])
        assert torch.equal(state[key][3:], torch.zeros(2, 8))
    # training continues with the new classes; the projection keeps its old rows
    x5, t5 = batch(n_classes=5, seed=7)
    net.train_step(x5, t5)
    assert out.weight[3:].abs().sum() > 0
    assert all(torch.isfinite(p).all() for p in net.parameters())
    if old_matrix is not None:
        assert torch.equal(net.projection(0).matrix(5, (8,))[:3], old_matrix)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_grow_outputs_appends_head_rows_and_keeps_the_old_ones(kind):
    """A learned local head gains a row per new class, starting as the rule's projection row
    of that class (as in a network built with that many classes); the trained rows and their
    Adam moments are kept, and the new rows learn."""
    if kind == "mlp":
        net = Network.mlp(6, (8, 8), 3, rule="local_head", seed=0)
        steps = [batch(seed=10 + s) for s in range(3)] + [batch(n_classes=5, seed=7)]
    else:
        net = Network(conv_layers(get_rule("local_head", pool=2)), seed=0)
        steps = [image_batch(seed=10 + s) for s in range(3)] + [image_batch(n_classes=5, seed=7)]
    for x, t in steps[:3]:
        net.train_step(x, t)
    heads = {i: net.head(i).detach().clone() for i in (0, 1, 2) if net.head(i) is not None}
    moments = {i: net.optimizers[i].state[net.head(i)]["exp_avg"].clone() for i in heads}
    assert len(heads) == 2

    net.grow_outputs(2)
    for i, old in heads.items():
        head = net.head(i)
        projection = Projection("orthogonal", scale=0.08, seed=0, stream=i)
        initial = projection.matrix(5, (old.shape[1],))
        assert not torch.equal(old, initial[:3])  # the old rows were trained ...
        assert torch.equal(head[:3], old)  # ... and are kept
        assert torch.equal(head[3:], initial[3:])
        exp_avg = net.optimizers[i].state[head]["exp_avg"]
        assert torch.equal(exp_avg[:3], moments[i]) and not exp_avg[3:].any()
    net.train_step(*steps[3])
    assert all(not torch.equal(net.head(i)[3:], initial[3:]) for i in heads)


def test_state_dict_round_trip_keeps_the_heads():
    """Heads are saved with the network: a rebuilt network loading the state dict (and the
    optimizers' states) predicts and trains exactly as the original."""
    net = Network(conv_layers(get_rule("local_head", pool=2)), seed=0)
    for s in range(3):
        net.train_step(*image_batch(seed=10 + s))
    assert {"heads.0", "heads.2"} <= set(net.state_dict())
    copy = Network(conv_layers(get_rule("local_head", pool=2)), seed=5)
    copy.load_state_dict(net.state_dict())
    for i, optimizer in net.optimizers.items():  # a deep copy: loading shares the tensors
        copy.optimizers[i].load_state_dict(deepcopy(optimizer.state_dict()))
    x, t = image_batch(seed=20)
    assert torch.equal(copy.forward(x), net.forward(x))
    net.train_step(x, t)
    copy.train_step(x, t)
    a, b = state_copy(net), state_copy(copy)
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("rule", ["bp", "fixed_readout_ce", "dfa"])
def test_grow_inputs_keeps_outputs_and_training_continues(rule):
    net = Network.mlp(6, (8,), 3, rule=rule, seed=0)
    train_a_little(net)
    x, _ = batch(seed=99)
    old_logits = net.forward(x)
    first = net.layers[0]
    old_state = {k: v.clone() for k, v in net.optimizers[0].state[first.weight].items()}

    net.grow_inputs(2)
    x_wide = torch.cat([x, seeded(len(x), 2, seed=5)], dim=1)
    torch.testing.assert_close(net.forward(x_wide), old_logits, rtol=0, atol=1e-6)
    state = net.optimizers[0].state[first.weight]
    for key in ("exp_avg", "exp_avg_sq"):
        assert state[key].shape == (8, 8)
        assert torch.equal(state[key][:, :6], old_state[key])
        assert torch.equal(state[key][:, 6:], torch.zeros(8, 2))
    net.train_step(x_wide, batch(seed=3)[1])
    assert first.weight[:, 6:].abs().sum() > 0
    assert torch.isfinite(first.weight).all()


def test_grow_inputs_needs_a_dense_first_layer():
    net = Network(conv_layers(), rule="tpsgd_l2")
    with pytest.raises(TypeError, match="Dense"):
        net.grow_inputs(1)


# ------------------------------------------------------------------ determinism, pickling
def trained(rule, seed, *, epochs=2):
    X = seeded(64, 6, seed=11)
    y = (X[:, 0] > 0).long() + (X[:, 1] > 0).long()
    return fit(
        Network.mlp(6, (8, 8), 3, rule=rule, seed=seed),
        X,
        y,
        epochs=epochs,
        batch_size=16,
        progress=False,
    )


@pytest.mark.parametrize("rule", ALL_RULES)
def test_same_seed_same_weights(rule):
    a, b = state_copy(trained(rule, 3)), state_copy(trained(rule, 3))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = state_copy(trained(rule, 4))
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_seed_sets_initial_weights_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = Network.mlp(6, (8,), 3, seed=5)
    net_b = Network.mlp(6, (8,), 3, seed=5)
    assert torch.equal(torch.rand(3), expected)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), net_b.parameters()))
    other = Network.mlp(6, (8,), 3, seed=6)
    assert not torch.equal(a.layers[0].weight, other.layers[0].weight)


@pytest.mark.parametrize("rule", ALL_RULES)
def test_pickle_round_trip_continues_identically(rule):
    net = Network.mlp(6, (8, 8), 3, rule=rule, seed=1)
    train_a_little(net)
    copy = pickle.loads(pickle.dumps(net))
    for s in range(3):
        x, t = batch(seed=20 + s)
        net.train_step(x, t)
        copy.train_step(x, t)
    a, b = state_copy(net), state_copy(copy)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the copy's optimizers update the copy's own parameters
    assert copy.optimizers[0].param_groups[0]["params"][0] is copy.layers[0].weight


def test_pickled_bytes_are_stable():
    net = Network.mlp(6, (8,), 3, rule="fixed_readout_ce", seed=1)
    train_a_little(net)
    first = pickle.dumps(net)
    net.predict(batch(seed=5)[0])
    assert pickle.dumps(net) == first


# ------------------------------------------------------------------------------ schedules
@pytest.mark.parametrize("rule", ALL_RULES)
def test_sequential_step_updates_only_the_chosen_layer(rule):
    net = Network.mlp(6, (8, 8, 8), 3, rule=rule, seed=2)
    train_a_little(net)
    x, t = batch(seed=30)
    for index in net.trainable_indices:
        before = state_copy(net)
        net.train_step(x, t, layers=[index])
        after = state_copy(net)
        for key in before:
            changed = not torch.equal(before[key], after[key])
            own = key.startswith(f"layers.{index}.") or key == f"heads.{index}"
            assert changed == own, (index, key)


def test_reset_optimizer_state_clears_exactly_the_chosen_layers():
    net = Network.mlp(6, (8, 8), 3, rule="local_head", seed=2)
    train_a_little(net)
    hidden, output = net.trainable_indices[0], net.output_index
    kept = {i: deepcopy(net.optimizers[i].state_dict()) for i in net.trainable_indices}
    assert len(net.optimizers[hidden].state) == 3  # weight, bias and the learned head
    net.reset_optimizer_state([output])
    assert not net.optimizers[output].state
    for index in set(net.trainable_indices) - {output}:
        state = net.optimizers[index].state_dict()["state"]
        for key, moments in kept[index]["state"].items():
            for name, value in moments.items():
                assert torch.equal(state[key][name], value), (index, key, name)
    before = state_copy(net)
    net.train_step(*batch(seed=31))  # training starts the cleared moments afresh
    assert int(net.optimizers[output].state[net.layers[output].weight]["step"]) == 1
    assert any(not torch.equal(before[k], v) for k, v in state_copy(net).items())
    net.reset_optimizer_state()
    assert all(not net.optimizers[i].state for i in net.trainable_indices)
    with pytest.raises(ValueError, match="No trainable layers"):
        net.reset_optimizer_state([output + 1])


def test_sequential_step_on_bp_layer_under_local_layer():
    layers = [
        Dense(6, 8, rule="bp"),
        Dense(8, 8, rule="tpsgd_l2"),
        Dense(8, 3, activation="identity"),
    ]
    net = Network(layers, seed=0)
    before = state_copy(net)
    net.train_step(*batch(), layers=[0])
    after = state_copy(net)
    assert not torch.equal(before["layers.0.weight"], after["layers.0.weight"])
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith("layers.0"))
    assert len(net.optimizers[1].state) == 0 and len(net.optimizers[2].state) == 0


def test_sequential_fit_trains_every_layer():
    X = seeded(64, 6, seed=11)
    y = (X[:, 0] > 0).long()
    net = Network.mlp(6, (8, 8), 2, rule="tpsgd_l2", seed=0)
    before = state_copy(net)
    fit(net, X, y, epochs=1, batch_size=16, schedule="sequential", progress=False)
    after = state_copy(net)
    assert all(not torch.equal(before[k], after[k]) for k in before)


# ---------------------------------------------------------- locality: no backward, memory
def forbid(*args, **kwargs):
    raise AssertionError("a local rule must not call autograd")


@pytest.mark.parametrize("rule", LOCAL_RULES)
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_local_rules_never_use_autograd(rule, kind, monkeypatch):
    monkeypatch.setattr(torch.Tensor, "backward", forbid)
    monkeypatch.setattr(torch.autograd, "backward", forbid)
    monkeypatch.setattr(torch.autograd, "grad", forbid)
    if kind == "mlp":
        net, (x, t) = Network.mlp(6, (8, 8), 3, rule=rule), batch()
    else:
        net, (x, t) = Network(conv_layers(), rule=rule), image_batch()
    before = state_copy(net)
    net.train_step(x, t)
    after = state_copy(net)  # with the learned heads made on this step (local_head)
    assert all(not torch.equal(v, after[k]) for k, v in before.items())


def test_local_loss_rule_uses_no_backward(monkeypatch):
    monkeypatch.setattr(torch.Tensor, "backward", forbid)
    monkeypatch.setattr(torch.autograd, "backward", forbid)
    rule = LocalLoss(lambda h, t: ((h - t) ** 2).sum())
    net = Network.mlp(6, (8, 8), 3, rule=rule)
    net.train_step(*batch())


def test_backward_is_really_patched(monkeypatch):
    """The patch used above does catch a backward pass (so those tests can fail)."""
    monkeypatch.setattr(torch.Tensor, "backward", forbid)
    leaf = torch.ones(2, requires_grad=True)
    with pytest.raises(AssertionError, match="autograd"):
        (leaf * 2).sum().backward()


@pytest.mark.parametrize("rule", LOCAL_RULES)
def test_local_activation_memory_is_flat_in_depth(rule):
    x, t = batch(n=32, n_in=20)
    peaks = {}
    for depth in (2, 8):
        net = Network.mlp(20, (32,) * depth, 3, rule=rule, seed=0)
        net.train_step(x, t)
        peaks[depth] = net.activation_bytes
    assert peaks[2] > 0
    assert peaks[8] == peaks[2]


def test_bp_activation_memory_grows_with_depth():
    x, t = batch(n=32, n_in=20)
    peaks = {}
    for rule in ("bp", "tpsgd_l2"):
        for depth in (2, 8):
            net = Network.mlp(20, (32,) * depth, 3, rule=rule, seed=0)
            net.train_step(x, t)
            peaks[rule, depth] = net.activation_bytes
    assert peaks["bp", 8] > 3 * peaks["bp", 2] / 2
    assert peaks["bp", 8] > 3 * peaks["tpsgd_l2", 8]


# ------------------------------------------------------------------------------ bad input
def linear_first():
    return Network([nn.Linear(3, 2)])


BAD_INPUTS = [
    ("unknown rule", lambda: Network.mlp(3, (4,), 2, rule="nope"), ValueError, "Unknown rule"),
    ("unknown layer rule", lambda: Dense(3, 4, rule="nope"), ValueError, "Unknown rule"),
    (
        "unknown activation",
        lambda: Network.mlp(3, (4,), 2, activation="gelu2"),
        ValueError,
        "Unknown activation 'gelu2'",
    ),
    (
        "unknown loss",
        lambda: Network.mlp(3, (4,), 2, loss="hinge"),
        ValueError,
        "Unknown loss 'hinge'",
    ),
    (
        "unknown optimizer",
        lambda: Network.mlp(3, (4,), 2, optimizer="rmsprop"),
        ValueError,
        "Unknown optimizer 'rmsprop'",
    ),
    ("last layer not identity", lambda: Network([Dense(3, 2)]), ValueError, "last layer"),
    (
        "last layer conv",
        lambda: Network([Conv2d(1, 2, 3, activation="identity")]),
        ValueError,
        "last layer",
    ),
    (
        "last layer transform",
        lambda: Network([Dense(3, 2, activation="identity"), Flatten()]),
        ValueError,
        "last layer",
    ),
    ("no layers", lambda: Network([]), ValueError, "at least one layer"),
    ("foreign layer", linear_first, TypeError, "Layer 0 is a Linear"),
    ("zero lr", lambda: Network.mlp(3, (4,), 2, lr=0.0), ValueError, "lr"),
    ("negative lr", lambda: Network.mlp(3, (4,), 2, lr=-1e-3), ValueError, "lr"),
    (
        "ce rule with mse",
        lambda: Network.mlp(3, (4,), 2, rule="fixed_readout_ce", loss="mse"),
        ValueError,
        "fixed_readout_ce",
    ),
    ("infinite lr", lambda: Network.mlp(3, (4,), 2, lr=float("inf")), ValueError, "lr"),
    ("negative seed", lambda: Network.mlp(3, (4,), 2, seed=-1), ValueError, "seed"),
    (
        "bad target_on",
        lambda: Network.mlp(3, (4,), 2, rule=get_rule("dfa", target_on="x")),
        ValueError,
        "target_on",
    ),
]


@pytest.mark.parametrize(
    "make, error, fragment", [case[1:] for case in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS]
)
def test_bad_construction_raises(make, error, fragment):
    with pytest.raises(error, match=fragment):
        make()


@pytest.mark.parametrize(
    "target",
    [torch.arange(8) % 3, torch.zeros(8, 4), torch.zeros(7, 3), torch.zeros(8, 3, 1)],
    ids=["labels", "too wide", "too short", "3d"],
)
def test_wrong_target_shape_raises(target):
    net = Network.mlp(6, (8,), 3)
    with pytest.raises(ValueError, match=r"target must have shape \(n, n_outputs\)"):
        net.train_step(batch()[0], target)


def test_unknown_layer_index_raises():
    net = Network.mlp(6, (8,), 3)
    with pytest.raises(ValueError, match="No trainable layers at indices"):
        net.train_step(*batch(), layers=[7])
    with pytest.raises(ValueError, match="No trainable layers at indices"):
        net.train_step(*batch(), layers=[-1])


def test_empty_layer_selection_says_what_is_wrong():
    net = Network.mlp(6, (8,), 3)
    with pytest.raises(ValueError, match="layer"):
        net.train_step(*batch(), layers=[])


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_missing_device_raises():
    with pytest.raises(ValueError, match="not available"):
        Network.mlp(6, (8,), 3, device="cuda")


@pytest.mark.parametrize("rule", ["fixed_readout_ce", "dfa"])
def test_train_step_returns_logits_of_the_pre_update_weights(rule):
    net = Network.mlp(6, (8, 8), 3, rule=rule, seed=0)
    x, t = batch()
    expected = net.forward(x)
    torch.testing.assert_close(net.train_step(x, t), expected)
    assert net.train_step(x, t, layers=[0]) is None  # the pass stopped at layer 0


def test_cnn_builder_shapes():
    net = Network.cnn((1, 12, 12), 3, channels=(2, 3), kernel_size=3, pool=2, rule="tpsgd_l2")
    x = seeded(4, 1, 12, 12)
    assert net.forward(x).shape == (4, 3)
    assert net.predict(x).shape == (4,)
    net.train_step(x, one_hot([0, 1, 2, 0], 3))


def test_bad_fit_arguments_raise():
    net = Network.mlp(6, (8,), 3)
    x, _ = batch()
    y = torch.arange(8) % 3
    with pytest.raises(ValueError, match="schedule"):
        fit(net, x, y, schedule="greedy", progress=False)
    with pytest.raises(ValueError, match="equal length"):
        fit(net, x, y[:5], progress=False)
    with pytest.raises(ValueError, match="NaN"):
        fit(net, torch.full_like(x, float("nan")), y, progress=False)


# ------------------------------------------------------- slices: cached encoder features
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_forward_slices_compose(kind):
    if kind == "mlp":
        net, (x, _) = Network.mlp(6, (8, 8), 3, seed=0), batch()
    else:
        net, (x, _) = Network(conv_layers(), seed=0), image_batch()
    full = net.forward(x)
    for k in range(len(net.layers) + 1):
        features = net.forward(x, stop=k)
        assert torch.equal(net.forward(features, start=k), full), k


@pytest.mark.parametrize("rule", ["bp", "dfa", "fixed_readout_ce"])
@pytest.mark.parametrize("start", [1, 2])
def test_train_step_from_cached_features_equals_the_full_pass(rule, start):
    a = Network.mlp(6, (8, 8, 8), 3, rule=rule, seed=0)
    b = pickle.loads(pickle.dumps(a))
    x, t = batch()
    upper = [i for i in a.trainable_indices if i >= start]
    logits_a = a.train_step(x, t, layers=upper)
    logits_b = b.train_step(b.forward(x, stop=start), t, layers=upper, start=start)
    assert torch.equal(logits_a, logits_b)
    sa, sb = state_copy(a), state_copy(b)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    # the layers below start are untouched, the ones above all changed
    fresh = state_copy(Network.mlp(6, (8, 8, 8), 3, rule=rule, seed=0))
    for key in sa:
        below = int(key.split(".")[1]) < start
        assert torch.equal(sa[key], fresh[key]) == below, key


def test_train_step_start_above_a_trained_layer_raises():
    net = Network.mlp(6, (8, 8), 3, seed=0)
    with pytest.raises(ValueError, match="start=2"):
        net.train_step(net.forward(batch()[0], stop=2), batch()[1], start=2)
    with pytest.raises(ValueError, match="start=-1"):
        net.train_step(*batch(), start=-1)


def test_wrong_input_width_is_named_before_torch_fails():
    net = Network.mlp(4, (8,), 3)
    with pytest.raises(ValueError, match=r"expects inputs of shape \(n, 4\), got \(2, 5\)"):
        net.train_step(torch.randn(2, 5), net.one_hot(torch.tensor([0, 1])))


def test_repeated_fit_calls_draw_fresh_shuffles():
    from tpsgd_stream.engine.training import fit

    X = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    y = torch.arange(64) % 3
    once, twice = Network.mlp(4, (8,), 3, seed=0), Network.mlp(4, (8,), 3, seed=0)
    fit(once, X, y, epochs=2, batch_size=16)
    fit(twice, X, y, epochs=1, batch_size=16)
    fit(twice, X, y, epochs=1, batch_size=16)
    assert once.epochs_seen == twice.epochs_seen == 2
    assert all(torch.equal(a, b) for a, b in zip(once.parameters(), twice.parameters()))
    # and the two epochs saw the samples in different orders (not one shuffle, nor none)
    seen = []
    recorder = Network.mlp(4, (8,), 3, seed=0)
    step = recorder.train_step
    recorder.train_step = lambda x, target, **kw: (seen.append(x.clone()), step(x, target, **kw))[1]
    fit(recorder, X, y, epochs=2, batch_size=16)
    first, second = torch.cat(seen[:4]), torch.cat(seen[4:])
    assert not torch.equal(first, second) and not torch.equal(first, X)


def _params(net):
    return [p.detach().clone() for p in net.parameters()]


def test_inputs_of_any_real_dtype_train_as_float32():
    """A float64 x (``torch.from_numpy``) and an int64 one-hot target (``F.one_hot``) used to
    fail inside torch, after the first layer of a mixed-rule net had already been updated."""
    layers = lambda: [  # noqa: E731
        Dense(4, 8, rule="fixed_readout_ce"),
        Dense(8, 8, rule="tpsgd_l2"),
        Dense(8, 3, activation="identity"),
    ]
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    y = torch.arange(5) % 3
    plain, cast = Network(layers(), seed=0), Network(layers(), seed=0)
    plain.train_step(x, torch.nn.functional.one_hot(y, 3).float())
    cast.train_step(x.double(), torch.nn.functional.one_hot(y, 3))
    assert all(torch.equal(a, b) for a, b in zip(plain.parameters(), cast.parameters()))
    assert torch.equal(plain.predict(x), cast.predict(x.double()))


@pytest.mark.parametrize("where", ["x", "target"])
def test_non_finite_batches_are_refused_and_change_nothing(where):
    net = Network.mlp(4, (8,), 3, seed=0)
    x, target = torch.randn(6, 4), net.one_hot(torch.arange(6) % 3)
    {"x": x, "target": target}[where][2, 1] = float("nan")
    before = _params(net)
    with pytest.raises(ValueError, match=f"{where} has NaN or infinite"):
        net.train_step(x, target)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_large_finite_batch_is_not_mistaken_for_a_non_finite_one():
    net = Network.mlp(2, (4,), 2, seed=0)
    x = torch.full((4, 2), 3e38)  # its sum overflows float32; every value is finite
    from tpsgd_stream.engine.guard import NonFiniteUpdateError

    try:  # the input check passes; the update itself overflows float32 and is undone
        net.train_step(x, net.one_hot(torch.tensor([0, 1, 0, 1])))
    except NonFiniteUpdateError:
        pass


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda n: n.train_step(torch.zeros(0, 4), torch.zeros(0, 3)), ValueError, "non-empty"),
        (lambda n: n.train_step([[1.0] * 4], torch.zeros(1, 3)), TypeError, "torch.Tensor"),
        (lambda n: n.predict(torch.zeros(2, 5)), ValueError, r"shape \(n, 4\)"),
        (lambda n: n.predict(torch.zeros(2, 4, dtype=torch.cfloat)), TypeError, "real numbers"),
    ],
)
def test_bad_batches_are_named(call, error, message):
    with pytest.raises(error, match=message):
        call(Network.mlp(4, (8,), 3, seed=0))


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: Dense(0, 3), "in_features must be an int >= 1"),
        (lambda: Network.mlp(4, (0,), 3), "out_features must be an int >= 1"),
        (lambda: Network.cnn((1, 8, 8), 3, kernel_size=0), "kernel_size must be an int >= 1"),
        (lambda: Network.cnn((8, 8), 3), r"image_shape must be \(channels, height, width\)"),
        (lambda: Network.cnn((1, 8, 8), 3, pool=-1), "pool must be an int >= 0"),
    ],
)
def test_bad_sizes_are_named_when_built(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_each_hidden_layer_gets_its_own_projection():
    """Same width, same seed: the projections of layers 0 and 1 are different draws (stream =
    layer index), as the paper's per-layer P_i."""
    net = Network.mlp(8, (16, 16), 3, rule="tpsgd_l2", seed=0)
    net.train_step(torch.randn(4, 8), net.one_hot(torch.tensor([0, 1, 2, 0])))
    first, second = (net.projection(i).matrix(3, (16,)) for i in (0, 1))
    assert first.shape == second.shape and not torch.allclose(first, second)


@pytest.mark.parametrize("rule", ["tpsgd_l2", "fixed_readout_ce_ls", "local_head", "drtp"])
def test_held_memory_measured_by_torch_is_flat_in_depth_for_local_rules(rule):
    """The same claim as the ``activation_bytes`` tests, from the tensors torch allocates
    during a step (a library that kept each layer's activations would fail it)."""
    x, t = batch(n=32, n_in=20)
    peaks = {}
    for name, depth in ((rule, 2), (rule, 8), ("bp", 2), ("bp", 8)):
        net = Network.mlp(20, (32,) * depth, 3, rule=name, seed=0)
        net.train_step(x, t)  # (the optimizer's state is made on the first step,
        net.train_step(x, t)  # the snapshot buffer of the non-finite guard on the second)
        with LiveBytes() as held:
            net.train_step(x, t)
        peaks[name, depth] = held.peak
    assert peaks[rule, 8] == peaks[rule, 2] > 0
    assert peaks["bp", 8] > 2 * peaks["bp", 2]
