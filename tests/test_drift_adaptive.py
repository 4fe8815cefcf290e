"""DriftAdaptiveClassifier: adaptor-only re-training on a detected drift, and nothing else.

The models keep a fixed minibatch with every layer learning from it (``**MINIBATCH``, a
readout that waits for the minibatch, one learning rate): the thresholds below were set on it.
"""

import numpy as np
import pytest
import torch
from river import checks, preprocessing
from river.drift import ADWIN
from river.drift.binary import DDM

from tpsgd_stream.drift import Shift, digits_shift_stream
from tpsgd_stream.drift.adaptive import DriftAdaptiveClassifier
from tpsgd_stream.engine.network import Network
from tpsgd_stream.models import TPSGDClassifier

N, SHIFT = 2400, 1200
MINIBATCH = {  # the defaults before the per-sample readout: all layers on the minibatch
    "batch_ramp": 0,
    "readout_per_sample": False,
    "readout_solver": "optimizer",
    "hidden_lr_scale": 1.0,
}


def _run(model, shifts, n=N):
    pipeline = preprocessing.StandardScaler() | model
    correct = []
    for x, y in digits_shift_stream(shifts, n_samples=n, seed=0):
        correct.append(pipeline.predict_one(x) == y)
        pipeline.learn_one(x, y)
    return np.array(correct)


@pytest.mark.parametrize("detector", [None, DDM()], ids=["ADWIN", "DDM"])
def test_label_swap_triggers_adaptor_only_training(detector, monkeypatch):
    model = DriftAdaptiveClassifier(
        TPSGDClassifier(rule="local_head", **MINIBATCH, hidden_layer_sizes=(32,), seed=0),
        detector=detector,
        seed=0,
        remap_labels=False,
    )
    snapshots = []
    original = DriftAdaptiveClassifier._adapt

    def watched(self, event):
        net = self.model.network
        before = {k: p.detach().clone() for k, p in net.named_parameters()}
        original(self, event)
        snapshots.append((before, {k: p.detach().clone() for k, p in net.named_parameters()}))

    monkeypatch.setattr(DriftAdaptiveClassifier, "_adapt", watched)
    correct = _run(model, [Shift("label_swap", SHIFT)])
    adapted = [e for e in model.drift_events if e.action == "adapt"]
    assert adapted and all(e.index >= SHIFT for e in adapted)
    assert adapted[0].index - SHIFT < 300  # detection delay
    assert adapted[0].cut >= SHIFT - 100 and adapted[0].n_samples >= model.min_samples
    before, after = snapshots[0]
    adaptor = {"layers.1.weight", "layers.1.bias"}  # the output layer
    # the encoder: the hidden layer, and its learned head under the local_head rule
    assert len(before) > len(adaptor)
    assert all(torch.equal(before[k], after[k]) for k in before if k not in adaptor)
    assert not any(torch.equal(before[k], after[k]) for k in adaptor)
    # it pays off: better than learning on without adapting over the 500 samples after
    plain = _run(
        TPSGDClassifier(rule="local_head", **MINIBATCH, hidden_layer_sizes=(32,), seed=0),
        [Shift("label_swap", SHIFT)],
    )
    assert correct[SHIFT : SHIFT + 500].mean() > plain[SHIFT : SHIFT + 500].mean() + 0.15


def test_no_adaptation_on_a_stationary_stream_of_the_same_length():
    model = DriftAdaptiveClassifier(
        TPSGDClassifier(rule="local_head", **MINIBATCH, hidden_layer_sizes=(32,), seed=0), seed=0
    )
    _run(model, [])
    assert not [e for e in model.drift_events if e.action == "adapt"]


def test_replay_window_never_exceeds_its_bound():
    model = DriftAdaptiveClassifier(
        TPSGDClassifier(rule="local_head", **MINIBATCH, hidden_layer_sizes=(8,), seed=0),
        window=60,
        min_samples=20,
    )
    pipeline = preprocessing.StandardScaler() | model
    for x, y in digits_shift_stream([Shift("label_swap", 300)], n_samples=600, seed=1):
        pipeline.learn_one(x, y)
        assert len(model._replay) <= 60


def test_costs_are_reported_and_below_a_full_retraining():
    model = DriftAdaptiveClassifier(
        TPSGDClassifier(rule="local_head", **MINIBATCH, hidden_layer_sizes=(32,), seed=0),
        seed=0,
        remap_labels=False,
    )
    _run(model, [Shift("label_swap", SHIFT)])
    event = next(e for e in model.drift_events if e.action == "adapt")
    assert event.seconds > 0 and event.parameters == 32 * 10 + 10
    assert 0 < event.multiply_adds < 0.5 * event.full_multiply_adds


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"model": "not a model"}, TypeError, "TPSGDClassifier"),
        ({"adaptor_layers": 0}, ValueError, "adaptor_layers"),
        ({"adaptor_layers": 5}, ValueError, "trainable layers"),
        ({"window": 10, "min_samples": 20}, ValueError, "cannot exceed"),
        ({"passes": 1.5}, ValueError, "passes"),
    ],
)
def test_bad_parameters_are_named(kwargs, error, match):
    kwargs = {"model": TPSGDClassifier(rule="local_head", **MINIBATCH), **kwargs}
    with pytest.raises(error, match=match):
        DriftAdaptiveClassifier(**kwargs)


def test_bad_input_leaves_the_wrapper_unchanged():
    model = DriftAdaptiveClassifier(
        TPSGDClassifier(rule="local_head", **MINIBATCH, hidden_layer_sizes=(8,), seed=0)
    )
    model.learn_one({"a": 1.0}, 0)
    with pytest.raises(ValueError):
        model.learn_one({"a": float("nan")}, 1)
    assert model._n == 1 and len(model._replay) == 1


@pytest.mark.parametrize(
    "check",
    list(
        checks.yield_checks(
            DriftAdaptiveClassifier(TPSGDClassifier(rule="local_head", **MINIBATCH, seed=0))
        )
    ),
    ids=lambda check: check.__name__,
)
def test_river_checks(check):
    for params in DriftAdaptiveClassifier._unit_test_params():
        check(DriftAdaptiveClassifier(**params).clone())


def test_freeze_encoder_keeps_the_encoder_fixed_after_the_first_adaptation():
    model = DriftAdaptiveClassifier(
        TPSGDClassifier(rule="local_head", **MINIBATCH, hidden_layer_sizes=(16,), seed=0),
        freeze_encoder=True,
        seed=0,
        remap_labels=False,
    )
    pipeline = preprocessing.StandardScaler() | model
    stream = list(digits_shift_stream([Shift("label_swap", 800)], n_samples=1600, seed=0))
    encoder = None
    for x, y in stream:
        pipeline.learn_one(x, y)
        if encoder is None and any(e.action == "adapt" for e in model.drift_events):
            encoder = model.model.network.layers[0].weight.detach().clone()
            adaptor = model.model.network.layers[1].weight.detach().clone()
    assert encoder is not None
    assert torch.equal(model.model.network.layers[0].weight, encoder)
    assert not torch.equal(model.model.network.layers[1].weight, adaptor)


GRADUAL = [Shift("label_swap", 1200, width=600)]


@pytest.mark.parametrize("background", [True, False])
def test_a_background_adaptor_from_the_warning_is_swapped_in(background, monkeypatch):
    # a gradual swap and an early warning give the background adaptor time to see
    # min_samples samples before the drift
    model = DriftAdaptiveClassifier(
        TPSGDClassifier(rule="local_head", **MINIBATCH, hidden_layer_sizes=(32,), seed=0),
        detector=DDM(warning_threshold=1.0),
        background=background,
        seed=0,
    )
    swapped = []
    original = DriftAdaptiveClassifier._swap

    def watched(self, event):
        expected = [p.detach().clone() for p in self._background.layers[-1].parameters()]
        encoder = self.model.network.layers[0].weight.detach().clone()
        original(self, event)
        now = list(self.model.network.layers[-1].parameters())
        swapped.append(all(torch.equal(a, b) for a, b in zip(expected, now)))
        assert torch.equal(self.model.network.layers[0].weight, encoder)

    monkeypatch.setattr(DriftAdaptiveClassifier, "_swap", watched)
    _run(model, GRADUAL)
    actions = [e.action for e in model.drift_events if e.action != "ignored"]
    if background:
        assert actions[0] == "swap" and swapped == [True] * actions.count("swap")
        event = model.drift_events[0]
        assert event.n_samples >= model.min_samples and 0 < event.multiply_adds
    else:
        assert "swap" not in actions and actions[0] == "adapt" and not swapped


def test_a_swapped_in_hidden_layer_brings_its_learned_head(monkeypatch):
    # local_head gives each hidden layer a learned head: a background
    # adaptor two layers deep must hand over the hidden layer's head with its weights, and the
    # network's optimizer must go on stepping that same head
    model = DriftAdaptiveClassifier(
        TPSGDClassifier(rule="local_head", **MINIBATCH, hidden_layer_sizes=(32, 16), seed=0),
        detector=DDM(warning_threshold=1.0),
        background=True,
        adaptor_layers=2,
        seed=0,
    )
    assert model.model.rule == "local_head"
    heads = []
    original = DriftAdaptiveClassifier._swap

    def watched(self, event):
        expected = self._background.head(1).detach().clone()
        original(self, event)
        heads.append(torch.equal(self.model.network.head(1), expected))

    monkeypatch.setattr(DriftAdaptiveClassifier, "_swap", watched)
    _run(model, GRADUAL)
    assert heads and all(heads)
    net = model.model.network
    stepped = {id(p) for group in net.optimizers[1].param_groups for p in group["params"]}
    assert id(net.head(1)) in stepped


def test_an_abrupt_shift_leaves_the_background_too_young_and_re_trains():
    model = DriftAdaptiveClassifier(
        TPSGDClassifier(rule="local_head", **MINIBATCH, hidden_layer_sizes=(32,), seed=0),
        detector=DDM(),
        background=True,
        remap_labels=False,
    )
    _run(model, [Shift("label_swap", SHIFT)])
    assert [e.action for e in model.drift_events][0] == "adapt"


def test_the_loss_signal_detects_a_swap_and_feeds_cross_entropies():
    model = DriftAdaptiveClassifier(
        TPSGDClassifier(rule="local_head", **MINIBATCH, hidden_layer_sizes=(32,), seed=0),
        signal="loss",
        seed=0,
        remap_labels=False,
    )
    correct = _run(model, [Shift("label_swap", SHIFT)])
    signals = np.array([s for *_, s in model._replay])
    assert ((signals > 0) & (signals < 1)).any()  # not a 0/1 error
    assert signals.max() <= -np.log(1e-4) + 1e-9
    adapted = [e for e in model.drift_events if e.action == "adapt"]
    assert adapted and SHIFT <= adapted[0].index < SHIFT + 300
    assert correct[SHIFT + 300 : SHIFT + 800].mean() > 0.75  # 0.83; without a repair 0.66


def test_the_race_keeps_the_best_depth_and_reports_every_candidate():
    model = DriftAdaptiveClassifier(
        TPSGDClassifier(rule="local_head", **MINIBATCH, hidden_layer_sizes=(32, 32), seed=0),
        adaptor_layers="race",
        seed=0,
        remap_labels=False,
    )
    _run(model, [Shift("label_swap", SHIFT)])
    event = next(e for e in model.drift_events if e.action == "adapt")
    assert sorted(event.race) == [1, 2, 3]
    assert event.race[event.adaptor_layers] == max(event.race.values())
    assert all(0.0 <= v <= 1.0 for v in event.race.values())
    sizes = {1: 32 * 10 + 10, 2: 32 * 32 + 32 + 32 * 10 + 10}
    assert event.parameters == sizes.get(event.adaptor_layers, event.parameters)


def test_a_frozen_torch_encoder_feeds_the_classifier():
    torch.manual_seed(0)
    encoder = torch.nn.Sequential(torch.nn.Linear(64, 48), torch.nn.Tanh())
    weights = encoder[0].weight.detach().clone()
    model = DriftAdaptiveClassifier(
        TPSGDClassifier(rule="local_head", **MINIBATCH, hidden_layer_sizes=(16,), seed=0),
        encoder=encoder,
        seed=0,
    )
    correct = _run(model, [], n=1200)
    assert sorted(model.model._features) == sorted(f"f{i}" for i in range(48))
    assert torch.equal(encoder[0].weight, weights) and not encoder.training
    assert correct[600:].mean() > 0.6  # chance: 0.1
    x = {f"x{i}": 0.0 for i in range(64)}
    assert (
        model.predict_one(x) in range(10)
        and abs(sum(model.predict_proba_one(x).values()) - 1) < 1e-9
    )


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"signal": "loss", "detector": DDM()}, ValueError, "signal='error'"),
        ({"signal": "margin"}, ValueError, "signal"),
        ({"adaptor_layers": "deep"}, ValueError, "adaptor_layers"),
        ({"race_depths": 0}, ValueError, "race_depths"),
        ({"encoder": lambda x: x}, TypeError, "torch.nn.Module"),
        ({"remap_agreement": 0.0}, ValueError, "remap_agreement"),
        ({"remap_agreement": 1.5}, ValueError, "remap_agreement"),
        ({"remap_agreement": True}, ValueError, "remap_agreement"),
        ({"refits": -1}, ValueError, "refits"),
    ],
)
def test_bad_new_options_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        DriftAdaptiveClassifier(TPSGDClassifier(rule="local_head", **MINIBATCH), **kwargs)


PAIRS = ((0, 1), (2, 3), (4, 5))
PLANTED = {0: 1, 1: 0, 2: 3, 3: 2, 4: 5, 5: 4}


def test_a_planted_label_permutation_is_remapped_without_touching_the_weights(monkeypatch):
    model = DriftAdaptiveClassifier(
        TPSGDClassifier(rule="local_head", **MINIBATCH, hidden_layer_sizes=(32,), seed=0),
        remap_labels=True,
        refine_cut=True,
    )
    weights = []
    original = DriftAdaptiveClassifier._remap

    def watched(self, event):
        before = [p.detach().clone() for p in self.model.network.parameters()]
        remapped = original(self, event)
        now = self.model.network.parameters()
        weights.append(all(torch.equal(a, b) for a, b in zip(before, now)))
        return remapped

    monkeypatch.setattr(DriftAdaptiveClassifier, "_remap", watched)
    correct = _run(model, [Shift("label_swap", SHIFT, classes=PAIRS)])
    repairs = [e for e in model.drift_events if e.action not in ("ignored", "pending")]
    assert [e.action for e in repairs] == ["remap"] and weights == [True]
    event = repairs[0]
    assert event.permutation == PLANTED and abs(event.cut - SHIFT) <= 5
    assert event.multiply_adds == event.parameters == 0
    remapped_at = event.cut + model.min_samples
    assert correct[remapped_at : remapped_at + 500].mean() > 0.85


@pytest.mark.parametrize("shifts", [[], [Shift("rotate", SHIFT)]], ids=["stationary", "rotate"])
def test_remapping_never_remaps_without_a_label_permutation_and_re_trains_from_the_cut(shifts):
    """Without a permutation, ``remap_labels`` only waits for ``min_samples`` after the change
    point before judging; the adaptor is then re-trained from the detector's own cut."""
    events = {}
    for remap in (False, True):
        model = DriftAdaptiveClassifier(
            TPSGDClassifier(rule="local_head", **MINIBATCH, hidden_layer_sizes=(32,), seed=0),
            remap_labels=remap,
            seed=0,
        )
        _run(model, shifts)
        events[remap] = [e for e in model.drift_events if e.action not in ("ignored", "pending")]
    assert all(e.action != "remap" for e in events[True])
    if not shifts:
        assert events[False] == events[True] == []
        return
    plain, remap = events[False][0], events[True][0]
    assert plain.action == remap.action == "adapt"
    assert (remap.index, remap.cut) == (plain.index, plain.cut)  # ADWIN's cut, not the change
    assert remap.change_point is not None and plain.change_point is None
    assert remap.n_samples >= plain.n_samples >= model.min_samples


def test_by_default_a_label_swap_is_remapped_after_the_change_point():
    model = DriftAdaptiveClassifier(
        TPSGDClassifier(rule="local_head", **MINIBATCH, hidden_layer_sizes=(32,), seed=0), seed=0
    )
    correct = _run(model, [Shift("label_swap", SHIFT, classes=PAIRS)])
    repairs = [e for e in model.drift_events if e.action not in ("ignored", "pending")]
    assert [e.action for e in repairs] == ["remap"]
    event = repairs[0]
    assert event.permutation == PLANTED and abs(event.change_point - SHIFT) <= 5
    assert event.cut < event.change_point  # ADWIN's cut, left where it was
    remapped_at = event.change_point + model.min_samples  # it waited for min_samples after it
    assert correct[remapped_at : remapped_at + 500].mean() > 0.85


def test_the_refined_cut_lands_on_the_shift():
    cuts = {}
    for refine in (False, True):
        model = DriftAdaptiveClassifier(
            TPSGDClassifier(rule="local_head", **MINIBATCH, hidden_layer_sizes=(32,), seed=0),
            refine_cut=refine,
            seed=0,
            remap_labels=False,
        )
        _run(model, [Shift("label_swap", SHIFT)])
        cuts[refine] = next(e.cut for e in model.drift_events if e.action == "adapt")
    assert abs(cuts[True] - SHIFT) <= 5 < abs(cuts[False] - SHIFT)


def test_refits_follow_the_doubling_schedule_with_fewer_passes():
    model = DriftAdaptiveClassifier(
        TPSGDClassifier(rule="local_head", **MINIBATCH, hidden_layer_sizes=(32,), seed=0),
        refine_cut=True,
        refits=2,
        seed=0,
        remap_labels=False,
    )
    _run(model, [Shift("label_swap", SHIFT)])
    events = [e for e in model.drift_events if e.action in ("adapt", "refit")]
    # a second detection follows the first adaptation and cancels its refits
    assert [e.action for e in events] == ["adapt", "adapt", "refit", "refit"]
    adapt, *refits = events[1:]
    assert [e.n_samples for e in refits] == [2 * adapt.n_samples, 4 * adapt.n_samples]
    assert all(e.cut == adapt.cut and e.parameters == adapt.parameters for e in refits)
    # passes x samples held about constant: 3 x n, then round(1.5) = 2 x 2n, round(0.75) = 1 x 4n
    encoder, adaptor = 64 * 32, 32 * 10
    n = adapt.n_samples
    assert adapt.multiply_adds == n * (encoder + 2 * 3 * adaptor)
    assert refits[0].multiply_adds == 2 * n * (encoder + 2 * 2 * adaptor)
    assert refits[1].multiply_adds == 4 * n * (encoder + 2 * 1 * adaptor)


def test_repairs_clear_the_optimizer_state_through_the_network_hook(monkeypatch):
    calls = []
    original = Network.reset_optimizer_state

    def watched(self, layers=None):
        calls.append(None if layers is None else list(layers))
        original(self, layers)

    monkeypatch.setattr(Network, "reset_optimizer_state", watched)
    net = dict(hidden_layer_sizes=(32,), seed=0)
    model = DriftAdaptiveClassifier(
        TPSGDClassifier(rule="local_head", **MINIBATCH, **net), remap_labels=True, refine_cut=True
    )
    _run(model, [Shift("label_swap", SHIFT, classes=PAIRS)])
    assert calls == [None]  # the remap clears every layer's moments
    calls.clear()
    model = DriftAdaptiveClassifier(
        TPSGDClassifier(rule="local_head", **MINIBATCH, **net), seed=0, remap_labels=False
    )
    _run(model, [Shift("label_swap", SHIFT)])
    adapted = [e for e in model.drift_events if e.action == "adapt"]
    assert adapted and calls == [[1]] * len(adapted)  # a re-training: the output layer's only


def test_refits_go_on_from_the_re_trained_adaptor(monkeypatch):
    reinitialised = []
    original = DriftAdaptiveClassifier._reinitialise

    def watched(self, net, adaptor, index):
        reinitialised.append(index)
        original(self, net, adaptor, index)

    monkeypatch.setattr(DriftAdaptiveClassifier, "_reinitialise", watched)
    model = DriftAdaptiveClassifier(
        TPSGDClassifier(rule="local_head", **MINIBATCH, hidden_layer_sizes=(32,), seed=0),
        refits=2,
        seed=0,
        remap_labels=False,
    )
    _run(model, [Shift("label_swap", SHIFT)])
    kinds = [(e.action, e.index) for e in model.drift_events if e.action in ("adapt", "refit")]
    assert "refit" in dict(kinds) and "adapt" in dict(kinds)
    assert reinitialised == [i for action, i in kinds if action == "adapt"]


@pytest.mark.parametrize("freeze, frozen", [(None, False), (True, True), (False, False)])
def test_freeze_encoder_by_default_freezes_a_cnn_but_not_an_mlp(freeze, frozen):
    from tpsgd_stream.models import TPSGDImageClassifier

    mlp = DriftAdaptiveClassifier(
        TPSGDClassifier(rule="local_head", **MINIBATCH, seed=0), freeze_encoder=freeze
    )
    cnn = DriftAdaptiveClassifier(
        TPSGDImageClassifier(rule="local_head", seed=0), freeze_encoder=freeze
    )
    assert mlp._freezes_encoder is frozen
    assert cnn._freezes_encoder is (True if freeze is None else frozen)
    with pytest.raises(ValueError, match="freeze_encoder"):
        DriftAdaptiveClassifier(
            TPSGDClassifier(rule="local_head", **MINIBATCH, seed=0), freeze_encoder=1
        )


def test_an_adaptation_reports_the_bytes_it_held():
    """Replayed rows, one-hot targets and cached features, the output layer's parameters,
    gradients and Adam moments, and one step's activations; a whole-network re-training
    holds more."""

    def run(adaptor_layers):
        model = DriftAdaptiveClassifier(
            TPSGDClassifier(rule="local_head", **MINIBATCH, hidden_layer_sizes=(32,), seed=0),
            adaptor_layers=adaptor_layers,
            remap_labels=False,
            seed=0,
        )
        _run(model, [Shift("label_swap", SHIFT)])
        return next(e for e in model.drift_events if e.action == "adapt")

    event = run(1)
    n, floats = event.n_samples, 4
    cached = n * (64 + 10 + 32) * floats  # rows, targets, the hidden layer's features
    state = (32 * 10 + 10) * floats * 4 + 2 * floats  # weights, gradients, 2 moments, 2 steps
    activations = event.memory_bytes - cached - state
    assert 0 < activations <= 32 * (32 + 10) * floats * 4  # one minibatch of 32 at most
    assert run(2).memory_bytes > event.memory_bytes


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"seed": -1}, ValueError, "seed must be a non-negative int"),
        ({"seed": "a"}, ValueError, "seed must be a non-negative int"),
        ({"detector": "adwin"}, TypeError, "drift detector instance"),
        ({"detector": ADWIN}, TypeError, "drift detector instance"),
        ({"reinitialise": "no"}, ValueError, "reinitialise must be True or False"),
        ({"remap_labels": 1}, ValueError, "remap_labels must be True or False"),
    ],
)
def test_bad_wrapper_settings_are_named_when_built(kwargs, error, message):
    with pytest.raises(error, match=message):
        DriftAdaptiveClassifier(TPSGDClassifier(rule="local_head", **MINIBATCH, seed=0), **kwargs)


def test_a_pipeline_is_refused_with_the_way_to_wrap_it():
    with pytest.raises(TypeError, match=r"wrap the classifier inside it"):
        DriftAdaptiveClassifier(
            preprocessing.StandardScaler() | TPSGDClassifier(rule="local_head", **MINIBATCH)
        )


def test_seed_none_draws_a_seed_and_adapts():
    model = DriftAdaptiveClassifier(
        TPSGDClassifier(rule="local_head", **MINIBATCH, seed=0, hidden_layer_sizes=(8,)),
        seed=None,
        window=50,
        min_samples=20,
    )
    assert isinstance(model._seed, int)
    rng = np.random.default_rng(0)
    for i in range(1200):  # the label flips at 600: a drift, then a repair seeded by _seed
        x = {"a": float(rng.normal())}
        model.learn_one(x, (x["a"] > 0) != (i >= 600))
    assert model.drift_events


def test_seed_defaults_to_none_as_the_estimators_and_a_given_seed_reproduces():
    import inspect

    def default(cls):
        return inspect.signature(cls).parameters["seed"].default

    assert default(DriftAdaptiveClassifier) is None is default(TPSGDClassifier)

    def events(seed):
        model = DriftAdaptiveClassifier(
            TPSGDClassifier(rule="local_head", seed=0, hidden_layer_sizes=(8,)),
            seed=seed,
            window=50,
            min_samples=20,
            remap_labels=False,
        )
        rng = np.random.default_rng(0)
        for i in range(1200):
            x = {"a": float(rng.normal())}
            model.learn_one(x, (x["a"] > 0) != (i >= 600))
        probe = {"a": 0.3}
        return [(e.index, e.action) for e in model.drift_events], model.predict_proba_one(probe)

    first = events(3)
    assert first[0] and first == events(3)  # a repair happened, the same both times


@pytest.mark.parametrize(
    "x, error, message",
    [
        ({"a": 1.0, "b": "red", "c": 0.0}, TypeError, "'b'"),
        ({"a": 1.0, "b": float("nan"), "c": 0.0}, ValueError, "'b'"),
        ({"a": 1.0, "b": 2.0}, ValueError, "encoder failed on a sample of 2 features"),
    ],
)
def test_encoder_input_errors_name_the_problem(x, error, message):
    model = DriftAdaptiveClassifier(
        TPSGDClassifier(rule="local_head", **MINIBATCH, seed=0), encoder=torch.nn.Linear(3, 4)
    )
    model.learn_one({"a": 1.0, "b": 2.0, "c": 3.0}, 0)
    with pytest.raises(error, match=message):
        model.learn_one(x, 1)
    with pytest.raises(error, match=message):
        model.predict_one(x)
