"""Sequence classifiers on Elman layers trained by local rules over time (or BPTT).

- :class:`TPSGDSequenceClassifier`: one whole sequence per ``learn_one``, learned in padded
  minibatches of ``batch_size`` sequences.
- :class:`TPSGDStreamingSequenceClassifier`: one time step of a sensor stream per ``learn_one``,
  the hidden state carried across calls, a label per step (or per window of steps).

Both map feature names to input columns as the tabular estimators do (a new name grows a
zero-weight input column; missing names count as 0; unknown names are ignored at prediction),
grow the readout for a new label, reject bad input before changing any state, and save to the
same versioned ``torch.save`` archive (``{"format": "tpsgd-stream", "version": 1, ...}``).
"""

from __future__ import annotations

import random

import numpy as np
import torch
from river import base

from ..recurrent import RecurrentNetwork
from . import _persistence
from ._inputs import check_label, parse_values
from .base import check_training_params

__all__ = ["TPSGDSequenceClassifier", "TPSGDStreamingSequenceClassifier"]

ACTIVATIONS = ("sigmoid", "tanh")


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
        check_training_params(self, ACTIVATIONS)

    def _reset(self) -> None:
        self._seed = random.SystemRandom().randrange(2**31) if self.seed is None else self.seed
        self._features: dict = {}  # feature name -> input column
        self._classes: list = []  # output unit -> label
        self._class_index: dict = {}
        self._net: RecurrentNetwork | None = None
        self._n_updates = 0

    def _network(self, n_inputs: int, **kwargs) -> RecurrentNetwork:
        return RecurrentNetwork(
            max(n_inputs, 1),
            self.hidden_size,
            1,
            rule=self.rule,
            readout_hidden=self.readout_hidden or (),
            activation=self.activation,
            optimizer=self.optimizer,
            lr=self.lr,
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
        new = sorted({k for k in keys if k not in self._features}, key=lambda k: repr(k))
        for key in new:
            self._features[key] = len(self._features)
        if self._net is None:
            self._net = self._build(len(self._features))
        elif len(self._features) > self._net.input_size:
            self._net.grow_inputs(len(self._features) - self._net.input_size)

    def _register(self, y) -> int:
        index = self._class_index.get(y)
        if index is None:
            index = self._class_index[y] = len(self._classes)
            self._classes.append(y)
            if len(self._classes) > self._net.n_outputs:
                self._net.grow_outputs(1)
        return index

    def _row(self, keys, values: np.ndarray, width: int) -> np.ndarray:
        """One step as a row of ``width`` columns; names without a column are ignored."""
        row = np.zeros(width, dtype=np.float32)
        for key, value in zip(keys, values):
            column = self._features.get(key)
            if column is not None and column < width:
                row[column] = value
        return row

    def _proba(self, logits: torch.Tensor) -> dict:
        z = logits.double().numpy()[: len(self._classes)]
        e = np.exp(z - z.max())
        return dict(zip(self._classes, (e / e.sum()).tolist()))

    def predict_one(self, x):
        proba = self.predict_proba_one(x)
        return max(proba, key=proba.get) if proba else None

    @property
    def _multiclass(self) -> bool:
        return True

    # ----------------------------------------------------------------- memory, pickling
    def _tensor_bytes(self) -> int:
        if self._net is None:
            return 0
        tensors = list(self._net.parameters())
        for opt in [*self._net.optimizers, *self._net.readout.optimizers.values()]:
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
            "params": self._get_params(),
            "seed": int(self._seed),
            "features": [_persistence.encode(k) for k in self._features],
            "classes": [_persistence.encode(c) for c in self._classes],
            "n_inputs": 0 if net is None else net.input_size,
            "n_outputs": 0 if net is None else net.n_outputs,
            "network": None if net is None else {k: v.cpu() for k, v in net.state_dict().items()},
            "optimizers": []
            if net is None
            else [o.state_dict() for o in [*net.optimizers, *net.readout.optimizers.values()]],
            "n_updates": int(self._n_updates),
            "pending": self._pending_state(),
        }
        torch.save(payload, path)

    @classmethod
    def load(cls, path, *, device: str | None = None):
        """Read a model written by :meth:`save`; ``ValueError`` for another version or class."""
        payload, params = _persistence.read_checked(cls, path, device)
        try:
            model = cls(**params)
            model._seed = payload["seed"]
            model._features = {_persistence.decode(t): i for i, t in enumerate(payload["features"])}
            model._classes = [_persistence.decode(t) for t in payload["classes"]]
            model._class_index = {c: i for i, c in enumerate(model._classes)}
            if payload["network"] is not None:
                net = model._net = model._build(payload["n_inputs"])
                if payload["n_outputs"] > net.n_outputs:
                    net.grow_outputs(payload["n_outputs"] - net.n_outputs)
                net.load_state_dict(payload["network"])
                optimizers = [*net.optimizers, *net.readout.optimizers.values()]
                for opt, state in zip(optimizers, payload["optimizers"], strict=True):
                    opt.load_state_dict(state)
            model._n_updates = payload["n_updates"]
            model._set_pending_state(payload["pending"])
        except (KeyError, TypeError, RuntimeError, IndexError, ValueError) as err:
            raise ValueError(
                f"{path} is a damaged tpsgd-stream model file ({type(err).__name__}: {err})."
            ) from err
        return model


class TPSGDSequenceClassifier(_SequenceBase):
    """Classifies whole sequences; Elman layers learn by a local rule at every time step.

    ``learn_one(x, y)`` takes one sequence ``x``: a numpy array ``(T, d)`` (column ``j`` is the
    feature named ``j``) or a list of ``T`` dicts, one per time step. Sequences are buffered
    and learned ``batch_size`` at a time, padded to the longest one (each keeps its own length).

    Parameters
    ----------
    hidden_size, num_layers, bidirectional
        Units per recurrent layer, stacked layers, and a backward-reading twin per layer.
    rule
        Rule of the recurrent layers (see :mod:`tpsgd_stream.recurrent`); ``"bp"`` is BPTT.
        The default, local cross-entropy through a fixed ``B_t`` with 8 steps of truncated
        local credit and tanh cells, was the best local variant of our row-wise MNIST sweep
        (BENCHMARKS.md, "Recurrent tables"); the paper's rules alone (``"drtp"``,
        ``"tpsgd_l1"``) lag far behind BPTT there.
    activation
        ``"tanh"`` or ``"sigmoid"`` (the paper's cell; it learned markedly slower in our sweep,
        see BENCHMARKS.md, "Recurrent tables").
    credit_steps
        Truncated local credit: each step's local error also reaches the ``credit_steps - 1``
        steps before it through the recurrent weights (``1``: the paper's rules).
    readout_hidden
        ``None`` for a linear readout on the last state, ``(n,)`` for one hidden layer.
    optimizer, lr, batch_size, seed, device
        As :class:`~tpsgd_stream.models.TPSGDClassifier` (``batch_size`` counts sequences).

    Notes
    -----
    Prediction runs the network on the current weights and never changes the model. Labels
    may be any hashable value; a new one adds a readout unit with zero weights (the logits of
    earlier classes do not change) and a row to every fixed ``B_t``. A sequence that is not a
    2-D array or a list of dicts, is empty, has another number of columns than the arrays
    learned so far, or holds NaN/inf is rejected with an error before anything changes.

    Examples
    --------
    >>> import numpy as np
    >>> from tpsgd_stream.models import TPSGDSequenceClassifier
    >>> rng = np.random.default_rng(0)
    >>> model = TPSGDSequenceClassifier(hidden_size=16, batch_size=8, lr=3e-2, seed=0)
    >>> correct = 0
    >>> for i in range(400):
    ...     y = int(rng.integers(2))                      # the sign of the first step
    ...     x = rng.normal(size=(5, 2)) * 0.3
    ...     x[0, 0] = 1.0 if y else -1.0
    ...     correct += i >= 300 and model.predict_one(x) == y
    ...     model.learn_one(x, y)
    >>> print(f"Accuracy on the last 100: {correct}%")
    Accuracy on the last 100: 100%
    """

    _int_params = (*_SequenceBase._int_params, "num_layers")

    def __init__(
        self,
        hidden_size: int = 128,
        num_layers: int = 1,
        bidirectional: bool = False,
        rule: str = "tpsgd_ce",
        activation: str = "tanh",
        credit_steps: int = 8,
        readout_hidden: tuple[int, ...] | None = None,
        optimizer: str = "adam",
        lr: float = 3e-3,
        batch_size: int = 32,
        seed: int | None = None,
        device: str = "cpu",
    ):
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.rule = rule
        self.activation = activation
        self.credit_steps = credit_steps
        self.readout_hidden = readout_hidden
        self.optimizer = optimizer
        self.lr = lr
        self.batch_size = batch_size
        self.seed = seed
        self.device = device
        self._check_params()
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        self._buffer: list[tuple[list, np.ndarray, int]] = []  # (columns keys, values, label)

    @classmethod
    def _unit_test_params(cls):
        yield {"hidden_size": 8, "batch_size": 4}

    def _build(self, n_inputs: int) -> RecurrentNetwork:
        return self._network(
            n_inputs, num_layers=self.num_layers, bidirectional=bool(self.bidirectional)
        )

    # ------------------------------------------------------------------------- input
    def _sequence(self, x) -> tuple[list, np.ndarray]:
        """``(keys, values (T, n_keys))`` of a sequence, checked; raises before any change."""
        name = type(self).__name__
        if isinstance(x, np.ndarray):
            if x.ndim != 2:
                raise ValueError(
                    f"{name}: a sequence array must have shape (T, d) (time steps, features), "
                    f"got shape {x.shape}; reshape a single-feature series with x.reshape(-1, 1)."
                )
            if x.dtype.kind not in "biuf":
                raise TypeError(f"{name}: a sequence array must be numeric, got {x.dtype}.")
            values = x.astype(np.float64)
            keys = list(range(x.shape[1]))
            n_known = sum(isinstance(k, int) for k in self._features)
            if self._features and n_known and x.shape[1] != n_known:
                raise ValueError(
                    f"{name}: this model learned sequences of {n_known} features per step; "
                    f"got an array of {x.shape[1]} (shape {x.shape})."
                )
        elif isinstance(x, (list, tuple)):
            parsed = [self._parse(step) for step in x]
            keys = sorted({k for step_keys, _ in parsed for k in step_keys}, key=repr)
            index = {k: j for j, k in enumerate(keys)}
            values = np.zeros((len(parsed), len(keys)))
            for t, (step_keys, step_values) in enumerate(parsed):
                values[t, [index[k] for k in step_keys]] = step_values
        else:
            raise TypeError(
                f"{name}: a sequence must be a numpy array (T, d) or a list of dicts, one per "
                f"time step; got {type(x).__name__}."
            )
        if len(values) == 0:
            raise ValueError(f"{name}: the sequence is empty (0 time steps); nothing to learn.")
        if not np.isfinite(values).all():
            steps = np.flatnonzero(~np.isfinite(values).all(axis=1)).tolist()
            raise ValueError(
                f"{name}: the sequence has NaN or infinite values at time step(s) {steps[:10]}; "
                f"impute them first."
            )
        return keys, values

    def _tensor(self, keys, values: np.ndarray, width: int) -> torch.Tensor:
        out = np.zeros((len(values), width), dtype=np.float32)
        columns = [self._features.get(k) for k in keys]
        known = [j for j, c in enumerate(columns) if c is not None and c < width]
        out[:, [columns[j] for j in known]] = values[:, known]
        return torch.from_numpy(out)

    # ----------------------------------------------------------------------- learning
    def learn_one(self, x, y) -> None:
        check_label(y, type(self).__name__)
        keys, values = self._sequence(x)
        self._add_features(keys)
        self._buffer.append((keys, values.astype(np.float32), self._register(y)))
        if len(self._buffer) == self.batch_size:
            self._update()

    def _update(self) -> None:
        width = self._net.input_size
        lengths = torch.tensor([len(v) for _, v, _ in self._buffer])
        x = torch.zeros(len(self._buffer), int(lengths.max()), width)
        for i, (keys, values, _) in enumerate(self._buffer):
            x[i, : len(values)] = self._tensor(keys, values, width)
        y = torch.tensor([label for _, _, label in self._buffer])
        self._net.train_step(x, self._net.one_hot(y), lengths)
        self._buffer = []
        self._n_updates += 1

    # --------------------------------------------------------------------- prediction
    def predict_proba_one(self, x) -> dict:
        keys, values = self._sequence(x)
        if not self._classes:
            return {}
        with torch.inference_mode():
            logits = self._net.forward(self._tensor(keys, values, self._net.input_size)[None])
        return self._proba(logits[0])

    # ---------------------------------------------------------------------- persistence
    def _pending_state(self) -> list:
        return [
            ([_persistence.encode(k) for k in keys], torch.from_numpy(v), int(label))
            for keys, v, label in self._buffer
        ]

    def _set_pending_state(self, pending: list) -> None:
        self._buffer = [
            ([_persistence.decode(k) for k in keys], v.numpy().copy(), int(label))
            for keys, v, label in pending
        ]


class TPSGDStreamingSequenceClassifier(_SequenceBase):
    """One time step of a sensor stream per ``learn_one``, the hidden state carried across calls.

    ``learn_one(x, y)`` takes the channel values of one step (a dict) and its label, advances
    the hidden state ``h_t = sigma(h_{t-1} W_H + x_t W_X + b)`` and buffers the step.
    ``predict_proba_one(x)`` classifies the state the next step would reach, without advancing
    it. With ``window=None`` the state is never reset and the readout learns from every
    step's state; with ``window=W`` the state resets every ``W`` steps, the recurrent layer
    learns at every step (with ``B_t`` of the step's position in its window) and the readout
    from the last state of each window, the label of a window being that of its last step.

    Every ``batch_size`` steps one update runs on the buffered steps: since the weights did not
    change in between, recomputing each step from its stored input and previous state gives
    exactly the states the stream went through. Memory is ``batch_size`` steps, whatever the
    stream's length. Truncated local credit (``credit_steps``) reaches back over the earlier
    steps in the same buffer only. One unidirectional layer: a stream cannot be read
    backwards.

    Parameters
    ----------
    hidden_size, rule, activation, credit_steps, readout_hidden, optimizer, lr, seed, device
        As :class:`TPSGDSequenceClassifier`.
    batch_size
        Time steps per update.
    window
        ``None`` (one unbroken stream) or the steps per window.

    Examples
    --------
    >>> import numpy as np
    >>> from tpsgd_stream.models import TPSGDStreamingSequenceClassifier
    >>> rng = np.random.default_rng(0)
    >>> model = TPSGDStreamingSequenceClassifier(hidden_size=16, batch_size=8, lr=1e-2, seed=0)
    >>> correct, state = 0, 0
    >>> for t in range(3000):                       # label: which regime the stream is in
    ...     state = state if rng.random() > 0.02 else 1 - state
    ...     x = {"a": rng.normal() + (1.0 if state else -1.0), "b": rng.normal()}
    ...     correct += t >= 2000 and model.predict_one(x) == state
    ...     model.learn_one(x, state)
    >>> print(f"Accuracy on the last 1000 steps: {correct / 10:.1f}%")
    Accuracy on the last 1000 steps: 96.4%
    """

    def __init__(
        self,
        hidden_size: int = 64,
        rule: str = "tpsgd_ce",
        activation: str = "tanh",
        credit_steps: int = 8,
        readout_hidden: tuple[int, ...] | None = None,
        optimizer: str = "adam",
        lr: float = 3e-3,
        batch_size: int = 32,
        window: int | None = None,
        seed: int | None = None,
        device: str = "cpu",
    ):
        self.hidden_size = hidden_size
        self.rule = rule
        self.activation = activation
        self.credit_steps = credit_steps
        self.readout_hidden = readout_hidden
        self.optimizer = optimizer
        self.lr = lr
        self.batch_size = batch_size
        self.window = window
        self.seed = seed
        self.device = device
        self._check_params()
        if window is not None and not _positive_int("window", window):
            raise ValueError(
                f"{type(self).__name__}: window must be None or an int >= 1, got {window!r}."
            )
        if rule == "bp":
            raise ValueError(
                f"{type(self).__name__}: rule='bp' (BPTT) needs whole sequences; use "
                f"TPSGDSequenceClassifier for it, or a local rule here."
            )
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        self._h = np.zeros(self.hidden_size, dtype=np.float32)  # carried state
        self._t = 0  # position in the current window
        self._steps: list[tuple[np.ndarray, np.ndarray, int, int]] = []  # (x, h_prev, y, t)

    @classmethod
    def _unit_test_params(cls):
        yield {"hidden_size": 8, "batch_size": 4}
        yield {"hidden_size": 8, "batch_size": 3, "window": 5, "rule": "tpsgd_l1"}

    def _build(self, n_inputs: int) -> RecurrentNetwork:
        return self._network(n_inputs)

    def _next_state(self, row: np.ndarray) -> torch.Tensor:
        cell = self._net.cells[0]
        with torch.no_grad():
            z = cell.linear(torch.from_numpy(row)[None], torch.from_numpy(self._h)[None])
            return cell.act.forward(z)

    # ----------------------------------------------------------------------- learning
    def learn_one(self, x: dict, y) -> None:
        check_label(y, type(self).__name__)
        keys, values = self._parse(x)
        self._add_features(keys)
        label = self._register(y)
        width = self._net.input_size
        if self._steps and len(self._steps[0][0]) < width:  # a new feature: widen the buffer
            grow = width - len(self._steps[0][0])
            self._steps = [(np.pad(s[0], (0, grow)), *s[1:]) for s in self._steps]
        row = self._row(keys, values, width)
        self._steps.append((row, self._h, label, self._t))
        self._h = self._next_state(row)[0].numpy()
        if self.window is not None:  # an unbroken stream keeps one B (t = 0) for ever
            self._t += 1
            if self._t == self.window:
                self._h, self._t = np.zeros_like(self._h), 0
        if len(self._steps) == self.batch_size:
            self._update()

    def _update(self) -> None:
        net, cell = self._net, self._net.cells[0]
        x = torch.from_numpy(np.stack([s[0] for s in self._steps]))
        h = torch.from_numpy(np.stack([s[1] for s in self._steps]))
        y = torch.tensor([s[2] for s in self._steps])
        t = [s[3] for s in self._steps]
        target = net.one_hot(y)
        with torch.no_grad():
            z = cell.linear(x, h)
            a = cell.act.forward(z)
            slope = cell.act.derivative(z, a)
            delta = torch.zeros_like(z)
            steps = torch.tensor(t)
            for t_i in sorted(set(t)):  # rows of the same window position share B_t
                rows = steps == t_i
                delta[rows] = net.step_delta(0, t_i, z[rows], a[rows], slope[rows], target[rows])
                delta[rows] *= int(rows.sum()) / len(t)  # the rule averaged over its rows
            cell.accumulate(x, h, delta)
            # truncated local credit within the buffer: step i-1 led to step i unless a window
            # started at step i
            follows = torch.tensor([float(t_i > 0 or self.window is None) for t_i in t])[1:, None]
            for _ in range(self.credit_steps - 1):
                delta = (delta[1:] @ cell.weight_h.T) * slope[:-1] * follows[: len(delta) - 1]
                if len(delta) == 0:
                    break
                cell.accumulate(x[: len(delta)], h[: len(delta)], delta)
                follows, slope, x, h = follows[1:], slope[:-1], x[:-1], h[:-1]
            net.optimizers[0].step()
            net.optimizers[0].zero_grad(set_to_none=True)
            net._cap_recurrent_norm()
        if self.window is None:
            keep = torch.ones(len(t), dtype=torch.bool)
        else:
            keep = torch.tensor([t_i == self.window - 1 for t_i in t])
        if keep.any():
            net.readout.train_step(a[keep], target[keep])
        self._steps = []
        self._n_updates += 1

    # --------------------------------------------------------------------- prediction
    def predict_proba_one(self, x: dict) -> dict:
        keys, values = self._parse(x)
        if not self._classes:
            return {}
        with torch.inference_mode():
            logits = self._net.readout.forward(
                self._next_state(self._row(keys, values, self._net.input_size))
            )
        return self._proba(logits[0])

    # ---------------------------------------------------------------------- persistence
    def _pending_state(self) -> dict:
        return {
            "h": torch.from_numpy(self._h.copy()),
            "t": int(self._t),
            "steps": [
                (torch.from_numpy(row), torch.from_numpy(h), int(y), int(t))
                for row, h, y, t in self._steps
            ],
        }

    def _set_pending_state(self, pending: dict) -> None:
        self._h, self._t = pending["h"].numpy().copy(), pending["t"]
        self._steps = [
            (row.numpy().copy(), h.numpy().copy(), y, t) for row, h, y, t in pending["steps"]
        ]
