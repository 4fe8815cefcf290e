"""``TPSGDSequenceClassifier``: one whole sequence per ``learn_one``, learned in padded
minibatches of ``batch_size`` sequences by Elman layers trained with local rules over time."""

from __future__ import annotations

import numpy as np
import torch

from ..engine.recurrent import RecurrentNetwork
from ..engine.rules import DEFAULT_RULE
from . import _persistence
from ._inputs import check_label, in_float32_range
from ._sequence_base import _SequenceBase

__all__ = ["TPSGDSequenceClassifier"]


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
        Rule of the recurrent layers (see :mod:`tpsgd_stream.engine.recurrent`); ``"bp"`` is BPTT.
        The default, ``"tpsgd_l2_gated"``, is target projection as every entry point's (each
        state pulled towards a fixed random ``y* B_t``, a sample stopped once its state is
        nearest its class's target); ``"fixed_readout_ce"`` (local cross-entropy through a
        fixed random readout) with tanh cells and truncated local credit was the best local
        rule of the row-wise MNIST sweep (BENCHMARKS.md, "Recurrent tables").
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
        rule: str = DEFAULT_RULE,
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
        if not isinstance(bidirectional, bool):
            raise ValueError(
                f"{type(self).__name__}: bidirectional must be True or False, got "
                f"{bidirectional!r}."
            )
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
        self._array_width: int | None = None  # columns of the (T, d) arrays learned from

    def __setstate__(self, state: dict) -> None:
        if "_array_width" not in state:  # (pickles made before it: the int features' count)
            n = sum(isinstance(k, int) for k in state["_features"])
            state["_array_width"] = n or None
        self.__dict__.update(state)

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
        self._sequence(x)

    def _check_input(self, x) -> None:
        """Raise the error ``predict_one(x)`` would raise for bad input."""
        self._sequence(x)

    def learn_one(self, x, y) -> None:
        check_label(y, type(self).__name__)
        keys, values = self._sequence(x)
        self._add_features(keys)
        if isinstance(x, np.ndarray) and self._array_width is None:
            self._array_width = values.shape[1]
        self._buffer.append((keys, values.astype(np.float32), self._register(y)))
        if len(self._buffer) >= self.batch_size:  # (>=: a failed update never wedges it)
            self._update()

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
    def predict_proba_one(self, x) -> dict:
        keys, values = self._sequence(x)
        if not self._classes:
            return {}
        with torch.inference_mode():
            logits = self._net.forward(self._tensor(keys, values, self._net.input_size)[None])
        return self._proba(logits[0])

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
