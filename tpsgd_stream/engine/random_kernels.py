"""A fixed random convolutional transform of sequences, in the spirit of MiniRocket.

MiniRocket (Dempster, Schmidt and Webb, KDD 2021) convolves a sequence with 84 fixed kernels
of length 9 (weight ``2`` at three of the nine taps, ``-1`` at the others: every choice of
three taps) at several dilations, and pools each output over time as the proportion of
positive values (PPV) of ``conv - b`` for a few bias thresholds ``b`` per kernel and dilation.
Nothing is trained: the only fitted values are the biases, quantiles of the convolution
outputs of a few sequences. It is the convolutional cousin of tpSGD's fixed random
projections, and as those it is regenerated from ``(seed, n_channels, length)``: a saved
transform stores its seed and fitted biases, never a kernel.

Here the biases come from the first sequences given to :meth:`RandomKernels.fit` (as a stream
would: the first minibatch), lengths may differ within a batch (zero-padded, each sequence
pooled over its own valid positions), and a multichannel kernel reads the sum of a random
subset of the channels, as MiniRocket's multivariate variant does.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from torch.nn import functional

from .seeding import derive_seed

__all__ = ["RandomKernels", "KERNEL_LENGTH", "kernel_weights", "dilations_for"]

KERNEL_LENGTH = 9
_GOLDEN = (math.sqrt(5) + 1) / 2  # low-discrepancy quantiles: frac(k * golden ratio)


def kernel_weights() -> torch.Tensor:
    """The 84 kernels ``(84, 9)``: ``-1`` everywhere, ``2`` at three of the nine taps.

    Examples
    --------
    >>> w = kernel_weights()
    >>> w.shape, w.sum(1).unique().tolist()
    (torch.Size([84, 9]), [0.0])
    """
    taps = list(itertools.combinations(range(KERNEL_LENGTH), 3))
    weights = -torch.ones(len(taps), KERNEL_LENGTH)
    for k, chosen in enumerate(taps):
        weights[k, list(chosen)] = 2.0
    return weights


def dilations_for(length: int, n_per_kernel: int, max_dilations: int = 32):
    """Dilations ``2^e`` for ``e`` evenly spread in ``[0, log2((length - 1) / 8)]`` and how
    many biases (features per kernel) each gets, summing to ``n_per_kernel``.

    Examples
    --------
    >>> dilations_for(24, 6)
    ([1, 2], [4, 2])
    """
    n_dilations = max(1, min(n_per_kernel, max_dilations))
    top = math.log2(max(length - 1, 1) / (KERNEL_LENGTH - 1))
    exponents = np.linspace(0.0, max(top, 0.0), n_dilations)
    values, counts = np.unique(np.floor(2.0**exponents).astype(int), return_counts=True)
    per = np.floor(counts * n_per_kernel / n_dilations).astype(int)
    per[: n_per_kernel - per.sum()] += 1  # the remainder goes to the shortest dilations
    return values.tolist(), per.tolist()


class RandomKernels:
    """Fixed random dilated kernels with PPV pooling: ``(n, channels, T)`` -> ``(n, features)``.

    Parameters
    ----------
    n_channels
        Channels of the sequences.
    length
        A typical sequence length: it sets the dilations (the longest spans about ``length``).
        Sequences of other lengths are accepted.
    n_features
        Features wanted; rounded down to a multiple of 84 (at least 84).
    seed
        Seeds the channel subsets and which fitting sequence sets each kernel's biases.

    Notes
    -----
    Kernel ``k`` at dilation index ``i`` pads its input with ``4 * dilation`` zeros on both
    sides when ``(i + k)`` is even, so its output has ``T`` positions; otherwise only the
    positions where it lies wholly inside the sequence are pooled (all ``T`` when there are
    none). Features are ordered by dilation, then kernel, then bias.

    Examples
    --------
    >>> import torch
    >>> x = torch.randn(8, 2, 50)
    >>> rk = RandomKernels(n_channels=2, length=50, n_features=840, seed=0)
    >>> rk.fit(x)
    >>> f = rk.transform(x)
    >>> f.shape, bool(((f >= 0) & (f <= 1)).all())
    (torch.Size([8, 840]), True)
    >>> twin = RandomKernels.from_state(rk.state_dict())
    >>> torch.equal(twin.transform(x), f)
    True
    """

    def __init__(self, n_channels: int, length: int, *, n_features: int = 9996, seed: int = 0):
        for name, value in (("n_channels", n_channels), ("length", length)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"RandomKernels: {name} must be an int >= 1, got {value!r}.")
        if isinstance(n_features, bool) or not isinstance(n_features, (int, np.integer)):
            raise ValueError(f"RandomKernels: n_features must be an int, got {n_features!r}.")
        self.n_channels, self.length, self.seed = int(n_channels), int(length), int(seed)
        self.weights = kernel_weights()
        n_kernels = len(self.weights)
        per_kernel = max(1, int(n_features) // n_kernels)
        self.dilations, self.n_biases = dilations_for(self.length, per_kernel)
        self.n_features = n_kernels * per_kernel
        self.channel_masks = self._channel_masks()
        self.biases: list[torch.Tensor] | None = None  # per dilation, (84, n_biases[i])

    def _channel_masks(self) -> list[torch.Tensor]:
        """Per dilation a 0/1 ``(84, n_channels)``: the channels each kernel sums."""
        c = self.n_channels
        gen = np.random.default_rng(derive_seed(self.seed, c, 1))
        masks = []
        for _ in self.dilations:
            mask = np.zeros((len(self.weights), c), dtype=np.float32)
            for k in range(len(self.weights)):
                top = math.log2(min(c, KERNEL_LENGTH) + 1)
                n_used = max(1, int(2 ** gen.uniform(0, top)) if c > 1 else 1)
                mask[k, gen.choice(c, size=min(n_used, c), replace=False)] = 1.0
            masks.append(torch.from_numpy(mask))
        return masks

    @property
    def fitted(self) -> bool:
        return self.biases is not None

    # -------------------------------------------------------------------------- convolution
    def _convolve(self, x: torch.Tensor, index: int) -> torch.Tensor:
        """``(n, 84, T)``: every kernel at dilation ``index``, its inputs padded with zeros.

        A sum of nine shifted copies of the input (one matrix product): on CPU, several times
        faster than a grouped dilated ``conv1d``."""
        dilation, length = self.dilations[index], x.shape[2]
        pad = (KERNEL_LENGTH // 2) * dilation
        padded = functional.pad(x, (pad, pad))
        taps = torch.stack(
            [padded[:, :, j * dilation : j * dilation + length] for j in range(KERNEL_LENGTH)], 1
        )  # (n, 9, channels, T)
        weights = self.weights[:, :, None] * self.channel_masks[index][:, None, :]
        return torch.einsum("kjc,njct->nkt", weights, taps)

    def _valid_span(self, lengths: torch.Tensor, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(start, stop)``, each ``(n, 84)``: the pooled positions of every kernel."""
        n_kernels = len(self.weights)
        pad = (KERNEL_LENGTH // 2) * self.dilations[index]
        inside = (torch.arange(n_kernels) + index) % 2 == 1  # kernels pooled away from the edges
        lengths = lengths[:, None].expand(-1, n_kernels)
        shrink = inside[None, :] & (lengths > 2 * pad)
        start = torch.where(shrink, pad, 0)
        return start, torch.where(shrink, lengths - pad, lengths)

    @staticmethod
    def _as_batch(x: torch.Tensor, lengths) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.as_tensor(x, dtype=torch.float32)
        if x.dim() != 3:
            raise ValueError(f"RandomKernels: expected (n, channels, T), got {tuple(x.shape)}.")
        if lengths is None:
            lengths = torch.full((len(x),), x.shape[2], dtype=torch.long)
        return x, torch.as_tensor(lengths, dtype=torch.long)

    # -------------------------------------------------------------------------------- fit
    def fit(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> None:
        """Set the biases from ``x`` ``(n, channels, T)`` (zero-padded past ``lengths``): for
        each kernel and dilation, quantiles ``frac(j * golden ratio)`` of one sequence's
        convolution output over its ``length`` positions (the sequence drawn from the seed)."""
        x, lengths = self._as_batch(x, lengths)
        gen = np.random.default_rng(derive_seed(self.seed, self.n_channels, 2))
        biases, j = [], 0
        with torch.no_grad():
            for i, n_biases in enumerate(self.n_biases):
                out = self._convolve(x, i)
                rows = []
                for k in range(len(self.weights)):
                    pick = int(gen.integers(len(x)))
                    q = (np.arange(j + 1, j + 1 + n_biases) * _GOLDEN) % 1
                    j += n_biases
                    values = out[pick, k, : int(lengths[pick])].double()
                    rows.append(torch.quantile(values, torch.from_numpy(q)).float())
                biases.append(torch.stack(rows))
        self.biases = biases

    # -------------------------------------------------------------------------- transform
    def transform(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """PPV features ``(n, n_features)`` of ``x`` ``(n, channels, T)``, each sequence pooled
        over its own ``lengths[i]`` positions (zeros beyond them are padding): the
        :meth:`positive_counts` over the :meth:`pooled_positions`."""
        x, lengths = self._as_batch(x, lengths)
        return self.positive_counts(x, lengths) / self.pooled_positions(lengths)

    def positive_counts(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``(n, n_features)`` int32: how many pooled positions of each kernel's output lie
        above each of its biases (the numerators of the PPV features; integers, so a cache
        may keep them in a byte or two each).

        Examples
        --------
        >>> import torch
        >>> x = torch.randn(4, 1, 30)
        >>> rk = RandomKernels(n_channels=1, length=30, n_features=168, seed=0)
        >>> rk.fit(x)
        >>> counts = rk.positive_counts(x)
        >>> torch.equal(counts / rk.pooled_positions(torch.full((4,), 30)), rk.transform(x))
        True
        """
        if self.biases is None:
            raise RuntimeError("RandomKernels: call fit() before transform().")
        x, lengths = self._as_batch(x, lengths)
        if x.shape[1] != self.n_channels:
            raise ValueError(
                f"RandomKernels: built for {self.n_channels} channels, got {x.shape[1]}."
            )
        positions = torch.arange(x.shape[2])
        counts = []
        with torch.no_grad():
            for i, bias in enumerate(self.biases):
                out = self._convolve(x, i)
                start, stop = self._valid_span(lengths, i)
                outside = (positions < start[..., None]) | (positions >= stop[..., None])
                out.masked_fill_(outside, -math.inf)  # never above a bias
                above = torch.stack(
                    [
                        (out > bias[None, :, b, None]).to(torch.uint8).sum(2, dtype=torch.int32)
                        for b in range(bias.shape[1])
                    ],
                    dim=2,
                )
                counts.append(above.flatten(1))
        return torch.cat(counts, dim=1)

    def pooled_positions(self, lengths: torch.Tensor) -> torch.Tensor:
        """``(n, n_features)`` float32: the positions each feature pools over for sequences
        of ``lengths`` (the denominators of the PPV features)."""
        lengths = torch.as_tensor(lengths, dtype=torch.long)
        pooled = []
        for i, n_biases in enumerate(self.n_biases):
            start, stop = self._valid_span(lengths, i)
            count = (stop - start).float()[..., None].expand(-1, -1, n_biases)
            pooled.append(count.flatten(1))
        return torch.cat(pooled, dim=1)

    # ------------------------------------------------------------------------- persistence
    def state_dict(self) -> dict:
        """Plain values and the fitted biases: never the kernels nor the channel subsets."""
        return {
            "n_channels": self.n_channels,
            "length": self.length,
            "n_features": self.n_features,
            "seed": self.seed,
            "biases": None if self.biases is None else [b.clone() for b in self.biases],
        }

    @classmethod
    def from_state(cls, state: dict) -> RandomKernels:
        """The transform ``state_dict`` describes, its kernels regenerated from the seed."""
        rk = cls(
            state["n_channels"], state["length"], n_features=state["n_features"], seed=state["seed"]
        )
        if state["biases"] is not None:
            shapes = [(len(rk.weights), n) for n in rk.n_biases]
            if [tuple(b.shape) for b in state["biases"]] != shapes:
                raise ValueError("RandomKernels: the saved biases do not fit this transform.")
            rk.biases = [b.clone().float() for b in state["biases"]]
        return rk

    @property
    def nbytes(self) -> int:
        """Bytes held: the biases (the kernels and channel subsets are regenerated)."""
        return 0 if self.biases is None else sum(b.numel() * 4 for b in self.biases)
