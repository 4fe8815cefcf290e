"""Recurrent layers: the paper's eq. 5 by hand, BPTT against autograd, memory flat in T."""

import pytest
import torch

from tpsgd_stream.engine.projection import step_matrix
from tpsgd_stream.engine.recurrent import RecurrentNetwork

N, T, D, H, C = 4, 3, 2, 5, 3


def _data(seed=0, t=T):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(N, t, D, generator=g), torch.tensor([0, 1, 2, 1])


def _copy_cell(net):
    cell = net.cells[0]
    return {k: v.detach().clone() for k, v in cell.named_parameters()}


def test_tpsgd_l1_matches_eq5_by_hand():
    x, y = _data()
    net = RecurrentNetwork(D, H, C, rule="tpsgd_l1", optimizer="sgd", lr=1.0, seed=3)
    w = _copy_cell(net)
    y_star = torch.nn.functional.one_hot(y, C).float()
    grad_wh, grad_wx = torch.zeros(H, H), torch.zeros(H, D)
    h = torch.zeros(N, H)
    for t in range(T):
        h_next = torch.sigmoid(
            h @ w["weight_h"] + w["bias_h"] + x[:, t] @ w["weight_x"].T + w["bias_x"]
        )
        b_t = step_matrix("binary", C, H, seed=3, stream=0, step=t)
        # eq. 5: D_H = sign(Y* B_t - H_{t+1}) (.) H_{t+1} (1 - H_{t+1}); we descend its negative
        d_h = -torch.sign(y_star @ b_t - h_next) * h_next * (1 - h_next) / N
        grad_wh += h.T @ d_h
        grad_wx += (x[:, t].T @ d_h).T  # weight_x is (hidden, in)
        h = h_next
    net.train_step(x, net.one_hot(y))
    cell = net.cells[0]
    torch.testing.assert_close(w["weight_h"] - cell.weight_h.detach(), grad_wh)
    torch.testing.assert_close(w["weight_x"] - cell.weight_x.detach(), grad_wx)


def test_drtp_uses_orthogonal_step_matrices():
    x, y = _data(1)
    net = RecurrentNetwork(D, H, C, rule="drtp", optimizer="sgd", lr=1.0, seed=0)
    w = _copy_cell(net)
    y_star = torch.nn.functional.one_hot(y, C).float()
    grad_wx, h = torch.zeros(H, D), torch.zeros(N, H)
    for t in range(T):
        h_next = torch.sigmoid(
            h @ w["weight_h"] + w["bias_h"] + x[:, t] @ w["weight_x"].T + w["bias_x"]
        )
        b_t = step_matrix("orthogonal", C, H, seed=0, stream=0, step=t)
        grad_wx += (x[:, t].T @ ((y_star @ b_t) * h_next * (1 - h_next) / N)).T
        h = h_next
    net.train_step(x, net.one_hot(y))
    torch.testing.assert_close(w["weight_x"] - net.cells[0].weight_x.detach(), grad_wx)
    b = step_matrix("orthogonal", C, H, seed=0, stream=0, step=1)
    torch.testing.assert_close(b @ b.T, H * torch.eye(C), atol=1e-4, rtol=0)


def test_bptt_equals_autograd():
    x, y = _data(2)
    net = RecurrentNetwork(D, H, C, rule="bp", optimizer="sgd", lr=1.0, seed=1)
    w = {k: v.detach().clone().requires_grad_(True) for k, v in net.cells[0].named_parameters()}
    out = net.readout.layers[0]
    w_out, b_out = (
        out.weight.detach().clone().requires_grad_(True),
        out.bias.detach().clone().requires_grad_(True),
    )
    h = torch.zeros(N, H)
    for t in range(T):
        h = torch.sigmoid(h @ w["weight_h"] + w["bias_h"] + x[:, t] @ w["weight_x"].T + w["bias_x"])
    loss = torch.nn.functional.cross_entropy(h @ w_out.T + b_out, y)
    loss.backward()
    net.train_step(x, net.one_hot(y))
    for name, param in net.cells[0].named_parameters():
        torch.testing.assert_close(w[name].detach() - param.detach(), w[name].grad)
    torch.testing.assert_close(w_out.detach() - out.weight.detach(), w_out.grad)


@pytest.mark.parametrize("clip", [1e-3, 1e3])
def test_bptt_gradient_clipping_bounds_the_update(clip):
    x, y = _data(2)
    net = RecurrentNetwork(D, H, C, rule="bp", optimizer="sgd", lr=1.0, seed=1, clip_grad_norm=clip)
    ref = RecurrentNetwork(D, H, C, rule="bp", optimizer="sgd", lr=1.0, seed=1)
    params = [*net.cells.parameters(), *net.readout.parameters()]
    ref_params = [*ref.cells.parameters(), *ref.readout.parameters()]
    before = [p.detach().clone() for p in params]
    features = ref._run(x, None, target=None, error=None)
    logits = ref.readout.layers[0](features)
    torch.nn.functional.cross_entropy(logits, y).backward()
    norm = torch.nn.utils.clip_grad_norm_(ref_params, clip)
    net.train_step(x, net.one_hot(y))
    steps = [b - p.detach() for b, p in zip(before, params)]
    for step, ref_param in zip(steps, ref_params):
        torch.testing.assert_close(step, ref_param.grad)
    total = torch.linalg.vector_norm(torch.cat([s.flatten() for s in steps]))
    assert total <= clip * (1 + 1e-4)
    if clip > norm:  # a large bound leaves the gradients as they were
        torch.testing.assert_close(total, norm)
    else:  # a small one shrinks the update to the bound exactly
        assert norm > 10 * clip
        torch.testing.assert_close(total, torch.tensor(clip))


@pytest.mark.parametrize("rule", ["tpsgd_l1", "drtp", "tpsgd_l2"])
def test_local_memory_flat_in_sequence_length_bptt_grows(rule):
    held = {}
    for name in (rule, "bp"):
        for t in (10, 1000):
            x, y = _data(0, t)
            net = RecurrentNetwork(D, H, C, rule=name)
            net.train_step(x, net.one_hot(y))
            held[name, t] = net.held_bytes
    assert held[rule, 10] == held[rule, 1000] > 0
    assert held["bp", 1000] > 50 * held["bp", 10]


def test_padded_sequences_follow_their_own_length():
    x, _ = _data(3, t=6)
    net = RecurrentNetwork(D, H, C, bidirectional=True, num_layers=2, seed=0)
    lengths = torch.tensor([6, 4, 2, 1])
    padded = x.clone()
    for i, n in enumerate(lengths):
        padded[i, n:] = 99.0  # garbage that must be ignored
    batched = net.encode(padded, lengths)
    for i, n in enumerate(lengths):
        alone = net.encode(x[i : i + 1, :n])
        torch.testing.assert_close(batched[i : i + 1], alone)


def test_readout_only_control_leaves_cells_unchanged():
    x, y = _data()
    net = RecurrentNetwork(D, H, C, train_recurrent=False)
    before = _copy_cell(net)
    readout_before = net.readout.layers[0].weight.detach().clone()
    net.train_step(x, net.one_hot(y))
    for name, param in net.cells[0].named_parameters():
        assert torch.equal(param, before[name])
    assert not torch.equal(net.readout.layers[0].weight, readout_before)


@pytest.mark.parametrize(
    "x, lengths, match",
    [
        (torch.randn(4, 3), None, r"shape \(n, T, 2\)"),
        (torch.randn(4, 3, 7), None, r"shape \(n, T, 2\)"),
        (torch.randn(4, 0, 2), None, "0 time steps"),
        (torch.randn(4, 3, 2), torch.tensor([1, 2, 3, 4]), "lengths"),
    ],
)
def test_bad_input_is_named(x, lengths, match):
    net = RecurrentNetwork(D, H, C)
    before = _copy_cell(net)
    with pytest.raises(ValueError, match=match):
        net.train_step(x, torch.zeros(4, C), lengths)
    for name, param in net.cells[0].named_parameters():
        assert torch.equal(param, before[name])


def test_local_rules_learn_row_wise_digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = torch.tensor(X / 16.0, dtype=torch.float32).reshape(-1, 8, 8)
    y = torch.tensor(y)
    accuracy = {}
    # measured (hidden 32, 4 epochs, batch 50, lr 2e-2), seeds 0/1:
    # bp 0.617/0.559, tpsgd_l1 0.418/0.380, readout only (control) 0.254/0.242
    for rule, kwargs in (("bp", {}), ("tpsgd_l1", {}), ("tpsgd_l1", {"train_recurrent": False})):
        net = RecurrentNetwork(8, 32, 10, rule=rule, lr=2e-2, seed=0, **kwargs)
        for _ in range(4):
            for i in range(0, 1400, 50):
                net.train_step(X[i : i + 50], net.one_hot(y[i : i + 50]))
        accuracy[rule, bool(kwargs)] = (net.predict(X[1400:]) == y[1400:]).float().mean().item()
    assert accuracy["bp", False] > 0.45
    assert accuracy["tpsgd_l1", False] > 0.3
    assert accuracy["tpsgd_l1", False] > accuracy["tpsgd_l1", True] + 0.08


@pytest.mark.parametrize("steps, credit", [(3, 3), (3, 8), (5, 2)])
def test_truncated_local_credit_matches_autograd(steps, credit):
    # sum_t CE(h_t B_t^T, y): the gradient w.r.t. the cell, back-propagated through W_H at
    # most credit - 1 steps (detached further back), equals the accumulated pseudo-gradient
    x, y = _data(4, t=steps)
    net = RecurrentNetwork(
        D,
        H,
        C,
        rule="fixed_readout_ce",
        activation="tanh",
        optimizer="sgd",
        lr=1.0,
        seed=2,
        credit_steps=credit,
    )
    w = {k: v.detach().clone().requires_grad_(True) for k, v in net.cells[0].named_parameters()}
    scale = 3.2 / H**0.5  # fixed_readout_ce's default temperature
    states, loss = [torch.zeros(N, H)], 0.0
    for t in range(steps):
        z = x[:, t] @ w["weight_x"].T + w["bias_x"] + states[-1] @ w["weight_h"] + w["bias_h"]
        states.append(torch.tanh(z))
        # the loss at t sees the states of steps t-credit+1..t through W_H, no further back
        h_t = _truncated_state(x, w, states, t, credit)
        b_t = step_matrix("normal", C, H, seed=2, stream=0, step=t, scale=scale)
        loss = loss + torch.nn.functional.cross_entropy(h_t @ b_t.T, y)
    loss.backward()
    net.train_step(x, net.one_hot(y))
    for name, param in net.cells[0].named_parameters():
        torch.testing.assert_close(w[name].detach() - param.detach(), w[name].grad)


def _truncated_state(x, w, states, t, credit):
    """h_t recomputed from the detached state credit steps back."""
    start = max(0, t - credit + 1)
    h = states[start].detach()
    for s in range(start, t + 1):
        h = torch.tanh(x[:, s] @ w["weight_x"].T + w["bias_x"] + h @ w["weight_h"] + w["bias_h"])
    return h


def test_truncated_credit_memory_flat_in_sequence_length():
    held = {}
    for t in (10, 1000):
        x, y = _data(0, t)
        net = RecurrentNetwork(D, H, C, rule="fixed_readout_ce", credit_steps=4)
        net.train_step(x, net.one_hot(y))
        held[t] = net.held_bytes
    assert held[10] == held[1000] > 0


def test_recurrent_norm_cap_and_bad_settings():
    x, y = _data()
    net = RecurrentNetwork(D, H, C, rule="drtp", lr=1.0, optimizer="sgd", max_recurrent_norm=0.1)
    net.train_step(x, net.one_hot(y))
    norm = torch.linalg.matrix_norm(net.cells[0].weight_h.detach())
    assert norm <= 0.1 * H**0.5 * (1 + 1e-5)
    with pytest.raises(ValueError, match="credit_steps"):
        RecurrentNetwork(D, H, C, credit_steps=0)
    with pytest.raises(ValueError, match="max_recurrent_norm"):
        RecurrentNetwork(D, H, C, max_recurrent_norm=0.0)
    with pytest.raises(ValueError, match="clip_grad_norm"):
        RecurrentNetwork(D, H, C, rule="bp", clip_grad_norm=-1.0)


def test_grown_inputs_and_outputs_keep_the_logits():
    x, y = _data()
    net = RecurrentNetwork(D, H, C, bidirectional=True, seed=0)
    net.train_step(x, net.one_hot(y))
    before = net.forward(x)
    net.grow_inputs(2)
    net.grow_outputs(1)
    after = net.forward(torch.cat([x, torch.randn(N, T, 2)], dim=2))
    torch.testing.assert_close(after[:, :C], before)
    assert torch.equal(after[:, C], torch.zeros(N))
    net.train_step(torch.randn(N, T, D + 2), net.one_hot(torch.tensor([3, 0, 1, 2])))


@pytest.mark.parametrize("rule", ["local_head", "forward_grad"])
def test_rules_that_cannot_train_recurrent_cells_are_refused_when_built(rule):
    with pytest.raises(ValueError, match=f"rule '{rule}' cannot train recurrent cells"):
        RecurrentNetwork(3, 8, 2, rule=rule)


def test_gated_rule_gives_cells_a_dense_delta_with_the_learned_rows_zero():
    """``fixed_readout_ce_ls`` returns only the rows still learning once most samples are confident;
    a cell's gradient and the credit it sends back need every row."""
    net = RecurrentNetwork(3, 8, 2, rule="fixed_readout_ce_ls", seed=0)
    rule = net.rule
    matrix = step_matrix(
        rule.projection, 2, 8, seed=0, stream=0, step=0, scale=rule.default_scale(8)
    )
    target = torch.eye(2)[[0, 0, 0, 1]]
    a = 400.0 * matrix[[0, 0, 0, 1]]  # read out through B_0: every sample confident...
    a[3] = 0.5  # ...but the last, read out near uniform (sigmoid cells: slope 1/4 there)
    delta = net.step_delta(0, 0, a, a, None, target)
    assert isinstance(delta, torch.Tensor) and delta.shape == (4, 8)
    assert torch.count_nonzero(delta[:3]) == 0 and torch.count_nonzero(delta[3]) > 0


@pytest.mark.parametrize(
    "x, target, lengths, error, message",
    [
        (torch.full((2, 3, 2), float("nan")), torch.eye(2), None, ValueError, "x has NaN"),
        (torch.zeros(2, 3, 2), torch.full((2, 2), float("inf")), None, ValueError, "target has"),
        (torch.zeros(0, 3, 2), torch.zeros(0, 2), None, ValueError, "0 sequences"),
        (torch.zeros(2, 3, 2), torch.eye(2), torch.tensor([2.7, 3.0]), ValueError, "whole"),
        (torch.zeros(2, 3, 2), "labels", None, TypeError, "real torch.Tensor"),
    ],
)
def test_bad_sequence_batches_are_refused_and_change_nothing(x, target, lengths, error, message):
    net = RecurrentNetwork(2, 4, 2, rule="fixed_readout_ce", seed=0)
    before = [p.detach().clone() for p in net.parameters()]
    with pytest.raises(error, match=message):
        net.train_step(x, target, lengths)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_held_memory_measured_by_torch_grows_with_length_only_for_bptt():
    """Local credit holds one step's tensors whatever T (beyond the input itself); BPTT keeps
    the unrolled graph. Measured from torch's own allocations, not ``held_bytes``."""
    from conftest import LiveBytes

    peaks = {}
    for rule in ("fixed_readout_ce", "bp"):
        for T in (5, 40):
            net = RecurrentNetwork(3, 16, 2, rule=rule, seed=0)
            x, target = torch.randn(8, T, 3), torch.eye(2)[torch.arange(8) % 2]
            net.train_step(x, target)  # (the optimizers' state is made on the first step)
            with LiveBytes() as held:
                net.train_step(x, target)
            peaks[rule, T] = held.peak
    input_growth = 8 * 35 * 3 * 4  # the longer input's own bytes
    assert peaks["fixed_readout_ce", 40] - peaks["fixed_readout_ce", 5] <= input_growth
    assert peaks["bp", 40] - peaks["bp", 5] > 4 * input_growth


def test_a_custom_local_loss_trains_recurrent_cells():
    """Refusing rules by name would also refuse unregistered ones such as a ``LocalLoss``."""
    from tpsgd_stream import LocalLoss

    net = RecurrentNetwork(3, 8, 2, rule=LocalLoss(lambda h, t: ((h - t) ** 2).sum()), seed=0)
    before = net.cells[0].weight_x.detach().clone()
    net.train_step(torch.randn(4, 5, 3), torch.eye(2)[[0, 1, 0, 1]])
    assert not torch.equal(before, net.cells[0].weight_x)


# --------------------------------------------------------- weight_x layout (hidden, in)
def _old_layout_state(net):
    """``net``'s state dict as a release before the (hidden, in) layout wrote it."""
    state = net.state_dict()
    old = type(state)((k, v.T.clone() if k.endswith("weight_x") else v) for k, v in state.items())
    old._metadata = {k: dict(v) for k, v in state._metadata.items()}
    for key in old._metadata:
        if key.startswith("cells."):
            old._metadata[key]["version"] = 1
    return old


def test_weight_x_is_hidden_by_input_and_grows_by_columns():
    x, y = _data()
    net = RecurrentNetwork(D, H, C, seed=0)
    assert net.cells[0].weight_x.shape == (H, D)
    net.train_step(x, net.one_hot(y))
    weight = net.cells[0].weight_x.detach().clone()
    moments = dict(net.optimizers[0].state[net.cells[0].weight_x])
    net.grow_inputs(2)
    cell = net.cells[0]
    assert cell.weight_x.shape == (H, D + 2)
    assert torch.equal(cell.weight_x[:, :D], weight)
    assert torch.equal(cell.weight_x[:, D:], torch.zeros(H, 2))
    for key in ("exp_avg", "exp_avg_sq"):
        grown = net.optimizers[0].state[cell.weight_x][key]
        assert grown.shape == (H, D + 2)
        assert torch.equal(grown[:, :D], moments[key])
        assert torch.equal(grown[:, D:], torch.zeros(H, 2))


@pytest.mark.parametrize("size", [(D, H), (H, H)])  # the square one only its version tells
def test_old_layout_state_dict_loads_transposed(size):
    x = torch.randn(N, T, size[0])
    y = torch.tensor([0, 1, 2, 1])
    net = RecurrentNetwork(*size, C, num_layers=2, bidirectional=True, seed=0)
    net.train_step(x, net.one_hot(y))
    twin = RecurrentNetwork(*size, C, num_layers=2, bidirectional=True, seed=5)
    twin.load_state_dict(_old_layout_state(net))
    for a, b in zip(net.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(net.forward(x), twin.forward(x))
    # today's layout, also without metadata, loads as it is
    again = RecurrentNetwork(*size, C, num_layers=2, bidirectional=True, seed=5)
    again.load_state_dict(dict(net.state_dict()))
    assert torch.equal(net.forward(x), again.forward(x))


def test_old_layout_state_dict_without_metadata_loads_by_shape():
    x, y = _data()
    net = RecurrentNetwork(D, H, C, seed=0)
    net.train_step(x, net.one_hot(y))
    twin = RecurrentNetwork(D, H, C, seed=5)
    twin.load_state_dict(dict(_old_layout_state(net)))  # (a plain dict: no versions)
    assert torch.equal(net.forward(x), twin.forward(x))


def _old_layout_pickle(net):
    """Pickle bytes of ``net`` as a release before the (hidden, in) layout wrote them."""
    import copy
    import pickle

    old = copy.deepcopy(net)
    for cell, optimizer in zip(old.cells, old.optimizers):
        del cell.__dict__["weight_layout"]
        state = optimizer.state[cell.weight_x]
        for key in ("exp_avg", "exp_avg_sq"):
            state[key] = state[key].T.contiguous()
        cell.weight_x.data = cell.weight_x.data.T.contiguous()
    return pickle.dumps(old)


@pytest.mark.parametrize("size", [(D, H), (H, H)])
def test_old_layout_pickle_loads_and_trains_identically(size):
    import pickle

    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, T, size[0], generator=g)
    y = torch.tensor([0, 1, 2, 1])
    net = RecurrentNetwork(*size, C, bidirectional=True, seed=0)
    net.train_step(x, net.one_hot(y))
    twin = pickle.loads(_old_layout_pickle(net))
    assert twin.cells[0].weight_x.shape == (H, size[0])
    assert "_moments_to_transpose" not in twin.cells[0].__dict__
    assert torch.equal(net.forward(x), twin.forward(x))
    for _ in range(3):  # the Adam moments were transposed with the weights
        net.train_step(x, net.one_hot(y))
        twin.train_step(x, twin.one_hot(y))
    for a, b in zip(net.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a, b)
    # a pickle of today's layout is left as it is
    again = pickle.loads(pickle.dumps(net))
    assert torch.equal(net.forward(x), again.forward(x))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"seed": -1}, "seed must be a non-negative int"),
        ({"lr": 0.0}, "lr must be a positive finite number"),
        ({"loss": "hinge"}, "Unknown loss 'hinge'"),
    ],
)
def test_shared_base_checks_the_constructor_as_network_does(kwargs, message):
    from tpsgd_stream.engine.network import Network

    with pytest.raises(ValueError, match=message):
        RecurrentNetwork(D, H, C, **kwargs)
    with pytest.raises(ValueError, match=message):
        Network.mlp(D, [H], C, **kwargs)
