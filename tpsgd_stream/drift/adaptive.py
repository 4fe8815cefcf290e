"""Re-train only the shallow adaptor of a streaming classifier when its error drifts up.

The wrapped :class:`~tpsgd_stream.models.TPSGDClassifier` is split into an *encoder* (its
first layers) and an *adaptor* (its last ``adaptor_layers`` trainable layers). A river drift
detector watches the prequential error. When it signals a drift and the error has gone *up*
(ADWIN also fires when it falls), the adaptor is re-initialised and re-trained for a few passes
on the replayed samples that came after the detector's cut (the new regime), with the encoder
frozen: its features are computed once and cached. Learning then goes on online.

What mattered in calibration (see ``DESIGN.md``): react only to increases of the error;
re-train on samples after the cut, not on a last-N window that is mostly old-regime data; wait
for ``min_samples`` of them when the detector gives no cut.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import torch
from river import base
from river.drift import ADWIN

from ..layers import Dense, Trainable
from ..seeding import derive_seed

__all__ = ["DriftAdaptiveClassifier", "DriftEvent"]


@dataclass
class DriftEvent:
    """One detection and what it led to.

    ``action`` is ``"adapt"`` (the adaptor was re-trained), ``"ignored"`` (the error fell) or
    ``"pending"`` (waiting for ``min_samples`` new samples). The cost fields describe the
    re-training: samples used, seconds, parameters re-trained, multiply-adds spent, and the
    multiply-adds a full re-training of the network on the same samples would have cost.
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


class DriftAdaptiveClassifier(base.Wrapper, base.Classifier):
    """A classifier whose shallow adaptor is re-trained when a drift detector fires.

    Parameters
    ----------
    model
        A :class:`~tpsgd_stream.models.TPSGDClassifier` (learning as usual between drifts).
    detector
        A river drift detector fed the 0/1 prequential error; ``None`` means ``ADWIN()``.
        Binary detectors (``drift.binary.DDM``, ``EDDM``, ``FHDDM``) get booleans.
    adaptor_layers
        How many of the last trainable layers form the adaptor (1 = the output layer).
    window
        Most recent labelled samples kept for re-training (the replay bound).
    min_samples
        New-regime samples needed before re-training; a detection waits for them.
    passes
        Passes over the new-regime samples when re-training the adaptor.
    reinitialise
        Start the adaptor from fresh random weights (``True``) or fine-tune it.
    freeze_encoder
        After the first adaptation, go on learning online with the adaptor only (``True``), or
        with the whole network (``False``, the default: an encoder frozen for good fell
        behind later in calibration).
    seed
        Seeds the re-initialisation and the order of the re-training samples.

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
    >>> [(e.index, e.cut, e.n_samples) for e in model.drift_events if e.action == "adapt"]
    [(1535, 1456, 100)]
    """

    def __init__(
        self,
        model,
        detector: base.DriftDetector | None = None,
        adaptor_layers: int = 1,
        window: int = 1000,
        min_samples: int = 100,
        passes: int = 3,
        reinitialise: bool = True,
        freeze_encoder: bool = False,
        seed: int = 0,
    ):
        from ..models import TPSGDClassifier

        if not isinstance(model, TPSGDClassifier):
            raise TypeError(f"model must be a TPSGDClassifier, got {type(model).__name__}.")
        for name, value, low in (
            ("adaptor_layers", adaptor_layers, 1),
            ("window", window, 1),
            ("min_samples", min_samples, 1),
            ("passes", passes, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}.")
        if min_samples > window:
            raise ValueError(f"min_samples ({min_samples}) cannot exceed window ({window}).")
        if adaptor_layers > len(model.hidden_layer_sizes) + 1:
            raise ValueError(
                f"adaptor_layers={adaptor_layers} but the model has only "
                f"{len(model.hidden_layer_sizes) + 1} trainable layers."
            )
        self.model = model
        self.detector = detector
        self.adaptor_layers = adaptor_layers
        self.window = window
        self.min_samples = min_samples
        self.passes = passes
        self.reinitialise = reinitialise
        self.freeze_encoder = freeze_encoder
        self.seed = seed
        self._reset()

    def _reset(self) -> None:
        self._detector = (self.detector or ADWIN()).clone()
        self._replay: deque = deque(maxlen=self.window)  # (index, x, y, error)
        self._n = 0
        self._warning_start: int | None = None
        self._pending: DriftEvent | None = None
        self.drift_events: list[DriftEvent] = []

    @property
    def _wrapped_model(self):
        return self.model

    @classmethod
    def _unit_test_params(cls):
        from ..models import TPSGDClassifier

        yield {"model": TPSGDClassifier(hidden_layer_sizes=(8,), seed=0)}

    @property
    def _multiclass(self) -> bool:
        return True

    # ------------------------------------------------------------------------- learning
    def learn_one(self, x: dict, y, **kwargs) -> None:
        """Watch the prequential error of ``x``, learn from it, adapt when a drift is due."""
        error = self.model.predict_one(x) != y
        self.model.learn_one(x, y, **kwargs)  # validates x and y before any state changes below
        index = self._n
        self._n += 1
        self._replay.append((index, dict(x), y, error))  # a copy: x may be mutated later
        detector = self._detector
        detector.update(error if isinstance(detector, base.BinaryDriftDetector) else float(error))
        if getattr(detector, "warning_detected", False):
            if self._warning_start is None:
                self._warning_start = index
        elif not detector.drift_detected:
            self._warning_start = None
        if detector.drift_detected:
            self._on_drift(index)
        pending = self._pending
        if pending is not None and self._n - pending.cut >= self.min_samples:
            self._adapt(pending)

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
        errors = np.array([(i >= cut, e) for i, _, _, e in self._replay], dtype=float)
        before, after = errors[errors[:, 0] == 0, 1], errors[errors[:, 0] == 1, 1]
        event = DriftEvent(index, type(self._detector).__name__, "pending", cut)
        self.drift_events.append(event)
        if len(before) and len(after) and after.mean() <= before.mean():
            event.action = "ignored"  # the error fell: nothing to repair
            return
        self._pending = event

    # ----------------------------------------------------------------------- adaptation
    def _adapt(self, event: DriftEvent) -> None:
        """Re-train the adaptor on the replayed samples from ``event.cut`` on."""
        start_time = time.perf_counter()
        model, net = self.model, self.model._net
        samples = [(x, y) for i, x, y, _ in self._replay if i >= event.cut]
        rows = torch.from_numpy(np.stack([model._row(x) for x, _ in samples]).astype(np.float32))
        labels = torch.tensor([model._class_index[y] for _, y in samples])
        targets = net.one_hot(labels)
        adaptor = net.trainable_indices[-self.adaptor_layers :]
        first = adaptor[0]
        features = net.forward(rows.to(net.device), stop=first)  # the frozen encoder, once
        if self.reinitialise:
            self._reinitialise(adaptor, event.index)
        generator = torch.Generator().manual_seed(derive_seed(self.seed, event.index))
        batch = model.batch_size if model.batch_size > 1 else 32
        for _ in range(self.passes):
            order = torch.randperm(len(samples), generator=generator)
            for begin in range(0, len(samples), batch):
                chosen = order[begin : begin + batch]
                net.train_step(features[chosen], targets[chosen], layers=adaptor, start=first)
        model._weights = None  # the numpy copy used for prediction is stale
        if self.freeze_encoder:
            model._train_layers = adaptor
        event.action = "adapt"
        event.n_samples = len(samples)
        event.seconds = time.perf_counter() - start_time
        event.parameters = sum(p.numel() for i in adaptor for p in net.layers[i].parameters())
        event.multiply_adds, event.full_multiply_adds = self._costs(first, len(samples))
        self._pending = None

    def _reinitialise(self, adaptor: list[int], index: int) -> None:
        net = self.model._net
        for i in adaptor:
            net.layers[i].reset_parameters(
                torch.Generator().manual_seed(derive_seed(self.seed, index, i))
            )
            net.optimizers[i].state.clear()

    def _costs(self, first: int, n: int) -> tuple[int, int]:
        """Multiply-adds of this re-training and of a full re-training on the same samples.

        Per sample a dense layer costs ``in x out`` for its forward pass and as much again for
        its weight gradient; the encoder runs forward once, the adaptor ``passes`` times.
        """
        macs = [
            layer.weight.numel() if isinstance(layer, Dense) else 0
            for layer in self.model._net.layers
            if isinstance(layer, Trainable)
        ]
        n_encoder = len(macs) - self.adaptor_layers
        encoder, adaptor = sum(macs[:n_encoder]), sum(macs[n_encoder:])
        return n * (encoder + 2 * self.passes * adaptor), n * 2 * self.passes * sum(macs)

    # ------------------------------------------------------------------------ prediction
    def predict_proba_one(self, x: dict, **kwargs) -> dict:
        return self.model.predict_proba_one(x, **kwargs)

    def predict_one(self, x: dict, **kwargs):
        return self.model.predict_one(x, **kwargs)
