"""Mechanics shared by the tabular estimators: feature map, minibatch buffer, fast prediction.

The estimators own everything river-specific (dicts, labels, DataFrames) and hand tensors to
:class:`~tpsgd_stream.engine.network.Network`:

- **Feature map.** Each feature name gets a column the first time a sample with it is learned
  from. The network is built on the first sample (or frame) learned from, whose features get
  the usual random initialisation; a later feature grows a zero-weight input column, so the
  outputs do not change. Missing features count as 0, unknown features at prediction time are
  ignored, and the order of the keys never matters (new names get columns in sorted order).
- **Buffer.** ``learn_one`` writes the row into a ``(batch_size, n_columns)`` buffer and runs
  one ``train_step`` when it is full. ``learn_many`` goes through the same buffer, so both
  paths take exactly the same steps.
- **Prediction.** A float64 numpy copy of the weights, rebuilt lazily after each update, runs
  the forward pass: for one row that is several times faster than a torch call. (float32
  views would save the copy and a few microseconds, but one row and a frame then sum in
  different orders and miss river's check that ``predict_one`` and ``predict_many`` agree
  within 1e-6.)
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch
from river import base

from ..engine import activations as act_module
from ..engine.network import Network, resolve_device
from ..engine.optim import OPTIMIZERS
from ..engine.rules import RULES, canonical_name
from ..engine.seeding import resolve_seed
from . import _persistence
from ._inputs import NON_FINITE, check_frame, parse_values

__all__ = ["TPSGDEstimator"]


# In-place activations of the numpy forward pass (which owns every array it applies them to).
def _leaky_relu(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, act_module.LEAKY_SLOPE * z, out=z)


def _relu(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0.0, out=z)


def _tanh(z: np.ndarray) -> np.ndarray:
    return np.tanh(z, out=z)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    np.negative(z, out=z)
    np.logaddexp(0.0, z, out=z)
    np.negative(z, out=z)
    return np.exp(z, out=z)


_CACHE_SIZE = 1024  # entries of each key-tuple -> columns cache


def _name_key(name) -> tuple[str, str]:
    """A sort key for feature names of any (mixed) types."""
    return type(name).__name__, repr(name)


NUMPY_ACTIVATIONS = {
    "leaky_relu": _leaky_relu,
    "relu": _relu,
    "tanh": _tanh,
    "sigmoid": _sigmoid,
    "identity": None,
}


def is_tuple_of_positive_ints(value) -> bool:
    """Whether ``value`` is a tuple of positive ints (numpy ints too, bools not)."""
    return isinstance(value, tuple) and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in value
    )


def check_training_params(estimator, activations, rules) -> None:
    """Check ``activation``, ``rule``, ``optimizer``, ``lr``, ``seed`` and ``device`` of any of
    the estimators, with a ``ValueError`` naming the estimator, the parameter and its value.
    ``rules``: the rule names this estimator can train with."""
    name = type(estimator).__name__
    if estimator.activation not in activations:
        raise ValueError(
            f"{name}: unknown activation {estimator.activation!r}; expected one of "
            f"{list(activations)}."
        )
    rules = list(rules)
    if canonical_name(estimator.rule) not in rules:  # an old name warns
        known = "unsupported" if estimator.rule in RULES else "unknown"
        raise ValueError(f"{name}: {known} rule {estimator.rule!r}; expected one of {rules}.")
    if estimator.optimizer not in OPTIMIZERS:
        raise ValueError(
            f"{name}: unknown optimizer {estimator.optimizer!r}; expected one of {OPTIMIZERS}."
        )
    lr = estimator.lr
    if isinstance(lr, (bool, np.bool_)) or not (isinstance(lr, numbers.Real) and 0 < lr < math.inf):
        raise ValueError(f"{name}: lr must be a positive number, got {lr!r}.")
    seed = estimator.seed
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0
    ):
        raise ValueError(f"{name}: seed must be a non-negative int or None, got {seed!r}.")
    resolve_device(estimator.device)  # a clear ValueError now rather than at the first sample


def register_labels(estimator, labels) -> bool:
    """Give each new label of ``labels``, in order of first appearance, the next output unit,
    and grow the network's output once for all of them (existing units, and so the other
    classes' logits, are unchanged); return whether any label was new.

    ``estimator`` keeps ``_classes`` (unit -> label), ``_class_index`` (label -> unit) and
    ``_net`` (anything with ``n_outputs`` and ``grow_outputs``).
    """
    index, classes = estimator._class_index, estimator._classes
    new = [y for y in dict.fromkeys(labels) if y not in index]
    for y in new:
        index[y] = len(classes)
        classes.append(y)
    missing = len(classes) - estimator._net.n_outputs
    if missing > 0:
        estimator._net.grow_outputs(missing)
    return bool(new)


def register_label(estimator, y) -> tuple[int, bool]:
    """The output unit of label ``y``, and whether it is new (as :func:`register_labels`)."""
    index = estimator._class_index.get(y)
    if index is not None:
        return index, False
    register_labels(estimator, (y,))
    return estimator._class_index[y], True


class TPSGDEstimator(base.Estimator):
    """Shared state and mechanics; subclasses define the task (targets, outputs, prediction).

    Examples
    --------
    >>> from tpsgd_stream.models import TPSGDClassifier
    >>> model = TPSGDClassifier(hidden_layer_sizes=(4,), batch_size=2, seed=0)
    >>> model.learn_one({"a": 1.0}, "x"); model._n_buffered   # buffered, no update yet
    1
    >>> model.learn_one({"b": 2.0}, "y"); model._n_updates, sorted(model._features)
    (1, ['a', 'b'])
    """

    _loss: str = "cross_entropy"

    # ------------------------------------------------------------------------ parameters
    def _check_params(self) -> None:
        name = type(self).__name__
        self._check_architecture()
        batch = self.batch_size
        if isinstance(batch, bool) or not (isinstance(batch, (int, np.integer)) and batch >= 1):
            raise ValueError(f"{name}: batch_size must be an int >= 1, got {batch!r}.")
        if self.non_finite not in NON_FINITE:
            raise ValueError(
                f"{name}: non_finite must be one of {NON_FINITE}, got {self.non_finite!r}."
            )
        check_training_params(self, sorted(NUMPY_ACTIVATIONS), self._rules())

    def _check_architecture(self) -> None:
        """Check the parameters that shape the network (here: ``hidden_layer_sizes``)."""
        if not is_tuple_of_positive_ints(self.hidden_layer_sizes):
            raise ValueError(
                f"{type(self).__name__}: hidden_layer_sizes must be a tuple of positive ints, "
                f"such as (64,), got {self.hidden_layer_sizes!r}."
            )

    def _rules(self) -> list[str]:
        """Names of the rules this estimator trains with (here: all)."""
        return sorted(RULES)

    @property
    def _n_trainable_layers(self) -> int:
        """Trainable layers of the network this estimator builds (hidden layers + output)."""
        return len(self.hidden_layer_sizes) + 1

    def _reset(self) -> None:
        # seed=None draws a seed once, so that a model (and its pickle) is self-consistent
        self._seed = resolve_seed(self.seed)
        self._features: dict = {}  # feature name -> column
        self._net: Network | None = None
        self._buffer = np.zeros((self.batch_size, 0), dtype=np.float32)
        self._buffer_y = np.zeros(self.batch_size, dtype=self._target_dtype)
        self._n_buffered = 0
        self._n_updates = 0
        self._train_layers: list[int] | None = None  # None: all; a drift wrapper may narrow it
        self._weights = None  # numpy copy of the weights for prediction, None when stale
        self._learn_columns: dict = {}  # tuple of keys -> their columns (all known)
        self._predict_columns: dict = {}  # tuple of keys -> (columns, mask of known keys)

    # --------------------------------------------------------------------- task hooks
    _target_dtype = np.int64

    @property
    def _n_outputs(self) -> int:
        raise NotImplementedError

    def _targets(self, y: np.ndarray) -> torch.Tensor:
        raise NotImplementedError

    # --------------------------------------------------------------------------- network
    @property
    def _width(self) -> int:
        """Columns of the buffer and of the network's input (>= the number of features)."""
        return self._buffer.shape[1]

    def _training_kwargs(self) -> dict:
        """The network's activation, rules, loss, optimizer, learning rate, seed and device."""
        return dict(
            activation=self.activation,
            rule=self.rule,
            loss=self._loss,
            optimizer=self.optimizer,
            lr=self.lr,
            seed=self._seed,
            device=self.device,
        )

    def _build(self, n_inputs: int) -> None:
        """Create the network on the first sample learned; its features get the usual init."""
        n_inputs = max(n_inputs, 1)  # a first sample without features still gets a network
        self._net = Network.mlp(
            n_inputs, self.hidden_layer_sizes, max(self._n_outputs, 1), **self._training_kwargs()
        )
        self._buffer = np.zeros((self.batch_size, n_inputs), dtype=np.float32)

    def _add_features(self, names) -> None:
        """Give new feature names a column; grow the network's input when needed."""
        features = self._features
        # sorted, so that columns (and the first features' initial weights) never depend on
        # the order of the keys
        for name in sorted({n for n in names if n not in features}, key=_name_key):
            features[name] = len(features)
        self._predict_columns.clear()  # keys unknown so far may be known now
        if self._net is None:
            self._build(len(features))
        grow = len(features) - self._width
        if grow > 0:
            self._net.grow_inputs(grow)
            pad = np.zeros((self.batch_size, grow), dtype=np.float32)
            self._buffer = np.concatenate([self._buffer, pad], axis=1)
            self._weights = None

    def _learn_columns_of(self, keys: tuple) -> tuple[np.ndarray, np.ndarray | None]:
        """Columns of ``keys`` (a dict's keys or a frame's columns); unknown keys become new
        features. The second item, a mask of the keys that have a column, is ``None`` here
        (every key has one) and exists for estimators of a fixed input, which ignore new keys.

        Cached per tuple of keys (streams repeat the same keys in the same order), at most
        ``_CACHE_SIZE`` entries.
        """
        columns = self._learn_columns.get(keys)
        if columns is None:
            if self._net is None or not all(k in self._features for k in keys):
                self._add_features(keys)
            columns = np.fromiter(map(self._features.__getitem__, keys), np.intp, len(keys))
            if len(self._learn_columns) >= _CACHE_SIZE:
                self._learn_columns.clear()
            self._learn_columns[keys] = columns
        return columns, None

    def _predict_columns_of(self, keys: tuple) -> tuple[np.ndarray, np.ndarray | None]:
        """Columns of the known ``keys``, and a mask of the known keys (``None``: all known)."""
        entry = self._predict_columns.get(keys)
        if entry is None:
            features = self._features
            known = np.fromiter((k in features for k in keys), bool, len(keys))
            columns = np.fromiter((features[k] for k in keys if k in features), np.intp)
            entry = (columns, None if known.all() else known)
            if len(self._predict_columns) >= _CACHE_SIZE:
                self._predict_columns.clear()
            self._predict_columns[keys] = entry
        return entry

    def _push(self, columns: np.ndarray, values: np.ndarray, y) -> None:
        """Buffer one sample (already validated and mapped to distinct ``columns``); update when
        the buffer is full."""
        row = self._buffer[self._n_buffered]
        if len(columns) < len(row):  # (a dict's keys are distinct: they cover the row or not)
            row[:] = 0.0
        row[columns] = values.astype(np.float32)  # cast first: a same-type scatter is faster
        self._buffer_y[self._n_buffered] = y
        self._n_buffered += 1
        if self._n_buffered == self.batch_size:
            self._update()

    def _update(self) -> None:
        n = self._n_buffered
        x = self._inputs(torch.from_numpy(self._buffer[:n]).to(self._net.device))
        self._net.train_step(
            x, self._targets(self._buffer_y[:n]), layers=self._train_layers, check_finite=False
        )  # (every buffered row was checked)
        self._n_buffered = 0
        self._n_updates += 1
        self._weights = None

    def _inputs(self, rows: torch.Tensor) -> torch.Tensor:
        """The network's input for float32 ``rows`` of the buffer's width (here: the rows)."""
        return rows

    # ------------------------------------------------------------------------ learning
    def _learn_row(self, x: dict, y, register) -> None:
        """Check ``x``, then map its features and ``register(y)`` its label, then buffer it."""
        values = parse_values(x, type(self).__name__, self.non_finite)
        columns, known = self._learn_columns_of(tuple(x))
        self._push(columns, values if known is None else values[known], register(y))

    def _learn_frame(self, X, y: np.ndarray, register) -> None:
        """Buffer the rows of ``X`` in order; ``register(chunk)`` maps the labels of a chunk.

        Labels are registered chunk by chunk, right before the rows that carry them enter the
        buffer, so that ``learn_many`` takes exactly the steps a ``learn_one`` loop would.
        """
        values = check_frame(X, type(self).__name__, self.non_finite)
        if len(X) != len(y):
            raise ValueError(
                f"{type(self).__name__}: X has {len(X)} rows but y has {len(y)} labels."
            )
        if len(X) == 0:
            return
        columns, known = self._learn_columns_of(tuple(X.columns.tolist()))
        values = values.astype(np.float32)  # cast first: a same-type scatter is faster
        if known is not None:
            values = values[:, known]
        start = 0
        while start < len(values):
            take = min(self.batch_size - self._n_buffered, len(values) - start)
            stop = start + take
            targets = register(y[start:stop])
            block = self._buffer[self._n_buffered : self._n_buffered + take]
            block[:] = 0.0  # (the frame may lack some features: always clear)
            block[:, columns] = values[start:stop]
            self._buffer_y[self._n_buffered : self._n_buffered + take] = targets
            self._n_buffered += take
            start = stop
            if self._n_buffered == self.batch_size:
                self._update()

    # ---------------------------------------------------------------------- prediction
    def _numpy_weights(self) -> list:
        if self._weights is None:
            layers = self._net.layers
            act = NUMPY_ACTIVATIONS[self.activation]
            self._weights = [
                (
                    np.ascontiguousarray(layer.weight.detach().cpu().numpy().T, dtype=np.float64),
                    layer.bias.detach().cpu().numpy().astype(np.float64),
                    None if i == len(layers) - 1 else act,
                )
                for i, layer in enumerate(layers)
            ]
        return self._weights

    def _forward(self, rows: np.ndarray) -> np.ndarray:
        """Outputs of the network for float64 ``rows`` (``(width,)`` or ``(n, width)``)."""
        for weight, bias, act in self._numpy_weights():
            rows = rows @ weight  # a new array: the bias and activation then work in place
            rows += bias
            if act is not None:
                act(rows)
        return rows

    def _row(self, x: dict) -> np.ndarray:
        """One input row for prediction: unknown features are ignored, missing ones are 0."""
        values = parse_values(x, type(self).__name__, self.non_finite)
        columns, known = self._predict_columns_of(tuple(x))
        row = np.zeros(self._buffer.shape[1])
        row[columns] = values if known is None else values[known]
        return row

    def _rows(self, X) -> np.ndarray:
        values = check_frame(X, type(self).__name__, self.non_finite)
        columns, known = self._predict_columns_of(tuple(X.columns.tolist()))
        rows = np.zeros((len(X), self._width))
        rows[:, columns] = values if known is None else values[:, known]
        return rows

    # --------------------------------------------------------------- memory, pickling
    def _tensor_bytes(self) -> int:
        """Bytes held in torch tensors, which river's memory walker cannot see into."""
        if self._net is None:
            return 0
        tensors = list(self._net.parameters())
        for optimizer in self._net.optimizers.values():
            for state in optimizer.state.values():
                tensors += [v for v in state.values() if torch.is_tensor(v)]
        for projection in self._net._projections.values():
            if projection._cache is not None:
                tensors.append(projection._cache)
        return sum(t.numel() * t.element_size() for t in tensors)

    @property
    def _raw_memory_usage(self) -> int:
        return super()._raw_memory_usage + self._tensor_bytes()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_weights"] = None  # caches, rebuilt on demand
        state["_learn_columns"], state["_predict_columns"] = {}, {}
        return state

    # ---------------------------------------------------------------------- persistence
    def save(self, path) -> None:
        """Write the model to ``path``: its parameters, maps, buffer and torch state.

        The file is a ``torch.save`` archive loadable with ``torch.load(weights_only=True)``
        and carries a format version; :meth:`load` reads it back.
        """
        _persistence.save(self, path)

    @classmethod
    def load(cls, path, *, device: str | None = None):
        """Read a model written by :meth:`save` (optionally onto another ``device``).

        Raises ``ValueError`` for a file of another format version, another estimator class,
        or a file that is corrupted or not a tpsgd-stream model.
        """
        return _persistence.load(cls, path, device=device)
