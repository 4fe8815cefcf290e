"""``TPSGDStreamingSequenceClassifier``: one time step of a sensor stream per ``learn_one``, a
label per step: by default random-kernel features of the last steps read out by a local rule,
or an Elman state carried across calls."""

from __future__ import annotations

import copy

import numpy as np
import torch

from ..engine.causal_kernels import CausalKernelReadout
from ..engine.recurrent import RecurrentNetwork, recurrent_rules
from ..engine.rules import DEFAULT_RULE, RULES
from ._inputs import check_label
from ._sequence_base import _positive_int, _SequenceBase, scoped_threads

__all__ = ["TPSGDStreamingSequenceClassifier", "STREAM_ENCODERS"]

STREAM_ENCODERS = ("causal_kernels", "elman")
_DEFAULT_LR = {"causal_kernels": 0.1, "elman": 3e-3}  # when lr is None


class TPSGDStreamingSequenceClassifier(_SequenceBase):
    """One time step of a sensor stream per ``learn_one``, a label per step.

    ``learn_one(x, y)`` takes the channel values of one step (a dict) and its label;
    ``observe_one(x)`` takes a step without a label (the state moves on, nothing is learned);
    ``predict_proba_one(x)`` classifies the stream as it would be after the step ``x``,
    without taking it. Every ``batch_size`` steps one update runs on the buffered steps, so
    memory is ``batch_size`` steps, whatever the stream's length.

    With ``encoder="causal_kernels"`` (the default) a step's features are those of the
    sequence classifier's random kernels made causal
    (:mod:`tpsgd_stream.engine.causal_kernels`): each dilated kernel reads the last steps up
    to the newest, and each feature is the proportion of the last ``lookback`` steps at which
    its kernel's output was above one of its biases, updated incrementally (a step costs
    ``O(n_features)``, not ``O(lookback * n_features)``). The biases are fitted on the first
    ``lookback`` steps, which are held until then and learned once they are. The features are
    standardised by their running moments and a linear readout is trained by the normalised
    delta rule (each minibatch step a fraction ``lr`` of the largest stable one); the
    transform is fixed, so no error flows through any layer and ``rule`` (any local rule) and
    the Elman parameters are not used. Channels added after the biases are fitted are ignored.

    With ``encoder="elman"`` the hidden state ``h_t = sigma(h_{t-1} W_H + x_t W_X + b)`` is
    carried across calls, the recurrent layer learns by ``rule`` and the readout from every
    step's state. With ``window=W`` the state resets every ``W`` steps, the recurrent layer
    learns at every step (with ``B_t`` of the step's position in its window) and the readout
    from the last state of each window, the label of a window being that of its last step.
    Recomputing each buffered step from its stored input and previous state gives exactly the
    states the stream went through. Truncated local credit (``credit_steps``) reaches back
    over the earlier steps in the same buffer only. One unidirectional layer: a stream cannot
    be read backwards.

    Parameters
    ----------
    encoder
        ``"causal_kernels"`` (default) or ``"elman"`` (the previous front-end).
    lookback
        Steps each causal-kernel feature pools over, and about the span of the widest kernel
        (dilations up to 7): 64 by default. On EEG chunks played as a stream (200 training
        chunks, then 60 other training chunks taken without their labels, two chunk orders),
        64 and 32 generalised best (held-out accuracy 0.46 and 0.52 with 64, 0.49 and 0.54
        with 32, within the noise of 60 chunks) and 128 worse (0.39); 64 is kept for the
        slower rhythms a sensor may carry. Memory is ``lookback`` bytes per feature; the
        cost of a step does not grow with it.
    n_features
        Causal-kernel features (rounded down to a multiple of 84).
    hidden_size, rule, activation, credit_steps, readout_hidden, optimizer, seed, device
        As :class:`TPSGDSequenceClassifier` (the Elman ones with ``"elman"`` only).
    lr
        ``None``: ``0.1`` (the normalised step's fraction) with ``"causal_kernels"``,
        ``3e-3`` with ``"elman"``. With the kernels a larger step follows the last labels
        more closely (on the EEG stream above, ``1.0`` gained prequential accuracy and lost
        held-out accuracy: 0.38 against 0.46); ``0.03`` did no better than ``0.1``.
    batch_size
        Time steps per update.
    window
        ``None`` (one unbroken stream) or the steps per window (``"elman"`` only).
    torch_threads
        ``"auto"`` (the default): the estimator's torch work runs on one thread, as a stream's
        tensors are small, and ``torch.get_num_threads()`` is back to the caller's setting
        after each call; ``None``: the process's setting; an int: that many threads.

    Examples
    --------
    The class is which of two rhythms the stream follows: the current value alone says
    nothing about it.

    >>> import numpy as np
    >>> from tpsgd_stream.models import TPSGDStreamingSequenceClassifier
    >>> rng = np.random.default_rng(0)
    >>> model = TPSGDStreamingSequenceClassifier(lookback=32, n_features=336, seed=0)
    >>> correct, state, phase = 0, 0, 0.0
    >>> for t in range(4000):
    ...     state = state if rng.random() > 0.005 else 1 - state
    ...     phase += 0.25 if state else 1.2
    ...     x = {"v": np.sin(phase) + 0.3 * rng.normal()}
    ...     correct += t >= 3000 and model.predict_one(x) == state
    ...     model.learn_one(x, state)
    >>> print(f"Accuracy on the last 1000 steps: {correct / 10:.1f}%")
    Accuracy on the last 1000 steps: 95.8%
    """

    _int_params = (*_SequenceBase._int_params, "lookback", "n_features")

    def __init__(
        self,
        encoder: str = "causal_kernels",
        lookback: int = 64,
        n_features: int = 1008,
        hidden_size: int = 64,
        rule: str = DEFAULT_RULE,
        activation: str = "tanh",
        credit_steps: int = 8,
        readout_hidden: tuple[int, ...] | None = None,
        optimizer: str = "adam",
        lr: float | None = None,
        batch_size: int = 32,
        window: int | None = None,
        seed: int | None = None,
        device: str = "cpu",
        torch_threads: int | str | None = "auto",
    ):
        self.encoder = encoder
        self.lookback = lookback
        self.n_features = n_features
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
        self.torch_threads = torch_threads
        self._check_params()
        self._reset()

    def _check_params(self) -> None:
        name = type(self).__name__
        if self.encoder not in STREAM_ENCODERS:
            raise ValueError(
                f"{name}: unknown encoder {self.encoder!r}; expected one of {STREAM_ENCODERS}."
            )
        if self.window is not None and not _positive_int("window", self.window):
            raise ValueError(f"{name}: window must be None or an int >= 1, got {self.window!r}.")
        if self.rule == "bp":
            raise ValueError(
                f"{name}: rule='bp' (BPTT) needs whole sequences; use "
                f"TPSGDSequenceClassifier for it, or a local rule here."
            )
        if self.encoder == "causal_kernels":
            for param in ("window", "readout_hidden"):
                if getattr(self, param) is not None:
                    raise ValueError(
                        f"{name}: {param} is for encoder='elman'; the causal kernels pool over "
                        f"the last lookback steps into a linear readout, got "
                        f"{param}={getattr(self, param)!r}."
                    )
        if not _positive_int("n_features", self.n_features) or self.n_features < 84:
            raise ValueError(f"{name}: n_features must be an int >= 84, got {self.n_features!r}.")
        resolved = copy.copy(self)  # the checks read the value None stands for
        resolved.lr = self._lr
        _SequenceBase._check_params(resolved)

    @property
    def _lr(self) -> float:
        return _DEFAULT_LR.get(self.encoder, 1.0) if self.lr is None else self.lr

    @classmethod
    def _upgrade_params(cls, params: dict) -> dict:
        """Files saved before the ``encoder`` parameter hold Elman models."""
        return {"encoder": "elman", **params}

    def _rules(self) -> tuple[str, ...]:
        """Recurrent rules that learn from the label alone: one step at a time there is no
        output error to send back (``dfa``, ``sdfa``); ``bp`` gets its own message."""
        return tuple(name for name in recurrent_rules() if not RULES[name].uses_error)

    def _reset(self) -> None:
        super()._reset()
        self._h = np.zeros(self.hidden_size, dtype=np.float32)  # carried state ("elman")
        self._t = 0  # position in the current window ("elman")
        # buffered steps: (x, h_prev, y, t) with "elman", (features, y) with "causal_kernels"
        self._steps: list[tuple] = []

    @classmethod
    def _unit_test_params(cls):
        yield {"lookback": 8, "n_features": 84, "batch_size": 4}
        yield {"encoder": "elman", "hidden_size": 8, "batch_size": 4}
        yield {
            "encoder": "elman",
            "hidden_size": 8,
            "batch_size": 3,
            "window": 5,
            "rule": "tpsgd_l1",
        }

    @property
    def _kernels(self) -> bool:
        return self.encoder == "causal_kernels"

    def _build(self, n_inputs: int) -> RecurrentNetwork | CausalKernelReadout:
        if self._kernels:
            return CausalKernelReadout(
                max(n_inputs, 1),
                lookback=self.lookback,
                n_features=self.n_features,
                warmup=self.lookback,
                seed=self._seed,
                lr=self._lr,
            )
        return self._network(n_inputs)

    def _next_state(self, row: np.ndarray) -> torch.Tensor:
        cell = self._net.cells[0]
        with torch.no_grad():
            z = cell.linear(torch.from_numpy(row)[None], torch.from_numpy(self._h)[None])
            return cell.act.forward(z)

    # ----------------------------------------------------------------------- learning
    def _check_sample(self, x: dict, y) -> None:
        """Raise the error ``learn_one(x, y)`` would raise for bad input; change nothing."""
        check_label(y, type(self).__name__)
        self._parse(x)

    def _check_input(self, x: dict) -> None:
        """Raise the error ``predict_one(x)`` would raise for bad input."""
        self._parse(x)

    @scoped_threads
    def learn_one(self, x: dict, y) -> None:
        check_label(y, type(self).__name__)
        keys, values = self._parse(x)
        self._add_features(keys)
        self._take(self._new_row(keys, values), self._register(y))
        if len(self._steps) >= self.batch_size:  # (>=: a failed update never wedges it)
            self._update()

    @scoped_threads
    def observe_one(self, x: dict) -> None:
        """Take the step ``x`` without a label: the stream's state moves on (the kernels'
        window, or the Elman state), nothing is learned.

        A sensor stream whose labels come only now and then (or a held-out stream) is read
        this way between the labelled steps.

        Examples
        --------
        >>> model = TPSGDStreamingSequenceClassifier(lookback=4, n_features=84, seed=0)
        >>> for t in range(6):
        ...     model.learn_one({"v": float(t % 2)}, t % 2)
        >>> model.observe_one({"v": 1.0})
        >>> model.predict_one({"v": 0.0}) in (0, 1)
        True
        """
        keys, values = self._parse(x)
        self._add_features(keys)
        self._take(self._new_row(keys, values), None)

    def _new_row(self, keys, values: np.ndarray) -> np.ndarray:
        """One step as a row of the network's inputs, the buffered rows widened to it first."""
        width = self._net.input_size
        if not self._kernels and self._steps and len(self._steps[0][0]) < width:
            # a new feature: widen the buffer
            grow = width - len(self._steps[0][0])
            self._steps = [(np.pad(s[0], (0, grow)), *s[1:]) for s in self._steps]
        return self._row(keys, values, width)

    def _take(self, row: np.ndarray, label: int | None) -> None:
        """Advance the stream over ``row``; buffer it for learning when it has a ``label``."""
        if self._kernels:
            ready = self._net.step(row, -1 if label is None else label)
            self._steps += [(f, y) for f, y in ready if y >= 0]
            return
        if label is not None:
            self._steps.append((row, self._h, label, self._t))
        self._advance(row)

    def _advance(self, row: np.ndarray) -> None:
        """Carry the Elman state over the step ``row`` (reset at the end of a window)."""
        self._h = self._next_state(row)[0].numpy()
        if self.window is not None:  # an unbroken stream keeps one B (t = 0) for ever
            self._t += 1
            if self._t == self.window:
                self._h, self._t = np.zeros_like(self._h), 0

    def _update(self) -> None:
        steps, self._steps = self._steps, []  # (a batch that fails never jams the buffer)
        if self._guarded_step(len(steps), self._train, steps):
            self._n_updates += 1

    def _train(self, steps: list) -> None:
        if self._kernels:
            features = torch.from_numpy(np.stack([f for f, _ in steps]))
            self._net.train_step(features, self._net.one_hot(torch.tensor([y for _, y in steps])))
            return
        net, cell = self._net, self._net.cells[0]
        x = torch.from_numpy(np.stack([s[0] for s in steps]))
        h = torch.from_numpy(np.stack([s[1] for s in steps]))
        y = torch.tensor([s[2] for s in steps])
        t = [s[3] for s in steps]
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

    # --------------------------------------------------------------------- prediction
    @scoped_threads
    def predict_proba_one(self, x: dict) -> dict:
        keys, values = self._parse(x)
        if not self._classes:
            return {}
        row = self._row(keys, values, self._net.input_size)
        with torch.inference_mode():
            if self._kernels:
                logits = self._net.forward(self._net.peek(row))
            else:
                logits = self._net.readout.forward(self._next_state(row))
        return self._proba(logits[0])

    # ---------------------------------------------------------------------- persistence
    def _pending_state(self) -> dict:
        if self._kernels:  # (the held warm-up steps and the rings are the network's)
            return {"steps": [(torch.from_numpy(f), int(y)) for f, y in self._steps]}
        return {
            "h": torch.from_numpy(self._h.copy()),
            "t": int(self._t),
            "steps": [
                (torch.from_numpy(row), torch.from_numpy(h), int(y), int(t))
                for row, h, y, t in self._steps
            ],
        }

    def _pending_labels(self) -> list[int]:
        if not self._kernels:
            return [y for _, _, y, _ in self._steps]
        held = [] if self._net is None else [y for y in self._net.held_labels if y >= 0]
        return [y for _, y in self._steps] + held

    def _set_pending_state(self, pending: dict) -> None:
        if self._kernels:
            self._steps = [(f.numpy().copy(), y) for f, y in pending["steps"]]
            return
        self._h, self._t = pending["h"].numpy().copy(), pending["t"]
        self._steps = [
            (row.numpy().copy(), h.numpy().copy(), y, t) for row, h, y, t in pending["steps"]
        ]
