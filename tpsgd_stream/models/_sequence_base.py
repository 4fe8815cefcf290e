"""Shared parameters, feature and label maps and persistence of the sequence classifiers.

Both map feature names to input columns through the tabular estimators'
:class:`~tpsgd_stream.models._features.FeatureMap` (a new name grows a zero-weight input
column; missing names count as 0; unknown names are ignored at prediction),
grow the readout for a new label, reject bad input before changing any state, and save to the
same versioned ``torch.save`` archive (``{"format": "tpsgd-stream", "version": 2, ...}``). Its
``"weight_layout"`` entry records the Elman cells' ``weight_x`` layout; a file without it holds
the earlier ``(input_size, hidden_size)`` layout and loads transposed, optimizer moments too.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch
from river import base

from ..engine.guard import NonFiniteUpdateError, refuse_non_finite
from ..engine.recurrent import (
    WEIGHT_LAYOUT,
    RecurrentNetwork,
    recurrent_rules,
    upgrade_weight_layout,
)
from ..engine.seeding import resolve_seed
from ..engine.threads import check_threads, intra_op_threads
from . import _persistence
from ._features import FeatureMap
from ._inputs import parse_values
from .base import check_training_params, register_label, skip_update

ACTIVATIONS = ("sigmoid", "tanh")


def scoped_threads(method: Callable) -> Callable:
    """``method`` of a sequence estimator, run under its ``torch_threads``: ``"auto"`` is one
    torch thread, ``None`` the process's setting, an int that count; the caller's count is
    given back on the way out (see :mod:`tpsgd_stream.engine.threads`).

    A sequence estimator's torch work per call is one sequence, one step, or a minibatch of
    them, so ``"auto"`` does not size it as the tabular estimators do: one thread always.
    """

    @functools.wraps(method)
    def scoped(self, *args, **kwargs):
        threads = 1 if self.torch_threads == "auto" else self.torch_threads
        with intra_op_threads(threads):
            return method(self, *args, **kwargs)

    return scoped


def _is_int(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


def _positive_int(name: str, value) -> bool:
    return _is_int(value) and value >= 1


class _SequenceBase(base.Classifier):
    """Parameters, feature and label maps, persistence; subclasses feed the network."""

    _int_params = ("hidden_size", "batch_size", "credit_steps")

    # ------------------------------------------------------------------------ parameters
    def _check_params(self) -> None:
        name = type(self).__name__
        for param in self._int_params:
            value = getattr(self, param)
            if not _positive_int(param, value):
                raise ValueError(f"{name}: {param} must be an int >= 1, got {value!r}.")
        hidden = self.readout_hidden
        if hidden is not None and (
            not isinstance(hidden, tuple) or not all(_positive_int("", h) for h in hidden)
        ):
            raise ValueError(
                f"{name}: readout_hidden must be None (a linear readout) or a tuple of positive "
                f"ints such as (64,), got {hidden!r}."
            )
        check_training_params(self, ACTIVATIONS, self._rules())
        check_threads(name, self.torch_threads)

    def __setstate__(self, state: dict) -> None:
        state.setdefault("torch_threads", "auto")  # (pickles made before the parameter)
        self.__dict__.update(state)

    def _rules(self) -> tuple[str, ...]:
        """Names of the rules this estimator trains with: those of recurrent cells."""
        return recurrent_rules()

    def _reset(self) -> None:
        self._seed = resolve_seed(self.seed)
        # feature name -> input column; new names sorted by repr (as this model always did)
        self._features = FeatureMap(sort_key=repr)
        self._classes: list = []  # output unit -> label
        self._class_index: dict = {}
        self._net: RecurrentNetwork | None = None
        self._n_updates = 0
        self._n_skipped = 0  # updates refused as non-finite (see skipped_updates)

    @property
    def skipped_updates(self) -> int:
        """Updates refused because they would have made a weight or an optimizer state NaN or
        infinite; each one left the model as it was, dropped its batch and warned."""
        return getattr(self, "_n_skipped", 0)  # (pickles made before the counter: 0)

    def _guarded_step(self, n_samples: int, step, *args) -> bool:
        """Run ``step(*args)`` on the network; a non-finite update is undone, counted, warned
        about and ``False`` returned."""
        net = self._net
        try:
            if isinstance(net, RecurrentNetwork):
                with refuse_non_finite(net, self._optimizers()):
                    step(*args)
            else:  # (the random-kernel readout undoes a non-finite step itself)
                step(*args)
        except NonFiniteUpdateError:
            self._n_skipped = skip_update(self, n_samples)
            return False
        return True

    @property
    def network(self) -> RecurrentNetwork | None:
        """The :class:`~tpsgd_stream.engine.recurrent.RecurrentNetwork` this estimator trains
        (``None`` until the first sample is learned from). Prediction runs it directly.

        Examples
        --------
        >>> import numpy as np
        >>> from tpsgd_stream.models import TPSGDSequenceClassifier
        >>> model = TPSGDSequenceClassifier(hidden_size=4, seed=0)
        >>> model.learn_one(np.zeros((3, 2)), "a")
        >>> model.network.input_size
        2
        """
        return self._net

    @property
    def _lr(self) -> float:
        """The learning rate the network gets (a subclass may resolve a ``None`` default)."""
        return self.lr

    @classmethod
    def _upgrade_params(cls, params: dict) -> dict:
        """Constructor parameters of a saved file, completed for parameters added since."""
        return params

    def _network(self, n_inputs: int, **kwargs) -> RecurrentNetwork:
        return RecurrentNetwork(
            max(n_inputs, 1),
            self.hidden_size,
            1,
            rule=self.rule,
            readout_hidden=self.readout_hidden or (),
            activation=self.activation,
            optimizer=self.optimizer,
            lr=self._lr,
            seed=self._seed,
            device=self.device,
            credit_steps=self.credit_steps,
            **kwargs,
        )

    # ---------------------------------------------------------------- features and labels
    def _parse(self, x: dict) -> tuple[list, np.ndarray]:
        """Keys and float values of one step, checked (TypeError/ValueError, nothing changed)."""
        if not isinstance(x, dict):
            raise TypeError(
                f"{type(self).__name__}: a time step must be a dict of feature values, got "
                f"{type(x).__name__}."
            )
        return list(x), parse_values(x, type(self).__name__, "raise")

    def _add_features(self, keys) -> None:
        self._features.add(keys, type(self).__name__)
        if self._net is None:
            self._net = self._build(len(self._features))
        elif len(self._features) > self._net.input_size:
            self._net.grow_inputs(len(self._features) - self._net.input_size)

    def _register(self, y) -> int:
        return register_label(self, y)[0]

    def _row(self, keys, values: np.ndarray, width: int) -> np.ndarray:
        """One step as a row of ``width`` columns; names without a column are ignored."""
        return self._features.scatter(tuple(keys), values, np.zeros(width, dtype=np.float32))

    def _proba(self, logits: torch.Tensor) -> dict:
        z = logits.double().numpy()[: len(self._classes)]
        e = np.exp(z - z.max())
        return dict(zip(self._classes, (e / e.sum()).tolist()))

    @scoped_threads
    def predict_one(self, x):
        proba = self.predict_proba_one(x)
        return max(proba, key=proba.get) if proba else None

    @property
    def _multiclass(self) -> bool:
        return True

    # ----------------------------------------------------------------- memory, pickling
    def _optimizers(self) -> list:
        """The network's optimizers, in a fixed order (none for a readout without one)."""
        net = self._net
        if net is None or not isinstance(net, RecurrentNetwork):
            return []
        return [*net.optimizers, *net.readout.optimizers.values()]

    def _tensor_bytes(self) -> int:
        if self._net is None:
            return 0
        if not isinstance(self._net, RecurrentNetwork):
            return self._net.nbytes
        tensors = list(self._net.parameters())
        for opt in self._optimizers():
            for state in opt.state.values():
                tensors += [v for v in state.values() if torch.is_tensor(v)]
        return sum(t.numel() * t.element_size() for t in tensors)

    @property
    def _raw_memory_usage(self) -> int:
        return super()._raw_memory_usage + self._tensor_bytes()

    # ---------------------------------------------------------------------- persistence
    def save(self, path) -> None:
        """Write the model to ``path`` (a versioned ``torch.save`` archive of plain values)."""
        net = self._net
        payload = {
            "format": _persistence.FORMAT,
            "version": _persistence.FORMAT_VERSION,
            "estimator": type(self).__name__,
            "params": _persistence.plain_params(self._get_params()),
            "seed": int(self._seed),
            "features": [_persistence.encode(k) for k in self._features],
            "classes": [_persistence.encode(c) for c in self._classes],
            "n_inputs": 0 if net is None else net.input_size,
            "n_outputs": 0 if net is None else net.n_outputs,
            "network": None if net is None else {k: v.cpu() for k, v in net.state_dict().items()},
            "optimizers": [o.state_dict() for o in self._optimizers()],
            "weight_layout": WEIGHT_LAYOUT,
            "n_updates": int(self._n_updates),
            "n_skipped": int(self.skipped_updates),
            "pending": self._pending_state(),
        }
        _persistence.write(payload, path)

    @classmethod
    def load(cls, path, *, device: str | None = None):
        """Read a model written by :meth:`save`; ``ValueError`` for another version or class."""
        payload, params = _persistence.read_checked(cls, path, device)
        params = cls._upgrade_params(params)
        try:
            for key in ("network", "optimizers", "pending"):
                _persistence.check_finite_tensors(key, payload[key])
            model = cls(**params)
            model._seed = payload["seed"]
            model._features.extend(_persistence.decode(t) for t in payload["features"])
            model._classes = [_persistence.decode(t) for t in payload["classes"]]
            model._class_index = {c: i for i, c in enumerate(model._classes)}
            if payload["network"] is not None:
                net = model._net = model._build(payload["n_inputs"])
                if payload["n_outputs"] > net.n_outputs:
                    net.grow_outputs(payload["n_outputs"] - net.n_outputs)
                network, optimizers = payload["network"], payload["optimizers"]
                layout = payload.get("weight_layout", 1)  # (files before it: 1)
                if isinstance(net, RecurrentNetwork) and layout < WEIGHT_LAYOUT:
                    network, optimizers = upgrade_weight_layout(network, optimizers)
                net.load_state_dict(network)
                for opt, state in zip(model._optimizers(), optimizers, strict=True):
                    opt.load_state_dict(state)
            model._n_updates = payload["n_updates"]
            model._n_skipped = payload.get("n_skipped", 0)
            model._set_pending_state(payload["pending"])
            model._check_loaded()
        except (KeyError, TypeError, RuntimeError, IndexError, ValueError, AttributeError) as err:
            raise _persistence.damaged(path, f"{type(err).__name__}: {err}") from err
        return model

    def _check_loaded(self) -> None:
        """Counts of a loaded model within its network (``ValueError`` naming the first)."""
        net = self._net
        if net is None:
            if self._classes or self._features or self._pending_labels():
                raise ValueError("classes, features or pending samples without a network")
            return
        if len(self._classes) > net.n_outputs or len(self._features) > net.input_size:
            raise ValueError("more classes or features than the network has units for")
        if not all(0 <= label < max(len(self._classes), 1) for label in self._pending_labels()):
            raise ValueError("a pending sample's label is beyond the known classes")
        if min(self._n_updates, self.skipped_updates) < 0:
            raise ValueError("a negative count")
