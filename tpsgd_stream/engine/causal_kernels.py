"""The random-kernel transform made causal: features of a stream's last ``lookback`` steps,
updated one step at a time.

:class:`CausalKernels` runs the kernels of
:class:`~tpsgd_stream.engine.random_kernels.RandomKernels` (same weights, channel subsets,
dilations fitted to ``lookback`` and biases fitted on the first steps, all regenerated from
the seed) along a stream. Each kernel is causal: its output at step ``t`` reads the steps
``t - 8 d, ..., t - d, t`` of its dilation ``d`` (zeros before the stream's first step), so
only the last ``8 d_max + 1`` inputs are kept, in a ring. A feature is the proportion of the
last ``lookback`` outputs above one of its kernel's biases (PPV over a sliding window): the
0/1 indicators of those ``lookback`` steps are kept in a second ring, and the count of each
feature gains the newest indicator and loses the one leaving the window. A step therefore
costs ``O(features)`` (nine taps per kernel and dilation, one comparison and two additions
per feature), whatever ``lookback``; memory is ``lookback`` bytes per feature.

:class:`CausalKernelReadout` puts the streaming classifier's readout on it: the features
standardised by their running mean and variance and a linear readout trained towards
``2 * onehot(y) - 1`` by the normalised delta rule, as
:class:`~tpsgd_stream.engine.kernel_readout.KernelReadout` does for whole sequences.
"""

from __future__ import annotations

import numpy as np
import torch

from .guard import NonFiniteUpdateError, all_finite
from .kernel_readout import RunningStandardiser
from .random_kernels import KERNEL_LENGTH, RandomKernels

__all__ = ["CausalKernels", "CausalKernelReadout"]


class CausalKernels:
    """PPV features of the last ``lookback`` steps of a stream: ``(channels,)`` -> ``(features,)``.

    Parameters
    ----------
    n_channels
        Channels of a step.
    lookback
        Steps a feature pools over; it also sets the dilations (the widest kernel spans about
        ``lookback`` steps), so a feature reads at most ``lookback + 8 d_max < 2 lookback``
        steps back.
    n_features, seed
        As :class:`~tpsgd_stream.engine.random_kernels.RandomKernels`.

    Examples
    --------
    >>> import numpy as np
    >>> stream = np.sin(np.arange(200) / 3.0)[:, None]          # (steps, channels)
    >>> ck = CausalKernels(n_channels=1, lookback=32, n_features=168, seed=0)
    >>> ck.fit(stream[:64])
    >>> features = [ck.step(row) for row in stream]
    >>> features[-1].shape, bool(((features[-1] >= 0) & (features[-1] <= 1)).all())
    ((168,), True)
    >>> bool(np.array_equal(ck.peek(stream[0]), ck.peek(stream[0])))   # peek changes nothing
    True
    """

    def __init__(self, n_channels: int, lookback: int, *, n_features: int = 1008, seed: int = 0):
        self.kernels = RandomKernels(n_channels, lookback, n_features=n_features, seed=seed)
        self.n_channels, self.lookback = self.kernels.n_channels, self.kernels.length
        self.n_features = self.kernels.n_features
        dilations = np.array(self.kernels.dilations)
        self.span = (KERNEL_LENGTH - 1) * int(dilations.max()) + 1  # inputs a step reads
        # taps j = 0..8 of dilation d read the input (8 - j) * d steps back
        self._lags = (KERNEL_LENGTH - 1 - np.arange(KERNEL_LENGTH))[None, :] * dilations[:, None]
        weights = self.kernels.weights.double().numpy()  # (84, 9)
        masks = np.stack([m.double().numpy() for m in self.kernels.channel_masks])  # (D, 84, c)
        self._weights = weights[None, :, :, None] * masks[:, :, None, :]  # (D, 84, 9, c)
        n_kernels = len(weights)
        self._output_of = np.concatenate(  # feature -> flat (dilation, kernel) index
            [
                np.repeat(i * n_kernels + np.arange(n_kernels), n)
                for i, n in enumerate(self.kernels.n_biases)
            ]
        )
        self._bias: np.ndarray | None = None
        self.reset()

    @property
    def fitted(self) -> bool:
        return self._bias is not None

    def fit(self, steps: np.ndarray) -> None:
        """Set the biases from the first steps of the stream, ``(T, channels)``, as
        :meth:`RandomKernels.fit` does from one sequence."""
        steps = np.asarray(steps, dtype=np.float32)
        self.kernels.fit(torch.from_numpy(steps.T.copy())[None])
        self._bias = torch.cat([b.flatten() for b in self.kernels.biases]).double().numpy()

    def reset(self) -> None:
        """Forget the stream (as at its start); the biases stay."""
        self._inputs = np.zeros((self.span, self.n_channels))  # ring of the last inputs
        self._fired = np.zeros((self.lookback, self.n_features), dtype=np.uint8)  # ring
        self._counts = np.zeros(self.n_features, dtype=np.int64)
        self.n_steps = 0  # steps since the start or the last reset

    def _indicators(self, row: np.ndarray) -> np.ndarray:
        """Which features fire at the step whose newest input is ``row`` (already written at
        the ring's head)."""
        head = self.n_steps % self.span
        taps = self._inputs[(head - self._lags) % self.span]  # (D, 9, c)
        outputs = np.einsum("dkjc,djc->dk", self._weights, taps).ravel()
        return (outputs[self._output_of] > self._bias).astype(np.uint8)

    def _features(self, row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(counts, fired)`` after a step ``row``, the rings left as they were."""
        if self._bias is None:
            raise RuntimeError("CausalKernels: call fit() before step() or peek().")
        row = np.asarray(row, dtype=np.float64)
        if row.shape != (self.n_channels,):
            raise ValueError(
                f"CausalKernels: a step must have {self.n_channels} channels, got {row.shape}."
            )
        head = self.n_steps % self.span
        kept = self._inputs[head].copy()
        self._inputs[head] = row
        try:
            fired = self._indicators(row)
        finally:
            self._inputs[head] = kept
        leaving = self._fired[self.n_steps % self.lookback]
        return self._counts + fired - leaving, fired

    def _ppv(self, counts: np.ndarray) -> np.ndarray:
        return counts / min(self.n_steps + 1, self.lookback)

    def peek(self, row: np.ndarray) -> np.ndarray:
        """The features ``(n_features,)`` after a step ``row``, without taking it."""
        return self._ppv(self._features(row)[0])

    def step(self, row: np.ndarray) -> np.ndarray:
        """Take the step ``row`` ``(channels,)``; its features ``(n_features,)``."""
        counts, fired = self._features(row)
        features = self._ppv(counts)
        self._inputs[self.n_steps % self.span] = row
        self._fired[self.n_steps % self.lookback] = fired
        self._counts = counts
        self.n_steps += 1
        return features

    # ------------------------------------------------------------------------- persistence
    def state_dict(self) -> dict:
        """Fitted biases and the rings: never a kernel (regenerated from the seed)."""
        return {
            "meta": torch.tensor(
                [self.n_channels, self.lookback, self.n_features, self.kernels.seed, self.n_steps]
            ),
            "biases": None if self._bias is None else torch.from_numpy(self._bias.copy()),
            "inputs": torch.from_numpy(self._inputs.copy()),
            "fired": torch.from_numpy(self._fired.copy()),
        }

    @classmethod
    def from_state(cls, state: dict) -> CausalKernels:
        """The transform ``state_dict`` describes, at the same step of its stream."""
        n_channels, lookback, n_features, seed, n_steps = state["meta"].tolist()
        ck = cls(n_channels, lookback, n_features=n_features, seed=seed)
        if state["biases"] is not None:
            if tuple(state["biases"].shape) != (ck.n_features,):
                raise ValueError("CausalKernels: the saved biases do not fit this transform.")
            ck._bias = state["biases"].double().numpy().copy()
            sizes = [len(ck.kernels.weights) * n for n in ck.kernels.n_biases]
            ck.kernels.biases = [  # (the per-dilation form, as fit() left it)
                part.reshape(len(ck.kernels.weights), n).float()
                for part, n in zip(state["biases"].split(sizes), ck.kernels.n_biases)
            ]
        if (
            tuple(state["inputs"].shape) != ck._inputs.shape
            or tuple(state["fired"].shape) != ck._fired.shape
        ):
            raise ValueError("CausalKernels: the saved rings do not fit this transform.")
        ck._inputs = state["inputs"].double().numpy().copy()
        ck._fired = state["fired"].numpy().astype(np.uint8)
        ck._counts = ck._fired.sum(0, dtype=np.int64)
        ck.n_steps = int(n_steps)
        return ck

    @property
    def nbytes(self) -> int:
        """Bytes held: biases, the two rings and the counts."""
        return self._inputs.nbytes + self._fired.nbytes + self._counts.nbytes + self.n_features * 8


class CausalKernelReadout(RunningStandardiser):
    """Causal random-kernel features of a stream, standardised, read out by a normalised LMS.

    The steps before the biases are fitted (the first ``warmup`` of the stream) are held;
    then the biases are fitted on them and they are replayed through the transform, so no
    step's label is lost. :meth:`step` returns a step's features (``None`` while warming
    up); :meth:`train_step` learns a minibatch of features and one-hot targets.

    Parameters
    ----------
    n_inputs
        Channels of a step; channels added after the biases are fitted are ignored.
    n_outputs
        Classes to start with (more are added by :meth:`grow_outputs`).
    lookback, n_features, seed
        Of the :class:`CausalKernels` transform.
    warmup
        Steps the biases are fitted on.
    lr
        ``eta``, the step as a fraction of the largest stable one (in ``(0, 2)``).

    Examples
    --------
    >>> import numpy as np, torch
    >>> head = CausalKernelReadout(1, 2, lookback=16, n_features=168, warmup=16, seed=0)
    >>> ready, correct = [], 0
    >>> for t in range(960):                 # a slow wave, then a fast one, in turn
    ...     y = (t // 80) % 2
    ...     row = np.array([np.sin(t * (1.5 if y else 0.3))])
    ...     correct += t >= 800 and int(head.forward(head.peek(row)).argmax()) == y
    ...     ready += head.step(row, y)
    ...     if len(ready) >= 16:
    ...         features = torch.from_numpy(np.stack([f for f, _ in ready]))
    ...         head.train_step(features, head.one_hot(torch.tensor([y for _, y in ready])))
    ...         ready = []
    >>> print(f"Accuracy on the last 160 steps: {correct / 160:.0%}")
    Accuracy on the last 160 steps: 86%
    """

    def __init__(
        self,
        n_inputs: int,
        n_outputs: int = 1,
        *,
        lookback: int = 128,
        n_features: int = 1008,
        warmup: int = 128,
        seed: int = 0,
        lr: float = 1.0,
    ):
        self.input_size, self.n_outputs = int(n_inputs), int(n_outputs)
        self.lookback, self.n_features_wanted, self.warmup = lookback, n_features, warmup
        self.seed, self.lr = seed, lr
        self.features: CausalKernels | None = None  # built and fitted after the warm-up
        self._held: list[tuple[np.ndarray, int]] = []  # warm-up steps: (row, label)
        self.count = torch.zeros((), dtype=torch.float64)
        self.mean = self.m2 = self.weight = None
        self._folded: tuple[np.ndarray, np.ndarray] | None = None  # see forward()

    # ------------------------------------------------------------------------ growth
    def grow_outputs(self, n_new: int) -> None:
        self.n_outputs += n_new
        if self.weight is not None:  # a new class starts at zero: old scores do not change
            self.weight = torch.cat(
                [self.weight, self.weight.new_zeros(len(self.weight), n_new)], 1
            )
            self._folded = None

    def grow_inputs(self, n_new: int) -> None:
        self.input_size += n_new  # the transform keeps the channels it was fitted on

    def one_hot(self, y: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(y.long(), self.n_outputs).double()

    # ----------------------------------------------------------------------- the stream
    def _channels(self, row: np.ndarray) -> np.ndarray:
        """``row`` cut or zero-padded to the transform's channels (or, while warming up, to
        the channels known now)."""
        n = self.features.n_channels if self.features is not None else self.input_size
        row = np.asarray(row, dtype=np.float64)
        if len(row) == n:
            return row
        out = np.zeros(n)
        out[: min(n, len(row))] = row[:n]
        return out

    def _held_rows(self) -> np.ndarray:
        """The warm-up rows ``(n, input_size)``, the earlier ones zero-padded to the channels
        added since."""
        return np.stack([self._channels(r) for r, _ in self._held]).reshape(-1, self.input_size)

    def step(self, row: np.ndarray, label: int = -1) -> list[tuple[np.ndarray, int]]:
        """Take one step ``row`` labelled ``label`` (``-1``: none); the ``(features, label)``
        pairs now ready to learn: one, none while warming up, all the held ones when the
        warm-up ends."""
        if self.features is not None:
            return [(self.features.step(self._channels(row)), label)]
        self._held.append((np.asarray(row, dtype=np.float64).copy(), int(label)))
        if len(self._held) < self.warmup:
            return []
        rows, labels = self._held_rows(), self.held_labels
        self._held = []
        features = CausalKernels(
            self.input_size, self.lookback, n_features=self.n_features_wanted, seed=self.seed
        )
        features.fit(rows)
        self.features = features
        d = features.n_features
        self.mean = torch.zeros(d, dtype=torch.float64)
        self.m2 = torch.zeros(d, dtype=torch.float64)
        self.weight = torch.zeros(d + 1, self.n_outputs, dtype=torch.float64)
        return [(features.step(r), y) for r, y in zip(rows, labels)]

    def peek(self, row: np.ndarray) -> np.ndarray | None:
        """The features after a step ``row`` without taking it (``None`` while warming up)."""
        return None if self.features is None else self.features.peek(self._channels(row))

    # ------------------------------------------------------------------- train, predict
    def forward(self, f: np.ndarray | torch.Tensor | None) -> torch.Tensor:
        """Scores ``(n, n_outputs)`` of features ``(n, d)`` or ``(d,)``; zeros before any
        step (``f`` ``None``).

        The standardisation is folded into the readout's weights (``(f - mean) / sd @ W``
        as ``f @ W' + b'``, refolded after each step), so one row costs one product."""
        if f is None or self.weight is None:
            return torch.zeros(1, self.n_outputs, dtype=torch.float64)
        if self._folded is None:
            self._folded = self._fold()
        weight, bias = self._folded
        f = np.asarray(f, dtype=np.float64)
        return torch.from_numpy(f.reshape(-1, f.shape[-1]) @ weight + bias)

    def _fold(self) -> tuple[np.ndarray, np.ndarray]:
        sd = self._sd()
        weight = self.weight[:-1] / sd[:, None]
        bias = self.weight[-1] - self.mean @ weight
        return weight.numpy(), bias.numpy()

    def train_step(self, f: torch.Tensor, target: torch.Tensor) -> None:
        """One normalised LMS step on features ``f`` ``(n, d)`` towards ``2 * target - 1``.

        A step that would leave a NaN or an infinity is undone (every state tensor is
        replaced, never written in place) and raises
        :class:`~tpsgd_stream.engine.guard.NonFiniteUpdateError`."""
        f = torch.as_tensor(f, dtype=torch.float64)
        if not bool(torch.isfinite(f).all()):
            raise NonFiniteUpdateError("CausalKernelReadout: NaN or infinite features.")
        before = (self.count, self.mean, self.m2, self.weight)
        self._folded = None
        try:
            self._step(f, target.double())
        except Exception:
            self.count, self.mean, self.m2, self.weight = before
            raise
        if not all_finite([self.mean, self.m2, self.weight]):
            self.count, self.mean, self.m2, self.weight = before
            raise NonFiniteUpdateError(
                "CausalKernelReadout: the step would leave NaN or inf weights."
            )

    def _step(self, f: torch.Tensor, target: torch.Tensor) -> None:
        with torch.no_grad():
            self._observe(f)
            z = self._standardise(f)
            largest = torch.linalg.eigvalsh(z @ z.T)[-1].clamp(min=1e-12)
            gradient = z.T @ (z @ self.weight - (2 * target - 1))
            self.weight = self.weight - (self.lr / largest) * gradient

    # ---------------------------------------------------------------------- persistence
    def state_dict(self) -> dict:
        """The transform's state and the readout's, or the held warm-up steps."""
        if self.features is None:
            return {
                "held": torch.from_numpy(self._held_rows()),
                "held_labels": torch.tensor(self.held_labels, dtype=torch.long),
            }
        return {
            **{f"features.{k}": v for k, v in self.features.state_dict().items()},
            "count": self.count.clone(),
            "mean": self.mean.clone(),
            "m2": self.m2.clone(),
            "weight": self.weight.clone(),
        }

    def load_state_dict(self, state: dict) -> None:
        if "held" in state:
            rows, labels = state["held"].double().numpy(), state["held_labels"].tolist()
            if rows.shape != (len(labels), self.input_size):
                raise ValueError("CausalKernelReadout: the held steps do not fit this readout.")
            self._held = [(row.copy(), y) for row, y in zip(rows, labels)]
            return
        self.features = CausalKernels.from_state(
            {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
        )
        self.count, self.mean, self.m2 = state["count"], state["mean"], state["m2"]
        self.weight, self._folded = state["weight"], None
        if self.weight.shape != (self.features.n_features + 1, self.n_outputs):
            raise ValueError("CausalKernelReadout: the saved readout does not fit the transform.")

    @property
    def held_labels(self) -> list[int]:
        """Labels of the warm-up steps held (empty once the biases are fitted)."""
        return [y for _, y in self._held]

    @property
    def nbytes(self) -> int:
        """Bytes held: the transform's rings and biases, moments and readout weights."""
        if self.features is None:
            return sum(r.nbytes for r, _ in self._held)
        return self.features.nbytes + 8 * (2 * len(self.mean) + self.weight.numel() + 1)
