"""Re-train only the shallow adaptor of a streaming classifier when its error drifts up.

The wrapped :class:`~tpsgd_stream.models.TPSGDClassifier` (or
:class:`~tpsgd_stream.models.TPSGDImageClassifier`) is split into an *encoder* (its first
layers) and an *adaptor* (its last ``adaptor_layers`` trainable layers). A river drift
detector watches the prequential error (or loss). When it signals a drift and the signal has
gone *up* (ADWIN also fires when it falls), the adaptor is repaired with the encoder frozen:

- ``"swap"`` (``background=True``): a detector with a warning zone (DDM, EDDM) started a
  *background* adaptor at its warning, trained online on every sample since; at the drift it
  is swapped in when it has seen ``min_samples`` samples.
- ``"adapt"``: otherwise the adaptor is re-initialised and re-trained for a few passes on the
  replayed samples after the detector's cut (the new regime), the encoder's features computed
  once and cached. With ``adaptor_layers="race"`` a short race on those samples first picks
  the adaptor's depth.

Learning then goes on online. The wrapper reacts only to increases of the error, re-trains on
samples after the cut (not on a last-N window, mostly old-regime data), and waits for
``min_samples`` of them when the detector gives no cut.

Three options help a network whose hidden layers learn towards fixed projections of the
labels (``fixed_readout_ce``; see ``BENCHMARKS.md``, "Drift recovery"):

- ``refine_cut``: ADWIN keeps whole buckets, so its cut often lies a hundred samples or more
  before the shift; the change point of the replayed signal after it (CUSUM) is used instead.
- ``remap_labels`` (on by default): when a permutation of the old model's predictions
  explains the labels after the change point (a label swap), the classes are remapped onto
  the output and projection rows their inputs trained (:mod:`~tpsgd_stream.drift.relabel`):
  no weight changes, no re-training, and the hidden layers' targets stay consistent with what
  they learned. The permutation is looked for on the samples after the change point of the
  replayed signal (as ``refine_cut`` finds it), where the old regime no longer mixes in;
  when none is found, the adaptor is re-trained from the detector's own cut.
- ``refits``: after a re-training, the adaptor is re-trained again (from its current weights)
  on all samples since the cut each time their number doubles (2, 4, ... times the first),
  with the passes scaled so that each costs about what the first did: the readout keeps up
  with an encoder that goes on learning, and learns from more of the new regime.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import torch
from river import base, compose
from river.drift import ADWIN

from ..engine.guard import NonFiniteUpdateError
from ..engine.seeding import derive_seed, resolve_seed
from ..models._inputs import check_label, parse_values
from .relabel import estimate_permutation

__all__ = ["DriftAdaptiveClassifier", "DriftEvent", "SIGNALS", "retraining_multiply_adds"]

SIGNALS = ("error", "loss")
_MAX_LOSS = -math.log(1e-4)  # the loss signal of a class given probability < 1e-4
_RACE_KEY = 2**20  # seeds the race split apart from the layer re-initialisations
_MIN_GAIN = 0.1  # a label permutation must explain this many more samples than the identity


def _tensor_bytes(*tensors: torch.Tensor | None) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def _state_bytes(net, layers) -> int:
    """Bytes of the parameters (learned heads included), gradients and optimizer state of
    ``net``'s ``layers``."""
    total = 0
    for i in layers:
        for group in net.optimizers[i].param_groups:
            for param in group["params"]:
                total += 2 * _tensor_bytes(param)  # the parameter and its gradient
                state = net.optimizers[i].state.get(param, {})
                total += _tensor_bytes(*(v for v in state.values() if torch.is_tensor(v)))
    return total


def retraining_multiply_adds(macs: list[int], depth: int, n: int, passes: int) -> tuple[int, int]:
    """Multiply-adds of re-training the last ``depth`` of the trainable layers whose forward
    passes cost ``macs`` a sample, on ``n`` samples for ``passes`` passes (the encoder's
    features computed once, each adaptor layer's forward pass and weight gradient every pass),
    and of re-training all the layers the same way.

    Examples
    --------
    >>> retraining_multiply_adds([100, 10], depth=1, n=2, passes=3)  # 2 x (100 + 2 x 3 x 10)
    (320, 1320)
    """
    encoder, adaptor = sum(macs[:-depth]), sum(macs[-depth:])
    return n * (encoder + 2 * passes * adaptor), n * 2 * passes * sum(macs)


@dataclass
class DriftEvent:
    """One detection and what it led to.

    ``action`` is ``"swap"`` (the background adaptor trained since the warning was swapped
    in), ``"adapt"`` (the adaptor was re-initialised and re-trained), ``"remap"`` (the labels
    were remapped by ``permutation``, old label -> new label), ``"refit"`` (a scheduled
    re-training after an adaptation, not a detection), ``"ignored"`` (the signal fell) or
    ``"pending"`` (waiting for ``min_samples`` new samples). The cost fields
    describe the repair (race and background training included): samples used, seconds,
    parameters re-trained, multiply-adds spent, the multiply-adds a full re-training of
    the network on the same samples would have cost, and ``memory_bytes``, the bytes of
    tensors the repair held: the replayed rows and the encoder's cached features, the
    adaptor's parameters, gradients, learned heads and optimizer state, and the peak
    activations of one training step (a race adds its largest candidate copy of the network,
    a swap counts the background copy instead of the rows). ``adaptor_layers`` is the depth used and
    ``race`` the held-out accuracy of each candidate depth (``adaptor_layers="race"``).
    ``change_point`` is where the replayed signal after ``cut`` rises (set with
    ``remap_labels`` or ``refine_cut``): the permutation is looked for after it.

    Examples
    --------
    >>> event = DriftEvent(index=1535, detector="ADWIN", action="adapt", cut=1456)
    >>> event.action, event.index - event.cut
    ('adapt', 79)
    """

    index: int
    detector: str
    action: str
    cut: int
    n_samples: int = 0
    seconds: float = 0.0
    parameters: int = 0
    multiply_adds: int = 0
    full_multiply_adds: int = 0
    memory_bytes: int = 0
    adaptor_layers: int = 0
    race: dict = field(default_factory=dict)
    permutation: dict = field(default_factory=dict)
    change_point: int | None = None

    @property
    def new_regime(self) -> int:
        """The first index of the samples a remap is judged on (and re-training waits for)."""
        return self.cut if self.change_point is None else max(self.cut, self.change_point)


class DriftAdaptiveClassifier(base.Wrapper, base.Classifier):
    """A classifier whose shallow adaptor is repaired when a drift detector fires.

    Parameters
    ----------
    model
        A :class:`~tpsgd_stream.models.TPSGDClassifier` (learning as usual between drifts), or
        a :class:`~tpsgd_stream.models.TPSGDImageClassifier`, whose convolutions then form
        the encoder and its readout the adaptor (``adaptor_layers=1``).
    detector
        A river drift detector fed the prequential signal; ``None`` means ``ADWIN()``.
        Binary detectors (``drift.binary.DDM``, ``EDDM``, ``FHDDM``) get the 0/1 error.
    adaptor_layers
        How many of the last trainable layers form the adaptor (1 = the output layer), or
        ``"race"``: at each drift, train depths ``1..race_depths`` on the first 70 % of the
        new-regime samples, keep the best on the other 30 %.
    window
        Most recent labelled samples kept for re-training (the replay bound).
    min_samples
        New-regime samples needed before re-training (a detection waits for them), and
        samples a background adaptor must have seen to be swapped in.
    passes
        Passes over the new-regime samples when re-training the adaptor.
    reinitialise
        Start the adaptor (re-trained or background) from fresh random weights (``True``) or
        from the current ones (fine-tuning). Scheduled ``refits`` always go on from the
        current adaptor, which has learned the new regime already.
    freeze_encoder
        After the first adaptation, go on learning online with the adaptor only (``True``), or
        with the whole network (``False``). ``None`` (the default) chooses by the model, as
        measured (``BENCHMARKS.md``, "Drift recovery"): ``True`` for a
        :class:`~tpsgd_stream.models.TPSGDImageClassifier`, whose convolutional features
        survived the covariate shifts measured and whose readout then re-trains on stable
        features; ``False`` for an MLP, whose frozen encoder fell behind.
    background
        Train a background adaptor (one online pass) from a detector's warning on (detectors
        with ``warning_detected``) and swap it in at the drift if it has seen ``min_samples``
        samples by then; otherwise re-train. Off by default: after abrupt shifts a detector
        warns too few samples before its drift to swap, and on gradual shifts the swapped-in
        adaptor trailed a re-training over the same samples in our runs.
    signal
        What the detector watches: ``"error"`` (0/1) or ``"loss"`` (cross-entropy of the true
        class, capped at ``-log(1e-4)``; not for binary detectors).
    race_depths
        Deepest candidate of ``adaptor_layers="race"`` (capped at the trainable layers).
    encoder
        An optional frozen ``torch.nn.Module`` (a pretrained feature extractor). Each ``x``'s
        values, in their order, form a ``(1, d)`` float tensor; its output, flattened and
        computed under ``torch.inference_mode()``, is what ``model`` sees (as features
        ``f0, f1, ...``). It is put in ``eval()`` mode and never trained.
    remap_labels
        Before re-training, look for a permutation of the labels (Hungarian assignment on the
        old predictions against the labels of the ``min_samples`` or more samples after the
        change point of the replayed signal); when it explains at least
        ``remap_agreement`` of those samples and 10 points more than no permutation, remap
        the classes instead of re-training (action ``"remap"``), clear the optimizers'
        moments (they point towards the old units) and restart the detector.
    remap_agreement
        The fraction of the samples after the change point a permutation must explain, in
        (0, 1].
    refine_cut
        Re-train from the change point of the replayed signal after the detector's cut, not
        from the cut itself.
    refits
        Re-trainings scheduled after each adaptation, when the samples since the cut reach
        2, 4, ... times those of the adaptation (within ``window``), each with
        ``passes x first / now`` passes (at least 1). A new detection cancels them.
    seed
        Seeds the re-initialisations, the order of the re-training samples and the race split;
        ``None`` draws one when the wrapper is made.

    Notes
    -----
    ``remap_labels`` is on and ``refine_cut`` and ``refits`` are off by default, as measured
    (``BENCHMARKS.md``, "Drift recovery"): a permutation found after the change point repairs
    a label swap with no re-training and leaves other shifts alone; re-training from the
    change point (``refine_cut``) costs accuracy after covariate shifts and on Elec2; refits
    help after rotations but each costs more than 1/5 of a full re-training on its samples.

    Examples
    --------
    >>> from river import preprocessing
    >>> from tpsgd_stream.drift import Shift, digits_shift_stream
    >>> from tpsgd_stream.models import TPSGDClassifier
    >>> stream = digits_shift_stream([Shift("label_swap", 1500)], n_samples=3000, seed=0)
    >>> model = DriftAdaptiveClassifier(TPSGDClassifier(seed=0), seed=0)
    >>> pipeline = preprocessing.StandardScaler() | model
    >>> for x, y in stream:
    ...     _ = pipeline.predict_one(x)
    ...     pipeline.learn_one(x, y)
    >>> [(e.action, e.change_point, len(e.permutation)) for e in model.drift_events
    ...  if e.action == "remap"]
    [('remap', 1500, 10)]

    The swap recognised as a permutation of the labels after the change point: no weight
    changed. Without remapping, the output layer is re-trained from ADWIN's cut instead:

    >>> model = DriftAdaptiveClassifier(TPSGDClassifier(seed=0), remap_labels=False, seed=0)
    >>> pipeline = preprocessing.StandardScaler() | model
    >>> for x, y in stream:
    ...     _ = pipeline.predict_one(x)
    ...     pipeline.learn_one(x, y)
    >>> [(e.index, e.cut, e.n_samples) for e in model.drift_events if e.action == "adapt"]
    [(1535, 1472, 100), (1631, 1552, 100)]

    Each time on the samples since ADWIN's cut (at 1,472 and 1,568, around the swap at 1,500).
    """

    def __init__(
        self,
        model,
        detector: base.DriftDetector | None = None,
        adaptor_layers: int | str = 1,
        window: int = 1000,
        min_samples: int = 100,
        passes: int = 3,
        reinitialise: bool = True,
        freeze_encoder: bool | None = None,
        background: bool = False,
        signal: str = "error",
        race_depths: int = 3,
        encoder: torch.nn.Module | None = None,
        remap_labels: bool = True,
        remap_agreement: float = 0.5,
        refine_cut: bool = False,
        refits: int = 0,
        seed: int | None = None,
    ):
        from ..models import TPSGDClassifier

        if isinstance(model, compose.Pipeline):  # (a pipeline passes isinstance for its last step)
            raise TypeError(
                "model is a river Pipeline; wrap the classifier inside it instead: "
                "StandardScaler() | DriftAdaptiveClassifier(TPSGDClassifier())."
            )
        if not isinstance(model, TPSGDClassifier):
            raise TypeError(
                f"model must be a TPSGDClassifier (or a subclass such as TPSGDImageClassifier), "
                f"got {type(model).__name__}."
            )
        n_trainable = model.n_trainable_layers
        checked = [("window", window, 1), ("min_samples", min_samples, 1)]
        checked += [("passes", passes, 1), ("race_depths", race_depths, 1), ("refits", refits, 0)]
        if adaptor_layers != "race":
            checked.append(("adaptor_layers", adaptor_layers, 1))
        for name, value, low in checked:
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}.")
        if min_samples > window:
            raise ValueError(f"min_samples ({min_samples}) cannot exceed window ({window}).")
        if adaptor_layers != "race" and adaptor_layers > n_trainable:
            raise ValueError(
                f"adaptor_layers={adaptor_layers} but the model has only "
                f"{n_trainable} trainable layers."
            )
        if isinstance(remap_agreement, bool) or not (
            isinstance(remap_agreement, (int, float)) and 0 < remap_agreement <= 1
        ):
            raise ValueError(f"remap_agreement must lie in (0, 1], got {remap_agreement!r}.")
        if freeze_encoder is not None and not isinstance(freeze_encoder, bool):
            raise ValueError(f"freeze_encoder must be None, True or False, got {freeze_encoder!r}.")
        if signal not in SIGNALS:
            raise ValueError(f"signal must be one of {SIGNALS}, got {signal!r}.")
        if signal == "loss" and isinstance(detector, base.BinaryDriftDetector):
            raise ValueError(
                f"signal='loss' needs a detector of real values (such as ADWIN); "
                f"{type(detector).__name__} takes only the 0/1 error: use signal='error'."
            )
        if encoder is not None and not isinstance(encoder, torch.nn.Module):
            raise TypeError(f"encoder must be a torch.nn.Module, got {type(encoder).__name__}.")
        if detector is not None and not isinstance(
            detector, (base.DriftDetector, base.BinaryDriftDetector)
        ):
            raise TypeError(
                f"detector must be a river drift detector instance such as ADWIN(), or None; "
                f"got {detector!r}."
            )
        flags = ("reinitialise", reinitialise), ("background", background)
        flags += ("remap_labels", remap_labels), ("refine_cut", refine_cut)
        for name, value in flags:
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be True or False, got {value!r}.")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ValueError(f"seed must be a non-negative int or None, got {seed!r}.")
        self.model = model
        self.detector = detector
        self.adaptor_layers = adaptor_layers
        self.window = window
        self.min_samples = min_samples
        self.passes = passes
        self.reinitialise = reinitialise
        self.freeze_encoder = freeze_encoder
        self.background = background
        self.signal = signal
        self.race_depths = race_depths
        self.encoder = encoder
        self.remap_labels = remap_labels
        self.remap_agreement = remap_agreement
        self.refine_cut = refine_cut
        self.refits = refits
        self.seed = seed
        if encoder is not None:
            encoder.eval().requires_grad_(False)
        self._reset()

    def _reset(self) -> None:
        # seed=None draws one, as the models do, so that a wrapper and its pickle agree
        self._seed = resolve_seed(self.seed)
        self._detector = (self.detector or ADWIN()).clone()
        self._replay: deque = deque(maxlen=self.window)  # (index, x, y, predicted, signal)
        self._n = 0
        self._warning_start: int | None = None
        self._pending: DriftEvent | None = None
        # cut, samples due, refits left, samples of the adaptation (the refits' budget)
        self._refit: tuple[int, int, int, int] | None = None
        self._background = None  # a copy of the network whose adaptor trains from a warning
        self._background_seen = 0
        self._background_batch: list = []
        self._background_cost = [0.0, 0]  # seconds, multiply-adds
        self.drift_events: list[DriftEvent] = []
        self._layer_macs: tuple = (None, [])  # (input width, classes) -> per-layer forward MACs

    @property
    def _wrapped_model(self):
        return self.model

    @classmethod
    def _unit_test_params(cls):
        from ..models import TPSGDClassifier, TPSGDImageClassifier

        yield {"model": TPSGDClassifier(hidden_layer_sizes=(8,), seed=0)}
        yield {"model": TPSGDImageClassifier(channels=(4,), seed=0)}

    @property
    def _multiclass(self) -> bool:
        return True

    # ------------------------------------------------------------------------- learning
    def _check_sample(self, x: dict, y) -> None:
        """Raise the error ``learn_one(x, y)`` would raise for bad input; change nothing."""
        check_label(y, type(self).__name__)
        check = getattr(self._wrapped_model, "_check_sample", None)
        if check is not None:
            check(self._encode(x), y)

    def _check_input(self, x: dict) -> None:
        """Raise the error ``predict_one(x)`` would raise for bad input."""
        check = getattr(self._wrapped_model, "_check_input", None)
        if check is not None:
            check(self._encode(x))

    def learn_one(self, x: dict, y, **kwargs) -> None:
        """Watch the prequential signal of ``x``, learn from it, adapt when a drift is due."""
        check_label(y, type(self).__name__)  # (before ``predicted != y`` compares it)
        x = self._encode(x)
        proba = self.model.predict_proba_one(x)
        predicted = max(proba, key=proba.get) if proba else None
        error = predicted is None or predicted != y
        self.model.learn_one(x, y, **kwargs)  # validates x and y before any state changes below
        index = self._n
        self._n += 1
        value = float(error)
        if self.signal == "loss":
            value = min(-math.log(max(proba.get(y, 0.0), 1e-300)), _MAX_LOSS)
        self._replay.append((index, dict(x), y, predicted, value))  # x copied: it may change
        detector = self._detector
        detector.update(error if isinstance(detector, base.BinaryDriftDetector) else value)
        if getattr(detector, "warning_detected", False):
            if self._warning_start is None:
                self._warning_start = index
        elif not detector.drift_detected:
            self._warning_start = None
            self._background = None  # the warning passed without a drift
        if self.background and self._warning_start is not None:
            self._train_background(x, y)
        if detector.drift_detected:
            self._on_drift(index)
        pending = self._pending
        if pending is not None and self._n - pending.new_regime >= self.min_samples:
            self._adapt(pending)
        elif self._refit is not None and self._n - self._refit[0] >= self._refit[1]:
            cut, due, left, first = self._refit
            start = max(cut, self._replay[0][0])  # the replay window bounds the samples
            event = DriftEvent(index, type(detector).__name__, "refit", start)
            self.drift_events.append(event)
            self._adapt(event, "refit", first)
            self._refit = (cut, 2 * due, left - 1, first) if left > 1 else None

    @property
    def _background_ready(self) -> bool:
        return self._background is not None and self._background_seen >= self.min_samples

    def _on_drift(self, index: int) -> None:
        width = getattr(self._detector, "width", None)
        if isinstance(width, (int, float)) and width > 0:
            cut = self._n - int(width)  # the start of the window the detector kept
        elif self._warning_start is not None:
            cut = self._warning_start
        else:
            cut = self._n
        cut = max(cut, self._replay[0][0])
        self._warning_start = None
        signals = np.array([(i >= cut, s) for i, *_, s in self._replay], dtype=float)
        before, after = signals[signals[:, 0] == 0, 1], signals[signals[:, 0] == 1, 1]
        event = DriftEvent(index, type(self._detector).__name__, "pending", cut)
        self.drift_events.append(event)
        if len(before) and len(after) and after.mean() <= before.mean():
            event.action = "ignored"  # the signal fell: nothing to repair
            self._background = None
            return
        if self.refine_cut or self.remap_labels:
            event.change_point = self._change_point(cut)
            if self.refine_cut:
                event.cut = event.change_point
        self._refit = None  # the refits of the older regime are moot
        if self._background_ready:
            self._swap(event)
            return
        self._background = None  # too young: re-train on the samples after the cut instead
        self._pending = event

    def _change_point(self, cut: int) -> int:
        """The index from ``cut`` on that best splits the replayed signal into a lower mean
        before and a higher one after (the largest standardised rise, as CUSUM finds it)."""
        index = np.array([i for i, *_ in self._replay])
        signal = np.array([s for *_, s in self._replay], dtype=float)
        n = len(signal)
        if n < 2:
            return cut
        n_before = np.arange(1, n)  # a split before position k = 1 .. n - 1
        sums = np.cumsum(signal)[:-1]
        rise = (sums[-1] + signal[-1] - sums) / (n - n_before) - sums / n_before
        score = rise * np.sqrt(n_before * (n - n_before) / n)
        score[index[1:] < cut] = -np.inf
        return int(index[1:][np.argmax(score)]) if np.isfinite(score.max()) else cut

    # ------------------------------------------------------------------ the adaptor layers
    def _adaptor(self, depth: int | None = None) -> list[int]:
        depth = depth or (1 if self.adaptor_layers == "race" else self.adaptor_layers)
        return self.model.network.trainable_indices[-depth:]

    def _samples(self, samples) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows and one-hot targets of ``(x, y)`` samples, on the network's device."""
        model = self.model
        return model.network_inputs(x for x, _ in samples), model.network_targets(
            y for _, y in samples
        )

    def _reinitialise(self, net, adaptor: list[int], index: int) -> None:
        for i in adaptor:
            net.layers[i].reset_parameters(
                torch.Generator().manual_seed(derive_seed(self._seed, index, i))
            )
        net.reset_optimizer_state(adaptor)

    def _fit(self, net, features, targets, adaptor, passes: int, index: int) -> None:
        """``passes`` shuffled passes of minibatches over cached encoder features."""
        generator = torch.Generator().manual_seed(derive_seed(self._seed, index))
        batch = self.model.batch_size if self.model.batch_size > 1 else 32
        for _ in range(passes):
            order = torch.randperm(len(features), generator=generator)
            for begin in range(0, len(features), batch):
                chosen = order[begin : begin + batch]
                with contextlib.suppress(NonFiniteUpdateError):  # (undone: the next goes on)
                    net.train_step(
                        features[chosen], targets[chosen], layers=adaptor, start=adaptor[0]
                    )
                self._peak_bytes = max(self._peak_bytes, net.activation_bytes)

    # ------------------------------------------------------------ background from a warning
    def _train_background(self, x: dict, y) -> None:
        """Train a copy of the adaptor online on the samples since the warning began."""
        net = self.model.network
        if self._background is None:
            self._background = copy.deepcopy(net)
            self._background_seen, self._background_batch = 0, []
            self._background_cost = [0.0, 0]
            if self.reinitialise:
                self._reinitialise(self._background, self._adaptor(), self._n)
        self._background_batch.append((x, y))
        self._background_seen += 1
        if len(self._background_batch) < max(self.model.batch_size, 1):
            return
        start = time.perf_counter()
        background, adaptor = self._background, self._adaptor()
        if background.n_outputs < net.n_outputs:  # classes that appeared since the copy
            background.grow_outputs(net.n_outputs - background.n_outputs)
        rows, targets = self._samples(self._background_batch)
        features = net.forward(rows, stop=adaptor[0])  # the live encoder
        with contextlib.suppress(NonFiniteUpdateError):  # (undone: the next batch goes on)
            background.train_step(features, targets, layers=adaptor, start=adaptor[0])
        self._background_cost[0] += time.perf_counter() - start
        self._background_cost[1] += self._costs(len(adaptor), len(rows), passes=1)[0]
        self._background_batch = []

    def _swap(self, event: DriftEvent) -> None:
        """Put the background adaptor's weights (and optimizer state) into the network."""
        net, background, adaptor = self.model.network, self._background, self._adaptor()
        if background.n_outputs < net.n_outputs:
            background.grow_outputs(net.n_outputs - background.n_outputs)
        for i in adaptor:
            net.layers[i].load_state_dict(background.layers[i].state_dict())
            if background.head(i) is not None:  # a local_head layer's learned head goes too
                net.head(i).data = background.head(i).detach().clone()
            net.optimizers[i].load_state_dict(background.optimizers[i].state_dict())
        self._finish(event, "swap", adaptor, self._background_seen, *self._background_cost)
        event.full_multiply_adds = self._costs(len(adaptor), self._background_seen)[1]
        event.memory_bytes = _state_bytes(background, background.trainable_indices)
        self._background = None

    # ----------------------------------------------------------------------- re-training
    def _adapt(self, event: DriftEvent, action: str = "adapt", budget: int = 0) -> None:
        """Re-train the adaptor on the replayed samples from ``event.cut`` on."""
        start_time = time.perf_counter()
        net = self.model.network
        if action == "adapt" and self.remap_labels and self._remap(event):
            # the detector's window holds the errors made before the remap: start afresh
            self._detector = (self.detector or ADWIN()).clone()
            self._finish(event, "remap", [], 0, time.perf_counter() - start_time, 0)
            return
        samples = [(x, y) for i, x, y, *_ in self._replay if i >= event.cut]
        rows, targets = self._samples(samples)
        self._peak_bytes = 0  # the largest transient of the steps (and race) below
        macs = 0
        if self.adaptor_layers == "race":
            depth, event.race, macs = self._race(rows, targets, event.index)
        else:
            depth = self.adaptor_layers
        adaptor = self._adaptor(depth)
        features = net.forward(rows, stop=adaptor[0])  # the frozen encoder, once
        if self.reinitialise and action != "refit":  # a refit refines the re-trained adaptor
            self._reinitialise(net, adaptor, event.index)
        passes = self.passes
        if budget:
            passes = max(1, round(self.passes * budget / len(samples)))
        self._fit(net, features, targets, adaptor, passes, event.index)
        macs += self._costs(depth, len(samples), passes)[0]
        if action == "adapt" and self.refits:
            self._refit = (event.cut, 2 * len(samples), self.refits, len(samples))
        seconds = time.perf_counter() - start_time
        self._finish(event, action, adaptor, len(samples), seconds, macs, passes)
        cached = _tensor_bytes(rows, targets, None if features is rows else features)
        event.memory_bytes = cached + _state_bytes(net, adaptor) + self._peak_bytes

    def _remap(self, event: DriftEvent) -> bool:
        """Remap the classes when a permutation of the old predictions explains the labels
        after the change point; returns whether it did."""
        after = [(p, y) for i, _, y, p, _ in self._replay if i >= event.new_regime]
        mapping, agreement, identity = estimate_permutation(*zip(*after), list(self.model.classes))
        if not mapping or agreement < self.remap_agreement or agreement - identity < _MIN_GAIN:
            return False
        self.model.permute_classes(mapping)
        self.model.network.reset_optimizer_state()  # the moments point to the old labels' units
        event.permutation = mapping
        return True

    def _race(self, rows, targets, index: int) -> tuple[int, dict, int]:
        """Train each candidate depth on 70 % of the samples; the best on the rest wins."""
        generator = torch.Generator().manual_seed(derive_seed(self._seed, index, _RACE_KEY))
        order = torch.randperm(len(rows), generator=generator)
        n_fit = max(1, int(0.7 * len(rows)))
        fit, held = order[:n_fit], order[n_fit:]
        n_trainable = len(self.model.network.trainable_indices)
        scores, macs = {}, 0
        for depth in range(1, min(self.race_depths, n_trainable) + 1):
            candidate = copy.deepcopy(self.model.network)
            adaptor = candidate.trainable_indices[-depth:]
            features = candidate.forward(rows, stop=adaptor[0])
            if self.reinitialise:
                self._reinitialise(candidate, adaptor, index)
            self._fit(candidate, features[fit], targets[fit], adaptor, self.passes, index)
            predicted = candidate.forward(features[held], start=adaptor[0]).argmax(1)
            scores[depth] = float((predicted == targets[held].argmax(1)).float().mean())
            macs += self._costs(depth, n_fit)[0]
            held_bytes = _state_bytes(candidate, candidate.trainable_indices)
            held_bytes += _tensor_bytes(None if features is rows else features)
            self._peak_bytes = max(self._peak_bytes, held_bytes + candidate.activation_bytes)
        best = max(scores, key=lambda d: (scores[d], -d))  # ties go to the shallower
        return best, scores, macs

    def _finish(self, event, action, adaptor, n, seconds, macs, passes=None) -> None:
        net = self.model.network
        self.model.invalidate_cache()  # the copy of the weights used for prediction is stale
        if self._freezes_encoder:
            self.model.train_only(adaptor or self._adaptor())
        event.action, event.n_samples, event.seconds = action, n, seconds
        event.adaptor_layers = len(adaptor)
        event.parameters = sum(p.numel() for i in adaptor for p in net.layers[i].parameters())
        event.multiply_adds = macs
        event.full_multiply_adds = self._costs(len(adaptor), n, passes)[1] if adaptor else 0
        self._pending = None

    @property
    def _freezes_encoder(self) -> bool:
        if self.freeze_encoder is not None:
            return self.freeze_encoder
        from ..models import TPSGDImageClassifier

        return isinstance(self.model, TPSGDImageClassifier)

    def _costs(self, depth: int, n: int, passes: int | None = None) -> tuple[int, int]:
        """Multiply-adds of re-training ``depth`` layers on ``n`` samples, and of a full
        re-training of the network on the same samples (``passes`` passes each).

        Per sample a layer costs its forward pass (``Network.multiply_adds``: a dense layer's
        weights, a convolution's weights times its output positions) and as much again for its
        weight gradient; the encoder runs forward once, the adaptor ``passes`` times.
        """
        model, net = self.model, self.model.network
        shape = (model.n_inputs, net.n_outputs)  # the layers' sizes change only when these grow
        if self._layer_macs[0] != shape:
            sample = model.network_inputs([{}])  # one sample of zeros
            self._layer_macs = (shape, net.multiply_adds(sample))
        passes = self.passes if passes is None else passes
        return retraining_multiply_adds(self._layer_macs[1], depth, n, passes)

    # ------------------------------------------------------------------------ prediction
    def _encode(self, x: dict) -> dict:
        """``x`` through the frozen ``encoder`` (features ``f0, f1, ...``), or ``x`` itself."""
        if self.encoder is None:
            return x
        values = parse_values(x, type(self).__name__, "raise")  # names bad features first
        try:
            with torch.inference_mode():
                features = self.encoder(torch.from_numpy(values).float()[None]).reshape(-1)
        except RuntimeError as err:  # e.g. a (1, d) input of the wrong width
            raise ValueError(
                f"{type(self).__name__}: the encoder failed on a sample of {len(values)} "
                f"features ({list(x)[:5]}...): {err}"
            ) from err
        if not torch.isfinite(features).all():
            raise ValueError(f"{type(self).__name__}: the encoder's features are not finite.")
        return {f"f{i}": v for i, v in enumerate(features.tolist())}

    def predict_proba_one(self, x: dict, **kwargs) -> dict:
        return self.model.predict_proba_one(self._encode(x), **kwargs)

    def predict_one(self, x: dict, **kwargs):
        return self.model.predict_one(self._encode(x), **kwargs)
