"""Random-kernel features, standardised online, read out by a normalised least-squares rule.

:class:`KernelReadout` is the sequence classifier's default encoder and readout, on tensors:
a fixed :class:`~tpsgd_stream.engine.random_kernels.RandomKernels` transform (its biases set
by the first minibatch), a running mean and variance of every feature (updated by each
minibatch before it is learned), and a linear readout ``s = [z, 1] W`` trained towards the
targets ``2 * onehot(y) - 1`` by the delta (LMS) rule, the minibatch step normalised by the
largest eigenvalue ``lambda`` of the minibatch's Gram matrix ``Z Z^T``::

    W <- W - (eta / lambda) Z^T (Z W - T)

For ``eta <= 1`` each step shrinks the minibatch's own residual (a block Kaczmarz step), so
no learning rate has to be tuned to the number of features or their scale; started from
zero, the weights approach the least-norm least-squares fit, which with many more features
than sequences is what a ridge readout with a small penalty gives. No error flows through
any layer: the transform is fixed and the readout's rule is local. ``rule="bp"`` computes
the same step's gradient by autograd instead (identical up to rounding: for a linear
readout the delta rule *is* the gradient).

The transform is fixed, so a sequence seen again (the next epoch, or learned after it was
predicted) need not be convolved again: a cache of ``cache_bytes``
(:class:`~tpsgd_stream.engine.feature_cache.FeatureCache`) keeps each sequence's integer PPV
counts, keyed by its content, and the features are rebuilt from them bit for bit.
"""

from __future__ import annotations

import torch

from .feature_cache import FeatureCache
from .guard import NonFiniteUpdateError, all_finite
from .random_kernels import RandomKernels

__all__ = ["KernelReadout"]


class RunningStandardiser:
    """Mixin: features standardised by their running moments, kept in ``count``, ``mean`` and
    ``m2`` (each replaced, never written in place, so a step can be undone by keeping them).

    Examples
    --------
    >>> s = RunningStandardiser()
    >>> s.count, s.mean, s.m2 = torch.zeros(()), torch.zeros(1), torch.zeros(1)
    >>> s._observe(torch.tensor([[1.0], [3.0]]))
    >>> s._standardise(torch.tensor([[3.0]]))  # (3 - 2) / sd 1.414, then the bias column
    tensor([[0.7071, 1.0000]])
    """

    count: torch.Tensor
    mean: torch.Tensor
    m2: torch.Tensor

    def _observe(self, f: torch.Tensor) -> None:
        """Merge a minibatch into the running mean and sum of squared deviations (Chan et al.)."""
        n = len(f)
        mean, m2 = f.mean(0), ((f - f.mean(0)) ** 2).sum(0)
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * n / total
        self.m2 = self.m2 + m2 + delta**2 * self.count * n / total
        self.count = total

    def _sd(self) -> torch.Tensor:
        """The running standard deviations, 1 where a feature has (almost) not varied."""
        sd = (self.m2 / (self.count - 1).clamp(min=1)).sqrt()
        return torch.where(sd > 1e-6, sd, torch.ones_like(sd))

    def _standardise(self, f: torch.Tensor) -> torch.Tensor:
        """``f`` standardised, with a column of ones (the readout's bias) appended."""
        z = (f - self.mean) / self._sd()
        return torch.cat([z, torch.ones(len(z), 1, dtype=z.dtype)], 1)


class KernelReadout(RunningStandardiser):
    """Random-kernel features, online standardisation and a normalised LMS readout.

    Parameters
    ----------
    n_inputs
        Channels of the sequences; channels added after the first minibatch are ignored.
    n_outputs
        Classes to start with (more are added by :meth:`grow_outputs`).
    n_features, seed
        Of the :class:`~tpsgd_stream.engine.random_kernels.RandomKernels` transform.
    lr
        ``eta``, the step as a fraction of the largest stable one (in ``(0, 2)``).
    rule
        ``"lms"`` (the delta rule) or ``"bp"`` (the same step from autograd).
    cache_bytes
        Bound of the cache of transformed sequences (``0``: transform every time).

    Examples
    --------
    >>> import torch
    >>> x = torch.randn(16, 30, 1)                          # (n, T, channels)
    >>> x[:8, 10:13, 0] += 4.0                              # a bump in the first eight
    >>> y = torch.tensor([1] * 8 + [0] * 8)
    >>> head = KernelReadout(1, 2, n_features=840, seed=0)
    >>> for _ in range(5):
    ...     head.train_step(x, head.one_hot(y))
    >>> bool((head.forward(x).argmax(1) == y).all())
    True
    """

    def __init__(
        self,
        n_inputs: int,
        n_outputs: int = 1,
        *,
        n_features: int = 9996,
        seed: int = 0,
        lr: float = 1.0,
        rule: str = "lms",
        cache_bytes: int = 0,
    ):
        if rule not in ("lms", "bp"):
            raise ValueError(f"KernelReadout: rule must be 'lms' or 'bp', got {rule!r}.")
        self.input_size, self.n_outputs = int(n_inputs), int(n_outputs)
        self.n_features_wanted, self.seed, self.lr, self.rule = n_features, seed, lr, rule
        self.kernels: RandomKernels | None = None  # built and fitted by the first minibatch
        self.cache = FeatureCache(cache_bytes)
        self._pooled: dict[int, torch.Tensor] = {}  # length -> the transform's denominators
        self.count = torch.zeros(())
        self.mean = self.m2 = self.weight = None

    def __setstate__(self, state: dict) -> None:
        state.setdefault("cache", FeatureCache(0))  # (pickles made before the cache)
        state.setdefault("_pooled", {})
        self.__dict__.update(state)

    # ------------------------------------------------------------------------ growth
    def grow_outputs(self, n_new: int) -> None:
        self.n_outputs += n_new
        if self.weight is not None:  # a new class starts at zero: old scores do not change
            self.weight = torch.cat(
                [self.weight, self.weight.new_zeros(len(self.weight), n_new)], 1
            )

    def grow_inputs(self, n_new: int) -> None:
        self.input_size += n_new  # the transform keeps the channels it was fitted on

    def one_hot(self, y: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(y.long(), self.n_outputs).float()

    # ----------------------------------------------------------------------- features
    def _features(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """PPV features of ``x`` ``(n, T, channels)``, the transform built on first use."""
        if lengths is None:
            lengths = torch.full((len(x),), x.shape[1], dtype=torch.long)
        if self.kernels is None:
            kernels = RandomKernels(
                self.input_size,
                int(lengths.max()),
                n_features=self.n_features_wanted,
                seed=self.seed,
            )
            kernels.fit(x.transpose(1, 2), lengths)
            self.kernels = kernels
            d = kernels.n_features
            self.mean, self.m2 = torch.zeros(d), torch.zeros(d)
            self.weight = torch.zeros(d + 1, self.n_outputs)
        channels = x[:, :, : self.kernels.n_channels].transpose(1, 2)
        if self.cache.max_bytes == 0:
            return self.kernels.transform(channels, lengths)
        return self._cached_counts(channels, lengths) / self._pooled_positions(lengths)

    def _pooled_positions(self, lengths: torch.Tensor) -> torch.Tensor:
        """The transform's :meth:`~RandomKernels.pooled_positions`, kept per length (they
        depend on nothing else); at most 256 lengths are kept."""
        missing = sorted({int(n) for n in lengths} - self._pooled.keys())
        if len(self._pooled) + len(missing) > 256:
            self._pooled.clear()
            missing = sorted({int(n) for n in lengths})
        if missing:
            rows = self.kernels.pooled_positions(torch.tensor(missing))
            self._pooled.update(zip(missing, rows))
        return torch.stack([self._pooled[int(n)] for n in lengths])

    def _cached_counts(self, channels: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The transform's positive counts ``(n, n_features)``, computed only for the
        sequences the cache lacks (in the batch's padded width, as without a cache)."""
        keys = [self.cache.key(seq[:, :length]) for seq, length in zip(channels, lengths)]
        rows = [self.cache.get(key) for key in keys]
        missing = [i for i, row in enumerate(rows) if row is None]
        if missing:
            index = torch.tensor(missing)
            fresh = self.kernels.positive_counts(channels[index], lengths[index])
            for i, row in zip(missing, fresh):
                rows[i] = row
                self.cache.put(keys[i], row, largest=int(lengths[i]))
        return torch.stack(rows)

    # ------------------------------------------------------------------- train, predict
    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Scores ``(n, n_outputs)`` of ``x`` ``(n, T, channels)``; zeros before any step."""
        if self.kernels is None:
            return torch.zeros(len(x), self.n_outputs)
        with torch.no_grad():
            return self._standardise(self._features(x, lengths)) @ self.weight

    def train_step(
        self, x: torch.Tensor, target: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> None:
        """One normalised LMS step on the minibatch ``x`` ``(n, T, channels)`` (zero-padded
        past ``lengths``) towards ``2 * target - 1`` (``target`` one-hot).

        A step that would leave a NaN or an infinity in the statistics or the weights is
        undone (every state tensor is replaced, never written in place) and raises
        :class:`~tpsgd_stream.engine.guard.NonFiniteUpdateError`."""
        before = (self.kernels, self.count, self.mean, self.m2, self.weight)
        try:
            self._step(x, target, lengths)
        except Exception:
            self.kernels, self.count, self.mean, self.m2, self.weight = before
            raise
        if not all_finite([self.mean, self.m2, self.weight]):
            self.kernels, self.count, self.mean, self.m2, self.weight = before
            raise NonFiniteUpdateError("KernelReadout: the step would leave NaN or inf weights.")

    def _step(self, x: torch.Tensor, target: torch.Tensor, lengths: torch.Tensor | None) -> None:
        with torch.no_grad():
            f = self._features(x, lengths)
            self._observe(f)
            z = self._standardise(f)
            largest = torch.linalg.eigvalsh(z @ z.T)[-1].clamp(min=1e-12)
        goal = 2 * target - 1
        if self.rule == "bp":
            weight = self.weight.clone().requires_grad_(True)
            (0.5 * ((z @ weight - goal) ** 2).sum()).backward()
            gradient = weight.grad
        else:
            with torch.no_grad():
                gradient = z.T @ (z @ self.weight - goal)
        with torch.no_grad():
            self.weight = self.weight - (self.lr / largest) * gradient

    # ---------------------------------------------------------------------- persistence
    def state_dict(self) -> dict:
        if self.kernels is None:
            return {}
        state = self.kernels.state_dict()
        return {
            "kernels.meta": torch.tensor(
                [state["n_channels"], state["length"], state["n_features"], state["seed"]]
            ),
            **{f"kernels.biases.{i}": b for i, b in enumerate(state["biases"])},
            "count": self.count.clone(),
            "mean": self.mean.clone(),
            "m2": self.m2.clone(),
            "weight": self.weight.clone(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.cache.clear()
        self._pooled = {}
        if not state:
            return
        n_channels, length, n_features, seed = state["kernels.meta"].tolist()
        biases = [state[f"kernels.biases.{i}"] for i in range(len(state) - 5)]
        self.kernels = RandomKernels.from_state(
            {
                "n_channels": n_channels,
                "length": length,
                "n_features": n_features,
                "seed": seed,
                "biases": biases,
            }
        )
        self.count, self.mean, self.m2 = state["count"], state["mean"], state["m2"]
        self.weight = state["weight"]
        if self.weight.shape[1] != self.n_outputs:
            raise ValueError("KernelReadout: the saved readout has another number of classes.")

    @property
    def nbytes(self) -> int:
        """Bytes held: biases, running moments and readout weights (no kernel is stored)."""
        if self.kernels is None:
            return 0
        return self.kernels.nbytes + 4 * (2 * len(self.mean) + self.weight.numel() + 1)
