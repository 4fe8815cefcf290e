"""``TPSGDSequenceClassifier``: one whole sequence per ``learn_one``, learned in padded
minibatches of ``batch_size`` sequences: by default through fixed random convolutional kernels
and a linear readout trained by a local rule; or by Elman layers, or by Conv1d layers over time,
trained with local rules."""

from __future__ import annotations

import copy
import math

import numpy as np
import torch

from ..engine.kernel_readout import KernelReadout
from ..engine.recurrent import RecurrentNetwork
from ..engine.rules import DEFAULT_RULE, RULES
from . import _persistence
from ._arrays import SequenceArrays
from ._conv_encoder import ConvEncoder
from ._inputs import check_label, in_float32_range
from ._sequence_base import _positive_int, _SequenceBase, scoped_threads
from .base import positive_number

__all__ = ["TPSGDSequenceClassifier", "ENCODERS"]

ENCODERS = ("random_kernels", "elman", "conv")
_DEFAULTS = {  # encoder -> (batch_size, lr) when left as None
    "random_kernels": (8, 1.0),
    "elman": (32, 3e-3),
    "conv": (16, 1e-2),
}
_CONV_HIDDEN_LR_SCALE = 0.1  # the conv layers' share of lr under a local rule (None's value)


class TPSGDSequenceClassifier(SequenceArrays, _SequenceBase):
    """Classifies whole sequences (sensor windows): random kernels or Elman layers, local rules.

    ``learn_one(x, y)`` takes one sequence ``x``: a numpy array ``(T, d)`` (column ``j`` is the
    feature named ``j``) or a list of ``T`` dicts, one per time step. Sequences are buffered
    and learned ``batch_size`` at a time, padded to the longest one (each keeps its own length).
    ``learn_many(X, y)``, ``predict_many(X)`` and ``predict_proba_many(X)`` take a 3-D array
    ``(cases, channels, time steps)`` as aeon and the UCR/UEA archive store them, or a list of
    ``(T, d)`` arrays of any lengths.

    Parameters
    ----------
    encoder
        ``"random_kernels"`` (default): a fixed MiniRocket-style transform
        (:mod:`tpsgd_stream.engine.random_kernels`: dilated kernels of length 9, never trained,
        regenerated from the seed, their biases set by the first minibatch), its features
        standardised online and read out by a normalised least-squares delta rule
        (:class:`~tpsgd_stream.engine.kernel_readout.KernelReadout`). ``"elman"``: Elman layers
        learning by a local rule at every time step, read out from the last state. ``"conv"``:
        a :meth:`Network.cnn1d <tpsgd_stream.engine.network.Network.cnn1d>` over the
        sequence's channels (``conv_channels`` blocks of Conv1d with ``"same"`` padding, each
        trained by ``rule``, global temporal ``pool`` and a linear readout trained on the true
        loss); a minibatch is zero-padded to its longest sequence, and the padded steps are
        read as zeros. See BENCHMARKS.md ("Sensor time series") for how they compare.
    n_features
        Random-kernel features (rounded down to a multiple of 84; ``"random_kernels"`` only).
    hidden_size, num_layers, bidirectional
        Units per recurrent layer, stacked layers, and a backward-reading twin per layer
        (``"elman"`` only).
    conv_channels, kernel_size, dilation, pool
        Filters of each Conv1d layer, taps per filter, the spacing of the taps (one per
        layer) and the global temporal pooling (``"max"`` or ``"avg"``) of the ``"conv"``
        encoder: by default three layers of 32 filters of 5 taps, dilations 1, 2 and 4 (a
        receptive field of 29 steps) and max pooling, sized for sensor windows of tens to a
        few hundred steps.
    rule
        Rule of the recurrent layers (see :mod:`tpsgd_stream.engine.recurrent`); ``"bp"`` is BPTT.
        With ``"random_kernels"`` there is no hidden layer: any local rule trains the readout by
        the delta rule, and ``"bp"`` takes the same step from autograd. With ``"elman"`` the
        default, ``"tpsgd_l2_gated"``, is target projection as every entry point's (each
        state pulled towards a fixed random ``y* B_t``, a sample stopped once its state is
        nearest its class's target); ``"fixed_readout_ce"`` (local cross-entropy through a
        fixed random readout) with tanh cells and truncated local credit was the best local
        rule of the row-wise MNIST sweep (BENCHMARKS.md, "Recurrent tables"). With
        ``"conv"`` any rule of :data:`~tpsgd_stream.engine.rules.RULES` trains the Conv1d
        layers. The default stays ``"tpsgd_l2_gated"`` (``rule`` has one default for every
        encoder), but pass ``rule="local_head"`` with this encoder: each layer's own learned
        linear head, here on its map average-pooled to 16 steps per channel, is its accurate
        local rule (MNIST-1D through this estimator, 10 epochs of ``learn_many``: 0.949
        against 0.955 for ``"bp"`` and 0.394 for ``"tpsgd_l2_gated"``).
    activation
        (``"elman"`` only; the ``"conv"`` encoder's layers are leaky ReLUs.)
        ``"tanh"`` or ``"sigmoid"`` (the paper's cell; it learned markedly slower in our sweep,
        see BENCHMARKS.md, "Recurrent tables").
    credit_steps
        Truncated local credit: each step's local error also reaches the ``credit_steps - 1``
        steps before it through the recurrent weights (``1``: the paper's rules).
    readout_hidden
        ``None`` for a linear readout on the last state, ``(n,)`` for one hidden layer
        (``"elman"`` only).
    optimizer, lr, batch_size, seed, device
        As :class:`~tpsgd_stream.models.TPSGDClassifier` (``batch_size`` counts sequences;
        ``optimizer`` is the Elman layers'). ``None``: 8 sequences and a step of ``1.0`` (the
        fraction of the largest stable step of the normalised delta rule) with
        ``"random_kernels"``; 32 and ``3e-3`` with ``"elman"``; 16 and ``1e-2`` with
        ``"conv"`` (on MNIST-1D, 10 epochs, ``"local_head"`` at one rate reached 0.949 with
        ``1e-2`` and 0.854 with ``1e-3``; ``"bp"`` 0.950 and 0.955). The random-kernel encoder
        runs on the CPU whatever ``device`` says.
    hidden_lr_scale
        (``"conv"`` only.) The Conv1d layers' weights learn at ``lr * hidden_lr_scale``; the
        readout and the local heads at ``lr``. ``None``: ``0.1`` under a local rule, ``1.0``
        under ``"bp"``. At one rate the local heads keep reshaping the features under the
        readout and its accuracy wavers and falls (EEG five-class, ``"local_head"``, seed 1:
        test 0.655 after 10 epochs, 0.583 after 50); at ``0.1`` it keeps rising, as
        ``"bp"`` does (3 seeds after 1 / 10 / 50 epochs: 0.643 / 0.699 / 0.727, ``"bp"``
        0.653 / 0.691 / 0.723), though it starts slower on MNIST-1D (0.646 after one epoch,
        0.731 at ``1.0``; 0.962 after 50, ``"bp"`` 0.963).
    feature_cache_mb
        Megabytes of transformed sequences the ``"random_kernels"`` encoder keeps, keyed by
        their values (:class:`~tpsgd_stream.engine.feature_cache.FeatureCache`): a sequence
        learned again in a later epoch, or learned after it was predicted, skips the
        transform, and its features are the same to the bit. Each kept sequence costs about
        ``n_features`` bytes (two per feature past 255 time steps, four past 32,767), the
        least recently used go first, and the cache is never saved nor pickled. ``0`` turns
        it off (a stream that never repeats a sequence gains nothing from it).
    torch_threads
        ``"auto"`` (the default): the estimator's torch work runs on one thread, as a stream's
        tensors are small, and ``torch.get_num_threads()`` is back to the caller's setting
        after each call; ``None``: the process's setting; an int: that many threads.

    Notes
    -----
    Prediction runs the model on the current weights and never changes it; with
    ``"random_kernels"`` the class scores are least-squares outputs (their softmax ranks the
    classes but is not calibrated), and before the first minibatch every class is equally
    likely. The transform reads the channels present in the first minibatch; channels that
    appear later are ignored by it. Labels
    may be any hashable value; a new one adds a readout unit with zero weights (the logits of
    earlier classes do not change) and a row to every fixed ``B_t``. A sequence that is not a
    2-D array or a list of dicts, is empty, has another number of columns than the arrays
    learned so far, or holds NaN/inf is rejected with an error before anything changes. The
    ``"conv"`` encoder's channel count is fixed by the first sequence learned: learning a
    sequence with more features raises a ``ValueError`` before anything changes (at prediction
    unknown features are ignored, as everywhere). Its predictions run each distinct length
    apart, so that they do not depend on which other sequences are predicted with it.

    Examples
    --------
    >>> import numpy as np
    >>> from tpsgd_stream.models import TPSGDSequenceClassifier
    >>> rng = np.random.default_rng(0)
    >>> model = TPSGDSequenceClassifier(
    ...     encoder="elman", hidden_size=16, batch_size=8, lr=3e-2, seed=0
    ... )
    >>> correct = 0
    >>> for i in range(400):
    ...     y = int(rng.integers(2))                      # the sign of the first step
    ...     x = rng.normal(size=(5, 2)) * 0.3
    ...     x[0, 0] = 1.0 if y else -1.0
    ...     correct += i >= 300 and model.predict_one(x) == y
    ...     model.learn_one(x, y)
    >>> print(f"Accuracy on the last 100: {correct}%")
    Accuracy on the last 100: 100%

    With the default encoder, sensor windows in aeon's layout ``(cases, channels, T)``; the
    label says whether a bump occurs, anywhere:

    >>> X = rng.normal(size=(200, 1, 100))
    >>> y = rng.integers(2, size=200)
    >>> for i in np.flatnonzero(y):
    ...     start = rng.integers(90)
    ...     X[i, 0, start : start + 10] += 3.0
    >>> model = TPSGDSequenceClassifier(n_features=840, seed=0)
    >>> for epoch in range(3):
    ...     model.learn_many(X[:150], y[:150])
    >>> accuracy = (model.predict_many(X[150:]).to_numpy() == y[150:]).mean()
    >>> print(f"Accuracy: {accuracy:.0%}")
    Accuracy: 100%
    """

    _int_params = (*_SequenceBase._int_params, "num_layers", "n_features", "kernel_size")

    def __init__(
        self,
        encoder: str = "random_kernels",
        n_features: int = 9996,
        hidden_size: int = 128,
        num_layers: int = 1,
        bidirectional: bool = False,
        rule: str = DEFAULT_RULE,
        activation: str = "tanh",
        credit_steps: int = 8,
        readout_hidden: tuple[int, ...] | None = None,
        conv_channels: tuple[int, ...] = (32, 32, 32),
        kernel_size: int = 5,
        dilation: tuple[int, ...] = (1, 2, 4),
        pool: str = "max",
        optimizer: str = "adam",
        lr: float | None = None,
        hidden_lr_scale: float | None = None,
        batch_size: int | None = None,
        seed: int | None = None,
        device: str = "cpu",
        feature_cache_mb: float = 128.0,
        torch_threads: int | str | None = "auto",
    ):
        self.encoder = encoder
        self.n_features = n_features
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        if not isinstance(bidirectional, bool):
            raise ValueError(
                f"{type(self).__name__}: bidirectional must be True or False, got "
                f"{bidirectional!r}."
            )
        self.rule = rule
        self.activation = activation
        self.credit_steps = credit_steps
        self.readout_hidden = readout_hidden
        self.conv_channels = conv_channels
        self.kernel_size = kernel_size
        self.dilation = dilation
        self.pool = pool
        self.optimizer = optimizer
        self.lr = lr
        self.hidden_lr_scale = hidden_lr_scale
        self.batch_size = batch_size
        self.seed = seed
        self.device = device
        self.feature_cache_mb = feature_cache_mb
        self.torch_threads = torch_threads
        self._check_params()
        self._reset()

    def _check_params(self) -> None:
        name = type(self).__name__
        if self.encoder not in ENCODERS:
            raise ValueError(
                f"{name}: unknown encoder {self.encoder!r}; expected one of {ENCODERS}."
            )
        if self.encoder == "random_kernels" and self.readout_hidden is not None:
            raise ValueError(
                f"{name}: readout_hidden is for encoder='elman'; the random-kernel encoder has a "
                f"linear readout, got readout_hidden={self.readout_hidden!r}."
            )
        if self.encoder == "conv" and self.readout_hidden is not None:
            raise ValueError(
                f"{name}: readout_hidden is for encoder='elman'; the conv encoder has a linear "
                f"readout, got readout_hidden={self.readout_hidden!r}."
            )
        for param in ("conv_channels", "dilation"):
            value = getattr(self, param)
            if not (
                isinstance(value, tuple) and value and all(_positive_int("", v) for v in value)
            ):
                raise ValueError(
                    f"{name}: {param} must be a non-empty tuple of positive ints, got {value!r}."
                )
        if len(self.dilation) != len(self.conv_channels):
            raise ValueError(
                f"{name}: dilation must give one spacing per Conv1d layer "
                f"({len(self.conv_channels)}), got {self.dilation!r}."
            )
        scale = self.hidden_lr_scale
        if scale is not None and (self.encoder != "conv" or not positive_number(scale)):
            raise ValueError(
                f"{name}: hidden_lr_scale must be None, or a positive number with "
                f"encoder='conv', got {scale!r} with encoder={self.encoder!r}."
            )
        if self.pool not in ("max", "avg"):
            raise ValueError(f"{name}: pool must be 'max' or 'avg', got {self.pool!r}.")
        if not _positive_int("n_features", self.n_features) or self.n_features < 84:
            raise ValueError(f"{name}: n_features must be an int >= 84, got {self.n_features!r}.")
        cache = self.feature_cache_mb
        number = isinstance(cache, (int, float)) and not isinstance(cache, bool)
        if not (number and 0 <= cache < math.inf):
            raise ValueError(
                f"{name}: feature_cache_mb must be a number >= 0 (megabytes), got {cache!r}."
            )
        resolved = copy.copy(self)  # the checks read the values None stands for
        resolved.batch_size, resolved.lr = self._batch_size, self._lr
        _SequenceBase._check_params(resolved)

    @property
    def _batch_size(self) -> int:
        return _DEFAULTS[self.encoder][0] if self.batch_size is None else self.batch_size

    @property
    def _lr(self) -> float:
        return _DEFAULTS[self.encoder][1] if self.lr is None else self.lr

    @property
    def _hidden_lr_scale(self) -> float:
        """The conv layers' share of ``lr``: ``hidden_lr_scale``, or ``None``'s default."""
        if self.hidden_lr_scale is not None:
            return self.hidden_lr_scale
        return 1.0 if self.rule == "bp" else _CONV_HIDDEN_LR_SCALE

    def _rules(self) -> tuple[str, ...]:
        """Rule names of the Conv1d layers with ``"conv"``, else of the recurrent cells."""
        return tuple(sorted(RULES)) if self.encoder == "conv" else super()._rules()

    def _optimizers(self) -> list:
        if isinstance(self._net, ConvEncoder):
            return self._net.optimizers
        return super()._optimizers()

    def _reset(self) -> None:
        super()._reset()
        self._buffer: list[tuple[list, np.ndarray, int]] = []  # (columns keys, values, label)
        self._array_width: int | None = None  # columns of the (T, d) arrays learned from

    def __setstate__(self, state: dict) -> None:
        if "_array_width" not in state:  # (pickles made before it: the int features' count)
            n = sum(isinstance(k, int) for k in state.get("_features", ()))
            state["_array_width"] = n or None
        state.setdefault("feature_cache_mb", 0.0)  # (pickles made before the cache: none)
        if state.get("encoder") == "conv":  # (pickles made before the scale: one rate)
            state.setdefault("hidden_lr_scale", 1.0)
        else:
            state.setdefault("hidden_lr_scale", None)
        super().__setstate__(state)

    @classmethod
    def _unit_test_params(cls):
        yield {"n_features": 168, "batch_size": 4}
        yield {"encoder": "elman", "hidden_size": 8, "batch_size": 4}
        yield {
            "encoder": "conv",
            "conv_channels": (4, 4),
            "dilation": (1, 2),
            "rule": "local_head",
            "batch_size": 4,
        }

    @classmethod
    def _upgrade_params(cls, params: dict) -> dict:
        """Files saved before the ``encoder`` parameter hold Elman models; conv models saved
        before ``hidden_lr_scale`` learn at one rate."""
        params = {"encoder": "elman", **params}
        if params["encoder"] == "conv":
            params.setdefault("hidden_lr_scale", 1.0)
        return params

    def _build(self, n_inputs: int) -> RecurrentNetwork | KernelReadout | ConvEncoder:
        if self.encoder == "conv":
            return ConvEncoder(
                max(n_inputs, 1),
                channels=self.conv_channels,
                kernel_size=self.kernel_size,
                dilation=self.dilation,
                pool=self.pool,
                rule=self.rule,
                optimizer=self.optimizer,
                lr=self._lr,
                hidden_lr_scale=self._hidden_lr_scale,
                seed=self._seed,
                device=self.device,
            )
        if self.encoder == "random_kernels":
            return KernelReadout(
                max(n_inputs, 1),
                n_features=self.n_features,
                seed=self._seed,
                lr=self._lr,
                rule="bp" if self.rule == "bp" else "lms",
                cache_bytes=int(self.feature_cache_mb * 2**20),
            )
        return self._network(
            n_inputs, num_layers=self.num_layers, bidirectional=bool(self.bidirectional)
        )

    # ------------------------------------------------------------------------- input
    def _sequence(self, x) -> tuple[list, np.ndarray]:
        """``(keys, values (T, n_keys))`` of a sequence, checked; raises before any change."""
        name = type(self).__name__
        if isinstance(x, np.ma.MaskedArray):
            if np.ma.is_masked(x):
                raise ValueError(
                    f"{name}: the sequence is a masked array with {int(np.ma.count_masked(x))} "
                    f"masked value(s); fill them first, e.g. x.filled(0.0), or impute them."
                )
            x = np.ma.getdata(x)
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
            width = self._array_width
            if width is not None and x.shape[1] != width:
                raise ValueError(
                    f"{name}: this model learned sequences of {width} features per step; "
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
            raise ValueError(f"{name}: the sequence is empty (0 time steps).")
        ok = in_float32_range(values)
        if not ok.all():
            steps = np.flatnonzero(~ok.all(axis=1)).tolist()
            raise ValueError(
                f"{name}: the sequence has NaN, infinite or beyond-float32 values at time "
                f"step(s) {steps[:10]}; impute or rescale them first."
            )
        return keys, values

    def _tensor(self, keys, values: np.ndarray, width: int) -> torch.Tensor:
        out = np.zeros((len(values), width), dtype=np.float32)
        return torch.from_numpy(self._features.scatter(tuple(keys), values, out))

    # ----------------------------------------------------------------------- learning
    def _check_sample(self, x, y) -> None:
        """Raise the error ``learn_one(x, y)`` would raise for bad input; change nothing."""
        check_label(y, type(self).__name__)
        self._check_width([self._sequence(x)[0]])

    def _check_width(self, key_lists) -> None:
        """With ``"conv"``: refuse (``ValueError``) sequences that, learned in turn, would add
        features beyond the channels the first one fixed; change nothing."""
        if self.encoder != "conv":
            return
        known = set(self._features)
        width = None if self._net is None else self._net.input_size
        for keys in key_lists:
            known.update(keys)
            if width is None:
                width = max(len(known), 1)
            elif len(known) > width:
                raise ValueError(
                    f"{type(self).__name__}: the conv encoder reads {width} feature(s) per "
                    f"step, fixed by the first sequence learned; this sequence would bring "
                    f"{len(known)}. Drop or merge the new features first."
                )

    def _check_input(self, x) -> None:
        """Raise the error ``predict_one(x)`` would raise for bad input."""
        self._sequence(x)

    @scoped_threads
    def learn_one(self, x, y) -> None:
        check_label(y, type(self).__name__)
        keys, values = self._sequence(x)
        self._check_width([keys])
        self._learn_checked(keys, values, y, from_array=isinstance(x, np.ndarray))

    def _learn_checked(self, keys, values: np.ndarray, y, *, from_array: bool) -> None:
        """Learn from a sequence already checked; ``from_array``: it came as a (T, d) array,
        whose width later arrays must then have."""
        self._add_features(keys)
        if from_array and self._array_width is None:
            self._array_width = values.shape[1]
        self._buffer.append((keys, values.astype(np.float32), self._register(y)))
        if len(self._buffer) >= self._batch_size:  # (>=: a failed update never wedges it)
            self._update()

    def _check_many(self, sequences: list, labels: list | None) -> list:
        """Every sequence (and label) checked before any is learned."""
        if labels is not None:
            for y in labels:
                check_label(y, type(self).__name__)
        checked = [self._sequence(x) for x in sequences]
        if labels is not None:
            self._check_width(keys for keys, _ in checked)
        return checked

    def _update(self) -> None:
        buffer, self._buffer = self._buffer, []  # (a batch that fails never jams the buffer)
        width = self._net.input_size
        lengths = torch.tensor([len(v) for _, v, _ in buffer])
        x = torch.zeros(len(buffer), int(lengths.max()), width)
        for i, (keys, values, _) in enumerate(buffer):
            x[i, : len(values)] = self._tensor(keys, values, width)
        y = torch.tensor([label for _, _, label in buffer])
        if self._guarded_step(len(buffer), self._net.train_step, x, self._net.one_hot(y), lengths):
            self._n_updates += 1

    # --------------------------------------------------------------------- prediction
    @scoped_threads
    def predict_proba_one(self, x) -> dict:
        keys, values = self._sequence(x)
        if not self._classes:
            return {}
        with torch.inference_mode():
            logits = self._net.forward(self._tensor(keys, values, self._net.input_size)[None])
        return self._proba(logits[0])

    def _proba_many(self, checked: list, chunk: int = 64) -> np.ndarray:
        """Class probabilities ``(n, n_classes)`` of checked sequences, ``chunk`` at a time."""
        if not self._classes:
            return np.zeros((len(checked), 0))
        rows: list = [None] * len(checked)
        width = self._net.input_size
        order = list(range(len(checked)))
        if isinstance(self._net, ConvEncoder):  # (padding changes its outputs: one length a run)
            order.sort(key=lambda i: len(checked[i][1]))
        runs = []
        for i in order:
            if (
                runs
                and len(runs[-1]) < chunk
                and not (
                    isinstance(self._net, ConvEncoder)
                    and len(checked[i][1]) != len(checked[runs[-1][0]][1])
                )
            ):
                runs[-1].append(i)
            else:
                runs.append([i])
        for run in runs:
            part = [checked[i] for i in run]
            lengths = torch.tensor([len(v) for _, v in part])
            x = torch.zeros(len(part), int(lengths.max()), width)
            for i, (keys, values) in enumerate(part):
                x[i, : len(values)] = self._tensor(keys, values, width)
            with torch.inference_mode():
                logits = self._net.forward(x, lengths)
            for i, row in zip(run, logits):
                rows[i] = list(self._proba(row).values())
        return np.array(rows)

    # ---------------------------------------------------------------------- persistence
    def _pending_state(self) -> dict:
        return {
            "buffer": [
                ([_persistence.encode(k) for k in keys], torch.from_numpy(v), int(label))
                for keys, v, label in self._buffer
            ],
            "array_width": self._array_width,
        }

    def _pending_labels(self) -> list[int]:
        return [label for _, _, label in self._buffer]

    def _set_pending_state(self, pending: list | dict) -> None:
        if isinstance(pending, list):  # (files written before the array width was kept)
            n = sum(isinstance(k, int) for k in self._features)
            pending = {"buffer": pending, "array_width": n or None}
        self._buffer = [
            ([_persistence.decode(k) for k in keys], v.numpy().copy(), int(label))
            for keys, v, label in pending["buffer"]
        ]
        width = pending["array_width"]
        if width is not None and (type(width) is not int or width < 0):
            raise ValueError(f"an array width of {width!r}")
        self._array_width = width
