"""The least-squares readout (``readout_solver="rls"``, ``tpsgd_stream.engine.least_squares``):
exact ridge regression after every sample, its state saved, pickled, reset and grown."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import as_old_file

from tpsgd_stream.engine.least_squares import COUNT_KEY, RLS_KEY, rls_block_step, rls_step
from tpsgd_stream.engine.network import Network
from tpsgd_stream.models import TPSGDClassifier
from tpsgd_stream.models.base import rule_default

torch.set_num_threads(1)  # see tests/test_estimators.py


def _samples(n=120, width=5, n_classes=4, seed=0):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, width))
    targets = np.eye(n_classes, dtype=np.float32)[rng.integers(0, n_classes, n)]
    return features, targets


def _readout(net) -> np.ndarray:
    out = net.layers[net.output_index]
    return np.hstack([out.weight.detach().numpy(), out.bias.detach().numpy()[:, None]])


def _zeroed(width=5, n_classes=4) -> Network:
    net = Network.mlp(3, (width,), n_classes, seed=0)
    with torch.no_grad():
        net.layers[-1].weight.zero_()
        net.layers[-1].bias.zero_()
    return net


@pytest.mark.parametrize("reg", [1.0, 0.1])
def test_rls_steps_reach_the_ridge_solution(reg):
    """From zero weights, one step per sample gives the batch ridge regression of the
    targets on ``[h, 1]``, and ``P`` the inverse of the regularised Gram matrix."""
    net = _zeroed()
    features, targets = _samples()
    for h, t in zip(features, targets):
        assert rls_step(net, h, t, reg=reg) is True
    phi = np.hstack([features, np.ones((len(features), 1))])
    gram = phi.T @ phi + reg * np.eye(phi.shape[1])
    np.testing.assert_allclose(_readout(net), np.linalg.solve(gram, phi.T @ targets).T, atol=1e-6)
    inverse = net.optimizers[net.output_index].state[net.layers[-1].weight][RLS_KEY]
    assert inverse.dtype == torch.float64
    np.testing.assert_allclose(inverse.numpy(), np.linalg.inv(gram), atol=1e-12)


def test_forgetting_keeps_p_the_inverse_of_a_refreshed_gram_matrix():
    """With ``forget``, ``P`` stays the inverse of ``A <- forget A + phi phi^T``, with
    ``4 width (1 - forget) reg`` added to one diagonal entry of ``A`` every 4 samples in turn
    (the prior's penalty given back), and the weights take the plain recurrence's steps."""
    net = _zeroed()
    features, targets = _samples(60)
    forget, reg = 0.9, 0.5
    width = features.shape[1] + 1
    gram, weights = reg * np.eye(width), np.zeros((targets.shape[1], width))
    for i, (h, t) in enumerate(zip(features, targets)):
        rls_step(net, h, t, forget=forget, reg=reg)
        phi = np.append(h, 1.0)
        inverse = np.linalg.inv(gram)
        gain = inverse @ phi / (forget + phi @ inverse @ phi)
        weights += np.outer(t - weights @ phi, gain)
        gram = forget * gram + np.outer(phi, phi)
        if i % 4 == 3:
            entry = i // 4 % width
            gram[entry, entry] += 4 * width * (1 - forget) * reg
    np.testing.assert_allclose(_readout(net), weights, atol=1e-6)
    inverse = net.optimizers[net.output_index].state[net.layers[-1].weight][RLS_KEY]
    np.testing.assert_allclose(inverse.numpy(), np.linalg.inv(gram), rtol=1e-9, atol=1e-12)


def test_p_stays_the_symmetric_inverse_over_a_long_run_with_fast_forgetting():
    """Dividing ``P`` by ``forget`` every sample multiplies its rounding asymmetry too (at 0.99,
    by e^30 over 3,000 samples): P is made symmetric again every so often, and stays the
    inverse of the refreshed Gram matrix."""
    net = _zeroed(width=6)
    features, targets = _samples(3000, width=6)
    forget, reg, width = 0.99, 1.0, 7
    gram = reg * np.eye(width)
    for i, (h, t) in enumerate(zip(features, targets)):
        rls_step(net, h, t, forget=forget, reg=reg)
        phi = np.append(h, 1.0)
        gram = forget * gram + np.outer(phi, phi)
        if i % 4 == 3:
            gram[i // 4 % width, i // 4 % width] += 4 * width * (1 - forget) * reg
    inverse = net.optimizers[net.output_index].state[net.layers[-1].weight][RLS_KEY].numpy()
    np.testing.assert_allclose(inverse, np.linalg.inv(gram), rtol=1e-6, atol=1e-9)
    assert np.abs(inverse - inverse.T).max() < 1e-12


def test_an_indefinite_p_is_started_afresh_rather_than_refusing_every_sample():
    """Were rounding to make ``P`` indefinite (``phi^T P phi < -forget``), every later step
    would be refused: ``P`` is set back to its prior instead and the sample learned."""
    features, targets = _samples(2)
    nets = _zeroed(), _zeroed()
    for net, start in zip(nets, (-1.0, 1.0)):  # indefinite, or the prior itself
        rls_step(net, features[0], targets[0])
        inverse = net.optimizers[net.output_index].state[net.layers[-1].weight][RLS_KEY]
        inverse.copy_(start * torch.eye(6, dtype=torch.float64))
        assert rls_step(net, features[1], targets[1]) is True
    np.testing.assert_array_equal(_readout(nets[0]), _readout(nets[1]))
    restarted = nets[0].optimizers[1].state[nets[0].layers[-1].weight][RLS_KEY]
    np.testing.assert_array_equal(restarted.numpy(), inverse.numpy())


def test_a_reset_starts_the_readout_afresh():
    """Clearing the output layer's optimizer state (as a drift wrapper does after
    re-initialising the readout) drops ``P``: the next step starts from ``I``."""
    net = _zeroed()
    features, targets = _samples(30)
    for h, t in zip(features, targets):
        rls_step(net, h, t)
    net.reset_optimizer_state([net.output_index])
    with torch.no_grad():
        net.layers[-1].weight.zero_()
        net.layers[-1].bias.zero_()
    rls_step(net, features[0], targets[0])
    fresh = _zeroed()
    rls_step(fresh, features[0], targets[0])
    np.testing.assert_allclose(_readout(net), _readout(fresh), atol=1e-7)


def _state_of(net) -> list[np.ndarray]:
    """The readout's weights, ``P`` and the count of samples learned."""
    state = net.optimizers[net.output_index].state[net.layers[-1].weight]
    return [_readout(net), state[RLS_KEY].numpy().copy(), state[COUNT_KEY].numpy().copy()]


def test_a_sample_led_by_more_than_the_margin_changes_nothing():
    """With ``margin``, a sample whose class's score leads the others' by more than it is
    skipped (weights, ``P`` and the count as they were: no forgetting either), one led by
    less is learned, and without a margin every sample is."""
    net = _zeroed(width=2, n_classes=3)
    h, first = np.array([1.0, 0.5]), np.array([1.0, 0.0, 0.0], np.float32)
    for _ in range(30):  # class 0's score near 1, the others' near 0
        assert rls_step(net, h, first, forget=0.99)
    before = _state_of(net)
    z = _readout(net) @ np.append(h, 1.0)
    lead = z[0] - z[1:].max()
    assert 0.9 < lead < 1.1
    assert rls_step(net, h, first, forget=0.99, margin=lead - 0.05) is True
    for kept, now in zip(before, _state_of(net)):
        np.testing.assert_array_equal(kept, now)
    rls_step(net, h, first, forget=0.99, margin=lead + 0.05)
    assert _state_of(net)[2] == before[2] + 1
    assert not np.array_equal(_state_of(net)[1], before[1])
    other = np.array([0.0, 1.0, 0.0], np.float32)  # led by class 0: class 1 is wrong, learned
    count = _state_of(net)[2]
    rls_step(net, h, other, forget=0.99, margin=0.5)
    assert _state_of(net)[2] == count + 1


def test_the_classifier_skips_by_its_margin_and_old_models_do_not():
    stream = _stream()
    counts = {}
    for margin in (1.0, None):
        model = _model(readout_margin=margin, readout_per_sample=True)
        for x, y in stream[:60]:  # two well-separated classes: soon learned
            model.learn_one(x, y)
        net = model.network
        state = net.optimizers[net.output_index].state[net.layers[-1].weight]
        counts[margin] = int(state[COUNT_KEY])
    assert counts[None] == 60
    assert counts[1.0] < 55
    assert TPSGDClassifier().readout_margin == 1.0
    old = _model()
    del old.__dict__["readout_margin"]  # a model pickled before the margin
    assert pickle.loads(pickle.dumps(old)).readout_margin is None


@pytest.mark.parametrize("bad", [0, -1.0, float("inf"), float("nan"), True, "1"])
def test_a_bad_readout_margin_is_named(bad):
    with pytest.raises(ValueError, match="readout_margin"):
        TPSGDClassifier(readout_margin=bad)


def test_the_step_leaves_torch_threads_as_found():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        rls_step(_zeroed(), *(a[0] for a in _samples(1)))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def _stream(n=90, seed=0):
    """Three well-separated classes around fixed centres; the third from sample 60 on."""
    rng = np.random.default_rng(seed)
    centres = np.eye(3) * 2.0
    labels = [i % 2 if i < 60 else i % 3 for i in range(n)]
    rows = centres[labels] + rng.normal(scale=0.5, size=(n, 3))
    return [({f"f{j}": float(v) for j, v in enumerate(r)}, y) for r, y in zip(rows, labels)]


def _model(**params):
    return TPSGDClassifier(hidden_layer_sizes=(8,), batch_size=8, seed=0, **params)


def test_the_classifier_learns_with_it_by_default_and_grows_a_class():
    model = _model()
    assert rule_default(model, "readout_solver") == "rls"
    stream = _stream()
    for x, y in stream:  # a third class from sample 61 on
        model.learn_one(x, y)
    net = model.network
    inverse = net.optimizers[net.output_index].state[net.layers[-1].weight][RLS_KEY]
    assert inverse.shape == (9, 9)  # (the hidden width + 1: a class does not grow it)
    assert sorted(model.classes) == [0, 1, 2]
    correct = sum(model.predict_one(x) == y for x, y in stream[-30:])
    assert correct >= 27


def test_the_gradient_solver_is_still_there():
    model = _model(readout_solver="optimizer")
    for x, y in _stream(20):
        model.learn_one(x, y)
    net = model.network
    assert RLS_KEY not in net.optimizers[net.output_index].state[net.layers[-1].weight]


@pytest.mark.parametrize("bad", ["ridge", "RLS", 1])
def test_a_bad_readout_solver_is_named(bad):
    with pytest.raises(ValueError, match="readout_solver"):
        TPSGDClassifier(readout_solver=bad)


def _continued(model, stream):
    for x, y in stream:
        model.learn_one(x, y)
    return [model.predict_proba_one(x) for x, _ in stream[:10]]


def test_a_saved_and_a_pickled_model_go_on_learning_alike(tmp_path):
    """``P`` survives ``save``/``load`` in float64 (``load_state_dict`` alone would cast it to
    the layer's float32) and pickling: the reloaded models learn exactly as the original."""
    stream = _stream()
    model = _model()
    for x, y in stream[:45]:
        model.learn_one(x, y)
    model.save(tmp_path / "m.pt")
    loaded = TPSGDClassifier.load(tmp_path / "m.pt")
    net = loaded.network
    assert net.optimizers[net.output_index].state[net.layers[-1].weight][RLS_KEY].dtype == (
        torch.float64
    )
    buffer = io.BytesIO()
    pickle.dump(model, buffer)
    unpickled = pickle.loads(buffer.getvalue())
    expected = _continued(model, stream[45:])
    assert _continued(loaded, stream[45:]) == expected
    assert _continued(unpickled, stream[45:]) == expected


@pytest.mark.parametrize("per_sample", [True, False])
def test_a_huge_sample_is_absorbed_without_overflow(per_sample):
    """A least-squares step is scale-free, one sample or a block: a sample at 1e30 neither
    overflows nor wrecks the readout (the gradient readout refuses it:
    tests/test_robustness.py)."""
    model = TPSGDClassifier(batch_size=1, seed=0, readout_per_sample=per_sample)
    model.learn_one({"a": 1.0}, 1)
    model.learn_one({"a": -1.0}, 0)
    model.learn_one({"a": 1e30}, 0)
    assert model.skipped_updates == 0
    assert all(torch.isfinite(p).all() for p in model.network.parameters())
    assert model.predict_one({"a": 1.0}) == 1


@pytest.mark.parametrize("bad", [0, 1.5, -0.5, float("nan"), True, "0.9"])
def test_a_bad_readout_forget_is_named(bad):
    with pytest.raises(ValueError, match="readout_forget"):
        TPSGDClassifier(readout_forget=bad)


def test_backprop_keeps_the_gradient_readout():
    """``bp``'s hidden gradients come from the cross-entropy through the readout, so its
    readout learns by that loss too unless told otherwise."""
    model = _model(rule="bp")
    for x, y in _stream(20):
        model.learn_one(x, y)
    net = model.network
    assert RLS_KEY not in net.optimizers[net.output_index].state[net.layers[-1].weight]
    assert rule_default(_model(rule="bp", readout_solver="rls"), "readout_solver") == "rls"


def test_probabilities_are_the_clipped_scores_then_a_softmax():
    """While least squares trains the readout, its scores (regressions of the one-hot labels)
    are clipped to [0.01, 1] and normalised; once an optimizer's minibatch readout takes over
    (a model made before the block readout), softmax."""
    stream = _stream()
    model = _model(readout_per_sample=40)
    model._readout_blocks = False  # (as a model pickled before the block readout)
    for x, y in stream[:30]:
        model.learn_one(x, y)
    x = stream[30][0]
    scores = model._forward(model._row(x))
    clipped = np.clip(scores, 0.01, 1.0)
    proba = model.predict_proba_one(x)
    np.testing.assert_allclose([proba[c] for c in model.classes], clipped / clipped.sum())
    frame = pd.DataFrame([x for x, _ in stream[:5]])
    many = model.predict_proba_many(frame)
    for i, (row, _) in enumerate(stream[:5]):
        assert model.predict_proba_one(row) == pytest.approx(dict(many.iloc[i]), abs=1e-12)
    for x, y in stream[30:]:  # past 40 samples: the minibatch readout
        model.learn_one(x, y)
    x = stream[0][0]
    scores = model._forward(model._row(x))
    softmax = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
    proba = model.predict_proba_one(x)
    np.testing.assert_allclose([proba[c] for c in model.classes], softmax)


def test_a_file_saved_before_the_least_squares_readout_keeps_the_gradient_one(tmp_path):
    model = _model(readout_solver="optimizer", readout_forget=1.0)
    for x, y in _stream(20):
        model.learn_one(x, y)
    loaded = as_old_file(model, tmp_path, ("readout_solver", "readout_forget", "readout_margin"))
    assert loaded.readout_solver == "optimizer" and loaded.readout_forget == 1.0
    assert _continued(loaded, _stream()[20:]) == _continued(model, _stream()[20:])


def _inverse(net) -> np.ndarray:
    return net.optimizers[net.output_index].state[net.layers[-1].weight][RLS_KEY].numpy()


@pytest.mark.parametrize("reg", [1.0, 0.5])
def test_a_block_step_is_the_steps_of_its_rows_in_turn(reg):
    """Without forgetting (and so without the prior's refresh) one block update gives the
    weights and ``P`` of one step per row."""
    features, targets = _samples(40)
    nets = _zeroed(), _zeroed()
    for start in range(0, 40, 16):
        block = slice(start, start + 16)
        assert rls_block_step(nets[0], features[block], targets[block], reg=reg) is True
    for h, t in zip(features, targets):
        rls_step(nets[1], h, t, reg=reg)
    np.testing.assert_allclose(_readout(nets[0]), _readout(nets[1]), atol=1e-6)
    np.testing.assert_allclose(_inverse(nets[0]), _inverse(nets[1]), rtol=1e-9, atol=1e-12)


def test_a_block_step_with_forgetting_follows_the_recurrence():
    """With ``forget``, row ``i`` of a block of ``m`` weighs ``forget^(m-1-i)`` at the block's
    end, and the prior's refresh for the ``m`` rows is given back after it."""
    features, targets = _samples(24)
    forget, reg, width = 0.9, 0.5, 6
    net = _zeroed()
    gram, weights, count = reg * np.eye(width), np.zeros((4, width)), 0
    for start in (0, 8, 16):
        h, t = features[start : start + 8], targets[start : start + 8]
        rls_block_step(net, h, t, reg=reg, forget=forget)
        for row, target in zip(h, t):  # the rows in turn, without the refresh
            phi = np.append(row, 1.0)
            inverse = np.linalg.inv(gram)
            gain = inverse @ phi / (forget + phi @ inverse @ phi)
            weights += np.outer(target - weights @ phi, gain)
            gram = forget * gram + np.outer(phi, phi)
        for _ in range(8):  # then the refresh of those rows
            if count % 4 == 3:
                gram[count // 4 % width, count // 4 % width] += 4 * width * (1 - forget) * reg
            count += 1
    np.testing.assert_allclose(_readout(net), weights, atol=1e-6)
    np.testing.assert_allclose(_inverse(net), np.linalg.inv(gram), rtol=1e-8, atol=1e-12)


def test_a_block_step_leaves_out_the_rows_led_by_the_margin():
    features, targets = _samples(30)
    net = _zeroed()
    rls_block_step(net, features, targets)  # (now the readout fits some rows well)
    z = features @ _readout(net)[:, :-1].T + _readout(net)[:, -1]
    labels = targets.argmax(1)
    own = z[np.arange(30), labels]
    z[np.arange(30), labels] = -np.inf
    led = own - z.max(1) > 0.3
    assert 0 < led.sum() < 30
    nets = _zeroed(), _zeroed()
    for other in nets:
        rls_block_step(other, features, targets)
    rls_block_step(nets[0], features, targets, margin=0.3)
    rls_block_step(nets[1], features[~led], targets[~led])
    np.testing.assert_array_equal(_readout(nets[0]), _readout(nets[1]))
    np.testing.assert_array_equal(_inverse(nets[0]), _inverse(nets[1]))


def test_past_its_per_sample_phase_the_readout_learns_by_blocks(tmp_path):
    """After ``readout_per_sample`` samples the minibatch update solves the readout by least
    squares on the minibatch: ``P`` keeps counting, the optimizer takes no readout step, and
    probabilities stay the clipped scores; saving keeps it so, and a file from before the
    block readout keeps the optimizer's minibatch readout."""
    stream = _stream()
    model = _model(readout_per_sample=16, readout_margin=None)
    for x, y in stream[:16]:
        model.learn_one(x, y)
    net = model.network
    out = net.layers[-1]
    state = net.optimizers[net.output_index].state[out.weight]
    count, steps = int(state[COUNT_KEY]), state["step"].clone()
    for x, y in stream[16:40]:
        model.learn_one(x, y)
    assert int(state[COUNT_KEY]) == count + 24  # (three minibatches of 8)
    assert torch.equal(state["step"], steps)
    x = stream[0][0]
    clipped = np.clip(model._forward(model._row(x)), 0.01, 1.0)
    proba = model.predict_proba_one(x)
    np.testing.assert_allclose([proba[c] for c in model.classes], clipped / clipped.sum())
    model.save(tmp_path / "m.pt")
    assert TPSGDClassifier.load(tmp_path / "m.pt")._readout_blocks is True
    old = as_old_file(model, tmp_path, entries=("readout_blocks",))
    assert old._readout_blocks is False
    assert _continued(TPSGDClassifier.load(tmp_path / "m.pt"), stream[40:]) == _continued(
        model, stream[40:]
    )
