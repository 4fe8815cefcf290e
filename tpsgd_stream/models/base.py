"""Mechanics shared by the tabular estimators: feature map, minibatch buffer, fast prediction.

The estimators own everything river-specific (dicts, labels, DataFrames) and hand tensors to
:class:`~tpsgd_stream.engine.network.Network`:

- **Feature map** (:class:`~tpsgd_stream.models._features.FeatureMap`, shared with the sequence
  estimators). Each feature name gets a column the first time a sample with it is learned
  from. The network is built on the first sample (or frame) learned from, whose features get
  the usual random initialisation; a later feature grows a zero-weight input column, so the
  outputs do not change (``bitflip``, whose binary weights have no zero, draws its levels).
  Missing features count as 0, unknown features at prediction time are ignored, and the order
  of the keys never matters (new names get columns in sorted order).
- **Buffer.** ``learn_one`` writes the row into a ``(batch_size, n_columns)`` buffer and runs
  one ``train_step`` when it is full. ``learn_many`` goes through the same buffer, so both
  paths take exactly the same steps.
- **Readout cadence.** With ``readout_per_sample`` (the classifier's default), the output layer
  learns from every sample as it arrives (one step on the sample's last hidden activation),
  while the hidden layers learn from the full minibatch: local learning decouples the
  layers, so each keeps its own cadence. ``learn_many`` steps the readout row by row in the
  same order, so both paths still reach the same model. Past that phase a least-squares
  readout learns by one block update per minibatch, before the hidden layers' step, on the
  hidden activations the minibatch met.
- **Prediction.** A float64 copy of the weights (:class:`~tpsgd_stream.engine.inference.
  Float64Forward`), refreshed lazily after each update, runs the forward pass in numpy: for one
  row that is several times faster than a torch call. (float32
  views would save the copy and a few microseconds, but one row and a frame then sum in
  different orders and miss river's check that ``predict_one`` and ``predict_many`` agree
  within 1e-6.)
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Iterable

import numpy as np
import torch
from river import base

from ..engine.activations import ACTIVATIONS
from ..engine.guard import NonFiniteUpdateError
from ..engine.inference import Float64Forward
from ..engine.least_squares import rls_block_step, rls_step
from ..engine.network import Network, resolve_device
from ..engine.optim import OPTIMIZERS
from ..engine.readout import readout_step
from ..engine.rules import RULES, canonical_name
from ..engine.seeding import resolve_seed
from ..engine.threads import check_threads, intra_op_threads, threads_for
from . import _persistence
from ._features import FeatureMap
from ._inputs import NON_FINITE, check_frame, parse_values

__all__ = ["READOUT_SOLVERS", "TPSGDEstimator", "rule_default"]

READOUT_SOLVERS = ("rls", "optimizer")  # how a readout learns from each sample


def is_tuple_of_positive_ints(value) -> bool:
    """Whether ``value`` is a tuple of positive ints (numpy ints too, bools not)."""
    return isinstance(value, tuple) and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in value
    )


def positive_number(value) -> bool:
    """Whether ``value`` is a finite real number above 0 (a bool is not).

    Examples
    --------
    >>> [positive_number(v) for v in (0.1, 3, 0, float("inf"), True, "1")]
    [True, True, False, False, False, False]
    """
    return (
        not isinstance(value, (bool, np.bool_))
        and isinstance(value, numbers.Real)
        and 0 < value < math.inf
    )


def check_training_params(estimator, activations, rules, *, rule_defaults=False) -> None:
    """Check ``activation``, ``rule``, ``optimizer``, ``lr``, ``seed`` and ``device`` of any of
    the estimators, with a ``ValueError`` naming the estimator, the parameter and its value.
    ``rules``: the rule names this estimator can train with; ``rule_defaults``: whether
    ``activation`` and ``lr`` may be ``None`` (the rule's own, see :func:`rule_default`)."""
    name = type(estimator).__name__
    none_ok = rule_defaults and estimator.activation is None
    if not none_ok and estimator.activation not in activations:
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
    if not (rule_defaults and lr is None) and not positive_number(lr):
        raise ValueError(f"{name}: lr must be a positive number, got {lr!r}.")
    seed = estimator.seed
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0
    ):
        raise ValueError(f"{name}: seed must be a non-negative int or None, got {seed!r}.")
    resolve_device(estimator.device)  # a clear ValueError now rather than at the first sample


def rule_default(estimator, param: str):
    """``estimator``'s ``param`` (``"activation"``, ``"lr"``, ``"hidden_lr_scale"`` or
    ``"readout_solver"``), or when
    it is ``None`` the ``default_<param>`` of its rule (see
    :class:`~tpsgd_stream.engine.rules.Rule`).

    Examples
    --------
    >>> from tpsgd_stream.models import TPSGDClassifier
    >>> rule_default(TPSGDClassifier(rule="drtp"), "activation")
    'tanh'
    >>> rule_default(TPSGDClassifier(rule="drtp", activation="relu"), "activation")
    'relu'
    """
    value = getattr(estimator, param)
    if value is not None:
        return value
    rule = RULES.aliases.get(estimator.rule, estimator.rule)  # (an old name warned already)
    return getattr(dict.__getitem__(RULES, rule), f"default_{param}")


def ramped_batch(n_batched: int, batch_size: int, ramp: int) -> int:
    """Samples of the next minibatch once ``n_batched`` samples went into earlier ones: 1 at the
    start, growing linearly to ``batch_size`` over the first ``ramp`` samples (``ramp=0``: always
    ``batch_size``).

    Early on a model learns most from each sample and updates are cheap to spend; later, a
    full minibatch buys speed. The size depends only on the samples already batched, so
    ``learn_one`` and ``learn_many`` take the same steps.

    Examples
    --------
    >>> [ramped_batch(n, 32, 1024) for n in (0, 31, 32, 512, 992, 5000)]
    [1, 1, 2, 17, 32, 32]
    >>> ramped_batch(0, 32, 0)
    32
    """
    if n_batched >= ramp:
        return batch_size
    return min(batch_size, 1 + n_batched * batch_size // ramp)


def old_defaults(state: dict) -> dict:
    """What a model saved or pickled before ``batch_ramp`` and ``torch_threads`` existed lacks:
    a fixed minibatch (as it was trained with), the thread scoping, and its counts."""
    return {
        "batch_ramp": 0,
        "torch_threads": "auto",
        "_n_batched": (state["_n_updates"] + state.get("_n_skipped", 0)) * state["batch_size"],
        "_batch_target": state["batch_size"],
        "_work": (None, 0),
    }


def skip_update(estimator, n_samples: int) -> int:
    """Warn that an update of ``n_samples`` samples was refused as non-finite; return the
    estimator's new count of skipped updates."""
    count = estimator.skipped_updates + 1
    warnings.warn(
        f"{type(estimator).__name__}: an update on {n_samples} sample(s) would have made a "
        f"weight or an optimizer state NaN or infinite (values too large for float32 "
        f"arithmetic); the model was left as it was and the samples dropped ({count} so far, "
        f"see skipped_updates). Rescale the inputs, e.g. with river.preprocessing.StandardScaler.",
        RuntimeWarning,
        stacklevel=4,
    )
    return count


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
    >>> model = TPSGDClassifier(hidden_layer_sizes=(4,), batch_size=2, batch_ramp=0, seed=0)
    >>> model.learn_one({"a": 1.0}, "x"); model._n_buffered   # buffered, no update yet
    1
    >>> model.learn_one({"b": 2.0}, "y"); model._n_updates, sorted(model._features)
    (1, ['a', 'b'])
    """

    _loss: str = "cross_entropy"
    # parameters of the estimators that take them; the others (and models pickled before
    # them) update every layer on the minibatch at one learning rate
    readout_per_sample: bool | int = False
    hidden_lr_scale: float = 1.0
    readout_solver: str = "optimizer"
    readout_forget: float = 1.0
    readout_margin: float | None = None
    # whether a least-squares readout learns by block updates once past its per-sample phase
    # (models made before: by the optimizer with the minibatch, as they were trained)
    _readout_blocks: bool = False

    # ------------------------------------------------------------------------ parameters
    def _check_params(self) -> None:
        name = type(self).__name__
        self._check_architecture()
        batch = self.batch_size
        if isinstance(batch, bool) or not (isinstance(batch, (int, np.integer)) and batch >= 1):
            raise ValueError(f"{name}: batch_size must be an int >= 1, got {batch!r}.")
        ramp = self.batch_ramp
        if isinstance(ramp, bool) or not (isinstance(ramp, (int, np.integer)) and ramp >= 0):
            raise ValueError(f"{name}: batch_ramp must be an int >= 0, got {ramp!r}.")
        check_threads(name, self.torch_threads)
        each = self.readout_per_sample
        if not isinstance(each, (bool, np.bool_)) and not (
            isinstance(each, (int, np.integer)) and each >= 0
        ):
            raise ValueError(
                f"{name}: readout_per_sample must be True, False or an int >= 0 (a number of "
                f"first samples), got {each!r}."
            )
        if self.readout_solver is not None and self.readout_solver not in READOUT_SOLVERS:
            raise ValueError(
                f"{name}: readout_solver must be one of {READOUT_SOLVERS} or None, got "
                f"{self.readout_solver!r}."
            )
        forget = self.readout_forget
        if not (positive_number(forget) and forget <= 1):
            raise ValueError(f"{name}: readout_forget must be in (0, 1], got {forget!r}.")
        margin = self.readout_margin
        if margin is not None and not positive_number(margin):
            raise ValueError(
                f"{name}: readout_margin must be a positive number or None, got {margin!r}."
            )
        scale = self.hidden_lr_scale
        if scale is not None and not positive_number(scale):
            raise ValueError(
                f"{name}: hidden_lr_scale must be a positive number or None, got {scale!r}."
            )
        if self.non_finite not in NON_FINITE:
            raise ValueError(
                f"{name}: non_finite must be one of {NON_FINITE}, got {self.non_finite!r}."
            )
        check_training_params(self, sorted(ACTIVATIONS), self._rules(), rule_defaults=True)

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

    def _reset(self) -> None:
        # seed=None draws a seed once, so that a model (and its pickle) is self-consistent
        self._seed = resolve_seed(self.seed)
        self._features = FeatureMap()  # feature name -> column
        self._net: Network | None = None
        self._buffer = np.zeros((self.batch_size, 0), dtype=np.float32)
        self._buffer_y = np.zeros(self.batch_size, dtype=self._target_dtype)
        self._n_buffered = 0
        self._n_updates = 0
        self._n_skipped = 0  # updates refused as non-finite (see skipped_updates)
        self._resume_batching(0)
        self._work = (None, 0)  # (input and output width, forward multiply-adds of one sample)
        self._train_layers: list[int] | None = None  # None: all; a drift wrapper may narrow it
        self._readout_blocks = True
        # float64 copies of the weights for prediction (Float64Forward): the hidden layers' and
        # the readout's apart, since the readout may change every sample; None until made
        self._hidden_pass = self._readout_pass = None
        self._hidden_stale = True  # whether the hidden copy lags the network
        self._readout_stale = False  # whether the readout's copy lags its float32 weights

    # ------------------------------------------------------------------------ public seam
    @property
    def network(self) -> Network | None:
        """The :class:`~tpsgd_stream.engine.network.Network` this estimator trains.

        ``None`` until the first sample is learned from. The estimator owns it: a wrapper may
        read it, train chosen layers with its ``train_step`` or reset layers, and must then
        call :meth:`invalidate_cache`, since predictions run on a copy of the weights.

        Examples
        --------
        >>> from tpsgd_stream.models import TPSGDClassifier
        >>> model = TPSGDClassifier(hidden_layer_sizes=(4,), seed=0)
        >>> model.network is None
        True
        >>> model.learn_one({"a": 1.0}, "x")
        >>> [type(layer).__name__ for layer in model.network.layers]
        ['Dense', 'Dense']
        """
        return self._net

    @property
    def n_trainable_layers(self) -> int:
        """Trainable layers of the network this estimator builds (hidden layers + output).

        Known from the parameters alone, before the network exists.

        Examples
        --------
        >>> from tpsgd_stream.models import TPSGDClassifier
        >>> TPSGDClassifier(hidden_layer_sizes=(8, 4)).n_trainable_layers
        3
        """
        return len(self.hidden_layer_sizes) + 1

    @property
    def n_inputs(self) -> int:
        """Columns of the network's input: the features known so far (0 before learning).

        Examples
        --------
        >>> from tpsgd_stream.models import TPSGDClassifier
        >>> model = TPSGDClassifier(seed=0)
        >>> model.learn_one({"a": 1.0, "b": 2.0}, True)
        >>> model.n_inputs
        2
        """
        return self._buffer.shape[1]

    @property
    def train_layers(self) -> tuple[int, ...] | None:
        """The trainable layers that learn (indices into ``network.layers``); ``None``: all."""
        return None if self._train_layers is None else tuple(self._train_layers)

    def train_only(self, layers: Iterable[int] | None) -> _TrainOnly:
        """Let only ``layers`` learn from now on (``None``: every trainable layer).

        The others keep their weights; a drift wrapper uses it to freeze an encoder. Used as
        a context manager, the previous choice comes back on exit.

        Parameters
        ----------
        layers
            Indices into ``network.layers`` of trainable layers (as
            ``network.trainable_indices``), or ``None``.

        Examples
        --------
        >>> from tpsgd_stream.models import TPSGDClassifier
        >>> model = TPSGDClassifier(hidden_layer_sizes=(4,), batch_size=1, seed=0)
        >>> model.learn_one({"a": 1.0}, "x")
        >>> first = model.network.layers[0].weight.clone()
        >>> with model.train_only([model.network.output_index]):
        ...     model.learn_one({"a": -1.0}, "y")
        >>> bool((model.network.layers[0].weight == first).all()), model.train_layers
        (True, None)
        """
        chosen = None if layers is None else [int(i) for i in layers]
        if chosen is not None and self._net is not None:
            unknown = sorted(set(chosen) - set(self._net.trainable_indices))
            if unknown:
                raise ValueError(
                    f"{type(self).__name__}: layers {unknown} are not trainable; expected "
                    f"indices among {self._net.trainable_indices}."
                )
        previous, self._train_layers = self._train_layers, chosen
        return _TrainOnly(self, previous)

    def invalidate_cache(self) -> None:
        """Drop the copy of the weights that prediction runs on; the next prediction makes a
        fresh one. Call it after changing the network's weights outside ``learn_one``.

        Examples
        --------
        >>> import torch
        >>> from tpsgd_stream.models import TPSGDRegressor
        >>> model = TPSGDRegressor(hidden_layer_sizes=(4,), seed=0)
        >>> model.learn_one({"a": 1.0}, 2.0)
        >>> model.predict_one({"a": 1.0}) != 2.5
        True
        >>> output = model.network.layers[-1]
        >>> with torch.no_grad():  # 0.5 standard deviations above the mean (2.0)
        ...     _ = output.weight.zero_(), output.bias.fill_(0.5)
        >>> model.invalidate_cache()
        >>> model.predict_one({"a": 1.0})
        2.5
        """
        self._hidden_stale = True
        self._readout_pass = None

    def network_inputs(self, xs: Iterable[dict]) -> torch.Tensor:
        """The network's input for the samples ``xs``, as ``learn_one`` would feed it.

        Known features go to their columns, missing ones are 0 and unknown ones are ignored;
        the rows are float32, on the network's device, shaped as the network expects (an
        image estimator gives ``(n, channels, height, width)``). ``ValueError`` before the
        network exists.

        Examples
        --------
        >>> from tpsgd_stream.models import TPSGDClassifier
        >>> model = TPSGDClassifier(seed=0)
        >>> model.learn_one({"a": 1.0, "b": 2.0}, True)
        >>> model.network_inputs([{"b": 3.0}, {"a": 1.0, "z": 9.0}])
        tensor([[0., 3.],
                [1., 0.]])
        """
        if self._net is None:
            raise ValueError(
                f"{type(self).__name__} has no network yet: it is built on the first sample "
                f"learned from."
            )
        rows = [self._row(x) for x in xs]
        rows = np.stack(rows) if rows else np.zeros((0, self.n_inputs))
        return self._inputs(torch.from_numpy(rows.astype(np.float32)).to(self._net.device))

    # --------------------------------------------------------------------- task hooks
    _target_dtype = np.int64

    @property
    def _n_outputs(self) -> int:
        raise NotImplementedError

    def _targets(self, y: np.ndarray) -> torch.Tensor:
        raise NotImplementedError

    def _target_rows(self, y: np.ndarray) -> np.ndarray:
        """``_targets(y)`` as a float32 numpy array."""
        return self._targets(y).cpu().numpy()

    def _target_row(self, row: int) -> np.ndarray:
        """The float32 target of buffered row ``row`` (read, never written)."""
        return self._target_rows(self._buffer_y[row : row + 1])[0]

    # --------------------------------------------------------------------------- network
    def _training_kwargs(self) -> dict:
        """The network's activation, rules, loss, optimizer, learning rate, seed and device."""
        return dict(
            activation=rule_default(self, "activation"),
            rule=self.rule,
            loss=self._loss,
            optimizer=self.optimizer,
            lr=rule_default(self, "lr"),
            seed=self._seed,
            device=self.device,
        )

    def _build(self, n_inputs: int) -> None:
        """Create the network on the first sample learned; its features get the usual init."""
        n_inputs = max(n_inputs, 1)  # a first sample without features still gets a network
        self._net = Network.mlp(
            n_inputs, self.hidden_layer_sizes, max(self._n_outputs, 1), **self._training_kwargs()
        )
        self._scale_hidden_lr()
        self._buffer = np.zeros((self.batch_size, n_inputs), dtype=np.float32)

    def _scale_hidden_lr(self) -> None:
        """Multiply the learning rate of every trainable layer below the output by
        ``hidden_lr_scale`` (``None``: the rule's ``default_hidden_lr_scale``; the output layer
        keeps ``lr``); not under a rule that trains the
        output layer itself (``forward_grad``, ``bitflip``: one rate, as they were tuned)."""
        scale = rule_default(self, "hidden_lr_scale")
        if scale == 1.0 or self._rule_trains_output():
            return
        net = self._net
        for index in self._hidden_indices():
            for group in net.optimizers[index].param_groups:
                group["lr"] *= scale

    def _rule_trains_output(self) -> bool:
        """Whether the rule updates the output layer its own way (its ``trains_output``)."""
        rule = RULES.aliases.get(self.rule, self.rule)  # (an old name warned already)
        return dict.__getitem__(RULES, rule).trains_output

    @property
    def _readout_each_sample(self) -> bool:
        """Whether the output layer learns from each sample of the minibatch being filled:
        ``readout_per_sample`` (``True``: always; an int: while fewer samples than that have
        been taken by updates, so a minibatch is never split), unless the rule trains the
        output layer itself (it then learns with the minibatch)."""
        each = self.readout_per_sample
        if not each or (each is not True and self._n_batched >= each):
            return False
        return not self._rule_trains_output()

    def _hidden_indices(self) -> list[int]:
        """The trainable layers below the output layer."""
        return [i for i in self._net.trainable_indices if i != self._net.output_index]

    def _add_features(self, names) -> None:
        """Give new feature names a column; grow the network's input when needed."""
        features = self._features
        features.add(names, type(self).__name__)  # sorted: columns never depend on key order
        if self._net is None:
            self._build(len(features))
        grow = len(features) - self.n_inputs
        if grow > 0:
            self._net.grow_inputs(grow)
            pad = np.zeros((self.batch_size, grow), dtype=np.float32)
            self._buffer = np.concatenate([self._buffer, pad], axis=1)
            self.invalidate_cache()

    def _learn_columns_of(self, keys: tuple) -> tuple[np.ndarray, np.ndarray | None]:
        """Columns of ``keys`` (a dict's keys or a frame's columns); unknown keys become new
        features. The second item, a mask of the keys that have a column, is ``None`` here
        (every key has one) and exists for estimators of a fixed input, which ignore new keys.
        """
        columns = None if self._net is None else self._features.columns(keys)
        if columns is None:
            self._add_features(keys)
            columns = self._features.columns(keys)
        return columns, None

    def _push(self, columns: np.ndarray, values: np.ndarray, y) -> None:
        """Buffer one sample (already validated and mapped to distinct ``columns``); update when
        the buffer is full."""
        row = self._buffer[self._n_buffered]
        if len(columns) < len(row):  # (a dict's keys are distinct: they cover the row or not)
            row[:] = 0.0
        row[columns] = values.astype(np.float32)  # cast first: a same-type scatter is faster
        self._buffer_y[self._n_buffered] = y
        if self._readout_each_sample and not self._learn_readout(self._n_buffered):
            return  # (refused: the sample is dropped, as a refused minibatch's samples are)
        self._n_buffered += 1
        if self._n_buffered >= self._batch_target:
            self._update()

    def _update(self) -> None:
        n = self._n_buffered
        self._n_buffered = 0  # (a batch that fails is dropped: it never jams the buffer)
        self._resume_batching(self._n_batched + n)
        blocks = self._readout_by_blocks()
        if blocks:
            blocks = self._learn_readout_block(n)
            if blocks is False:
                self._n_skipped = skip_update(self, n)
                return
        layers = self._minibatch_layers(readout_done=bool(blocks))
        if layers == []:  # (the readout learned from each sample already, the rest is frozen)
            return
        x = self._inputs(torch.from_numpy(self._buffer[:n]).to(self._net.device))
        try:
            with intra_op_threads(threads_for(self.torch_threads, n * self._sample_work(x))):
                self._net.train_step(
                    x,
                    self._targets(self._buffer_y[:n]),
                    layers=layers,
                    check_finite=False,  # (every buffered row was checked)
                )
        except NonFiniteUpdateError:
            self._n_skipped = skip_update(self, n)
            return
        self._n_updates += 1
        self.invalidate_cache()

    def _minibatch_layers(self, readout_done: bool = False) -> list[int] | None:
        """The layers a minibatch update trains (``None``: all): without the output layer when
        it learns from each sample instead (``readout_per_sample``) or learned from the
        minibatch already (``readout_done``)."""
        if not (self._readout_each_sample or readout_done):
            return self._train_layers
        hidden = self._hidden_indices()
        if self._train_layers is None:
            return hidden
        return [i for i in self._train_layers if i in hidden]

    def _least_squares_readout(self) -> bool:
        """Whether the output layer is solved by least squares: while it learns from each
        sample, and then by blocks (models made since the block readout), unless the rule
        trains it its own way."""
        return (
            (self._readout_each_sample or self._readout_blocks)
            and rule_default(self, "readout_solver") == "rls"
            and not self._rule_trains_output()
        )

    def _readout_by_blocks(self) -> bool:
        """Whether this minibatch update solves the output layer by least squares on the
        minibatch (past the per-sample phase, the output layer among those trained)."""
        return (
            not self._readout_each_sample
            and self._least_squares_readout()
            and (self._train_layers is None or self._net.output_index in self._train_layers)
        )

    def _learn_readout_block(self, n: int) -> bool | None:
        """The output layer's least-squares update on the first ``n`` buffered rows, on their
        last hidden activations before this minibatch's hidden update
        (:func:`~tpsgd_stream.engine.least_squares.rls_block_step`); ``False``: refused as
        non-finite; ``None``: not a plain float32 readout on the CPU (the minibatch's torch
        step then trains it)."""
        hidden = self._hidden_outputs(self._buffer[:n].astype(np.float64))
        done = rls_block_step(
            self._net,
            hidden,
            self._target_rows(self._buffer_y[:n]),
            forget=self.readout_forget,
            margin=self.readout_margin,
        )
        if done:
            self._readout_stale = True
        return done

    def _learn_readout(self, row: int) -> bool:
        """One update of the output layer alone on buffered row ``row``, whose last hidden
        activation (from the current weights) is its input; ``False`` when the update was
        refused because it would have made the readout non-finite (it warns and counts, as a
        refused minibatch does).

        The step runs on the layer's memory where it can: recursive least squares
        (:func:`~tpsgd_stream.engine.least_squares.rls_step`, ``readout_solver="rls"``) or the
        layer's optimizer on the loss (the gradient in numpy, one fused Adam call:
        :func:`~tpsgd_stream.engine.readout.readout_step`); else as a torch ``train_step`` of
        the output layer (the optimizer's step).
        """
        net = self._net
        if self._train_layers is not None and net.output_index not in self._train_layers:
            return True
        hidden = self._hidden_outputs(self._buffer[row].astype(np.float64))
        if rule_default(self, "readout_solver") == "rls":
            done = rls_step(
                net,
                hidden,
                self._target_row(row),
                forget=self.readout_forget,
                margin=self.readout_margin,
            )
        else:
            done = readout_step(net, hidden.astype(np.float32), self._target_row(row))
        if done is None:  # (not a plain float32 readout on the CPU: a torch step)
            hidden = hidden.astype(np.float32)
            label = self._buffer_y[row : row + 1]
            done = self._readout_train_step(torch.from_numpy(hidden), self._targets(label))
            self._readout_pass = None  # (its weights may live on another device: copy anew)
        if not done:
            self._n_skipped = skip_update(self, 1)
            return False
        self._readout_stale = True
        return True

    def _readout_train_step(self, hidden: torch.Tensor, target: torch.Tensor) -> bool:
        """The output layer's torch step on one sample; ``False`` when it was refused."""
        net = self._net
        try:
            with intra_op_threads(threads_for(self.torch_threads, 0)):  # (one row: small work)
                net.train_step(
                    hidden.to(net.device).reshape(1, -1),
                    target,
                    layers=(net.output_index,),
                    start=net.output_index,
                    check_finite=False,  # (a checked row through finite weights)
                )
        except NonFiniteUpdateError:
            return False
        return True

    def _resume_batching(self, n_batched: int) -> None:
        """Count ``n_batched`` samples as taken by updates; size the next minibatch."""
        self._n_batched = n_batched  # (see batch_ramp)
        self._batch_target = ramped_batch(n_batched, self.batch_size, self.batch_ramp)

    def _sample_work(self, x: torch.Tensor) -> int:
        """Forward multiply-adds of one sample of ``x`` (for the ``torch_threads`` rule),
        counted again only when the network's input or output width has changed."""
        if self.torch_threads != "auto":
            return 0
        key = (self.n_inputs, self._net.n_outputs)
        if self._work[0] != key:
            self._work = (key, sum(self._net.multiply_adds(x[:1])))
        return self._work[1]

    @property
    def current_batch_size(self) -> int:
        """Samples the next update takes: grows from 1 to ``batch_size`` over the first
        ``batch_ramp`` samples (see :func:`ramped_batch`), then stays at ``batch_size``.

        Examples
        --------
        >>> from tpsgd_stream.models import TPSGDClassifier
        >>> model = TPSGDClassifier(batch_size=4, batch_ramp=8, seed=0)
        >>> sizes = []
        >>> for i in range(12):
        ...     sizes.append(model.current_batch_size)
        ...     model.learn_one({"a": float(i)}, i % 2)
        >>> sizes  # one update of 1, then of 1, 2, 2, 3 and 4 samples: 13 in all
        [1, 1, 2, 2, 3, 3, 3, 4, 4, 4, 4, 4]
        """
        return self._batch_target

    @property
    def skipped_updates(self) -> int:
        """Updates refused because they would have made a weight or an optimizer state NaN or
        infinite (finite inputs can overflow float32 inside an update); each one left the
        model as it was, dropped its minibatch and warned (``RuntimeWarning``)."""
        return getattr(self, "_n_skipped", 0)  # (pickles made before the counter: 0)

    def _inputs(self, rows: torch.Tensor) -> torch.Tensor:
        """The network's input for float32 ``rows`` of the buffer's width."""
        shape = self._input_shape()
        return rows if shape is None else rows.reshape(len(rows), *shape)

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
            take = max(min(self._batch_target - self._n_buffered, len(values) - start), 0)
            if self._readout_each_sample:  # row by row: each label is registered, and the
                take = min(take, 1)  # readout learns from it, before the next row, as learn_one
            stop = start + take
            targets = register(y[start:stop])
            block = self._buffer[self._n_buffered : self._n_buffered + take]
            block[:] = 0.0  # (the frame may lack some features: always clear)
            block[:, columns] = values[start:stop]
            self._buffer_y[self._n_buffered : self._n_buffered + take] = targets
            start = stop
            if self._readout_each_sample and not self._learn_readout(self._n_buffered):
                continue  # (refused: the row is dropped)
            self._n_buffered += take
            if self._n_buffered >= self._batch_target:
                self._update()

    # ---------------------------------------------------------------------- prediction
    def _input_shape(self) -> tuple[int, ...] | None:
        """The shape of one sample as the network's first layer takes it (``None``: a row)."""
        return None

    def _forward(self, rows: np.ndarray) -> np.ndarray:
        """Outputs of the network for float64 ``rows`` (``(width,)`` or ``(n, width)``), from
        a float64 copy of the weights made on the first prediction after each change (the
        hidden layers' copy refreshed in place when their shapes allow)."""
        if rows.ndim == 2 and not len(rows):
            return np.zeros((0, self._net.n_outputs))
        hidden = self._hidden_outputs(rows)
        weight, bias = self._readout_weights()
        out = hidden @ weight
        out += bias
        return out

    def _readout_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """The output layer's transposed weight, as a float64 copy, and its bias (the output
        layer is ``Dense``, its activation the identity): made after each change of shape or
        device, copied again in place after the per-sample steps, which write the float32
        weights on the CPU that the copy was made from."""
        if self._readout_pass is None:
            readout = self._net.layers[self._net.output_index]
            weight = readout.weight.detach().cpu().numpy()
            bias = readout.bias.detach().cpu().numpy()
            self._readout_pass = (weight.T.astype(np.float64), bias, weight)
        elif self._readout_stale:
            np.copyto(self._readout_pass[0], self._readout_pass[2].T)
        self._readout_stale = False
        return self._readout_pass[:2]

    def _hidden_outputs(self, rows: np.ndarray) -> np.ndarray:
        """The output layer's inputs for float64 ``rows``: the last hidden layer's outputs,
        from a float64 copy of the hidden layers' weights refreshed after each change (after a
        small update, copying into the arrays already made costs a few times less than a new
        snapshot)."""
        hidden = self._hidden_pass
        if hidden is None or self._hidden_stale:
            layers = self._net.layers[: self._net.output_index]
            if hidden is None or not hidden.refresh(layers):
                hidden = self._hidden_pass = Float64Forward(layers, self._input_shape())
            self._hidden_stale = False
        return hidden(rows)

    def _row(self, x: dict) -> np.ndarray:
        """One input row for prediction: unknown features are ignored, missing ones are 0."""
        values = parse_values(x, type(self).__name__, self.non_finite)
        return self._features.scatter(tuple(x), values, np.zeros(self.n_inputs))

    def _rows(self, X) -> np.ndarray:
        values = check_frame(X, type(self).__name__, self.non_finite)
        keys = tuple(X.columns.tolist())
        return self._features.scatter(keys, values, np.zeros((len(X), self.n_inputs)))

    # --------------------------------------------------------------- memory, pickling
    def _tensor_bytes(self) -> int:
        """Bytes held in torch tensors, which river's memory walker cannot see into."""
        if self._net is None:
            return 0
        tensors = list(self._net.parameters())
        for optimizer in self._net.optimizers.values():
            for state in optimizer.state.values():
                tensors += [v for v in state.values() if torch.is_tensor(v)]
        held = sum(t.numel() * t.element_size() for t in tensors)
        projections = map(self._net.projection, self._net.trainable_indices)
        return held + sum(p.cached_bytes for p in projections if p is not None)

    @property
    def _raw_memory_usage(self) -> int:
        return super()._raw_memory_usage + self._tensor_bytes()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_hidden_pass"] = state["_readout_pass"] = None  # caches, rebuilt on demand
        return state

    def __setstate__(self, state: dict) -> None:
        if "batch_ramp" not in state:  # pickled before the ramp and the thread scoping:
            state = {**state, **old_defaults(state)}  # it goes on as it was trained
        state.pop("_weights", None)  # (the one prediction cache of older pickles)
        state.pop("_stale", None)
        self.__dict__.update(state)
        self._hidden_pass = self._readout_pass = None
        self._hidden_stale = True
        self._readout_stale = False

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


class _TrainOnly:
    """What :meth:`TPSGDEstimator.train_only` returns: on leaving a ``with`` block, the
    estimator's previous choice of learning layers comes back."""

    def __init__(self, estimator: TPSGDEstimator, previous: list[int] | None):
        self._estimator, self._previous = estimator, previous

    def __enter__(self) -> TPSGDEstimator:
        return self._estimator

    def __exit__(self, *exc_info) -> None:
        self._estimator._train_layers = self._previous
