"""``TPSGDStreamingSequenceClassifier``: one time step of a sensor stream per ``learn_one``, the
hidden state carried across calls, a label per step (or per window of steps)."""

from __future__ import annotations

import numpy as np
import torch

from ..engine.recurrent import RecurrentNetwork, recurrent_rules
from ..engine.rules import DEFAULT_RULE, RULES
from ._inputs import check_label
from ._sequence_base import _positive_int, _SequenceBase

__all__ = ["TPSGDStreamingSequenceClassifier"]


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
    Accuracy on the last 1000 steps: 92.0%
    """

    def __init__(
        self,
        hidden_size: int = 64,
        rule: str = DEFAULT_RULE,
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

    def _rules(self) -> tuple[str, ...]:
        """Recurrent rules that learn from the label alone: one step at a time there is no
        output error to send back (``dfa``, ``sdfa``); ``bp`` gets its own message."""
        return tuple(name for name in recurrent_rules() if not RULES[name].uses_error)

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
    def _check_sample(self, x: dict, y) -> None:
        """Raise the error ``learn_one(x, y)`` would raise for bad input; change nothing."""
        check_label(y, type(self).__name__)
        self._parse(x)

    def _check_input(self, x: dict) -> None:
        """Raise the error ``predict_one(x)`` would raise for bad input."""
        self._parse(x)

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
        if len(self._steps) >= self.batch_size:  # (>=: a failed update never wedges it)
            self._update()

    def _update(self) -> None:
        steps, self._steps = self._steps, []  # (a batch that fails never jams the buffer)
        if self._guarded_step(len(steps), self._train, steps):
            self._n_updates += 1

    def _train(self, steps: list) -> None:
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

    def _pending_labels(self) -> list[int]:
        return [y for _, _, y, _ in self._steps]

    def _set_pending_state(self, pending: dict) -> None:
        self._h, self._t = pending["h"].numpy().copy(), pending["t"]
        self._steps = [
            (row.numpy().copy(), h.numpy().copy(), y, t) for row, h, y, t in pending["steps"]
        ]
