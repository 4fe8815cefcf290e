"""The sequence classifier's ``"conv"`` encoder: a :meth:`Network.cnn1d
<tpsgd_stream.engine.network.Network.cnn1d>` behind the interface the classifier feeds.

:class:`ConvEncoder` takes sequences ``(n, T, channels)`` as the classifier pads them, hands the
network ``(n, channels, T)``, and exposes what the estimator needs: ``input_size``,
``n_outputs``, ``one_hot``, ``forward``, ``train_step``, ``grow_outputs``, the network's
optimizers, ``state_dict``/``load_state_dict`` and ``nbytes``.
"""

from __future__ import annotations

import torch

from ..engine.network import Network
from ..engine.rules.local_head import LocalHead

__all__ = ["ConvEncoder"]


class ConvEncoder:
    """Conv1d layers over time, global temporal pooling and a linear readout.

    Parameters
    ----------
    n_inputs
        Channels of the sequences (fixed: :meth:`grow_inputs` refuses more).
    n_outputs
        Classes to start with (more are added by :meth:`grow_outputs`).
    channels, kernel_size, dilation, pool
        As :meth:`~tpsgd_stream.engine.network.Network.cnn1d` (``padding="same"``).
    rule, optimizer, lr, seed, device
        As :class:`~tpsgd_stream.engine.network.Network`.
    hidden_lr_scale
        The Conv1d layers' weights learn at ``lr * hidden_lr_scale``; the readout and the
        local heads at ``lr``.
    head_pool
        With ``rule="local_head"``: each layer's head reads its map average-pooled to this many
        time steps per channel, so that sequences of any length share the head (the
        registered rule reads the whole map, whose size is fixed by the first length).

    Examples
    --------
    >>> import torch
    >>> enc = ConvEncoder(2, 3, channels=(4,), dilation=(1,), rule="local_head", seed=0)
    >>> x = torch.randn(5, 7, 2)                        # (n, T, channels)
    >>> enc.train_step(x, enc.one_hot(torch.tensor([0, 1, 2, 0, 1])))
    >>> enc.forward(x).shape
    torch.Size([5, 3])
    """

    def __init__(
        self,
        n_inputs: int,
        n_outputs: int = 1,
        *,
        channels: tuple[int, ...] = (32, 32, 32),
        kernel_size: int = 5,
        dilation: tuple[int, ...] = (1, 2, 4),
        pool: str = "max",
        rule: str = "local_head",
        head_pool: int = 16,
        optimizer: str = "adam",
        lr: float = 1e-3,
        hidden_lr_scale: float = 1.0,
        seed: int = 0,
        device: str = "cpu",
    ):
        self.input_size = int(n_inputs)
        if rule == "local_head":  # (its head reads a fixed-size pooled map, whatever the length)
            rule = LocalHead(pool=head_pool)
        self.net = Network.cnn1d(
            self.input_size,
            1,  # ("same" padding: any length from 1 step on gives outputs)
            int(n_outputs),
            channels=channels,
            kernel_size=kernel_size,
            dilation=dilation,
            padding="same",
            pool=pool,
            rule=rule,
            optimizer=optimizer,
            lr=lr,
            seed=seed,
            device=device,
        )
        self._scale_hidden_lr(hidden_lr_scale)

    def _scale_hidden_lr(self, scale: float) -> None:
        """Multiply the learning rate of the Conv1d layers' weights by ``scale``; a local head,
        which joins its layer's optimizer on the first step, keeps the optimizer's ``lr``."""
        *hidden, _ = sorted(self.net.optimizers)
        for index in hidden:
            for group in self.net.optimizers[index].param_groups:
                group["lr"] *= scale

    @property
    def n_outputs(self) -> int:
        return self.net.n_outputs

    @property
    def optimizers(self) -> list:
        """The network's optimizers, by layer index."""
        return [self.net.optimizers[i] for i in sorted(self.net.optimizers)]

    def one_hot(self, y: torch.Tensor) -> torch.Tensor:
        return self.net.one_hot(y)

    def _channels_first(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2).to(self.net.device)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(n, n_outputs)`` of ``x`` ``(n, T, channels)`` (``lengths`` unused: padded
        steps are read as zeros)."""
        return self.net.forward(self._channels_first(x)).cpu()

    def train_step(
        self, x: torch.Tensor, target: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> None:
        """One step of every layer's rule on ``x`` ``(n, T, channels)``, zero-padded; a
        non-finite update is undone and raises
        :class:`~tpsgd_stream.engine.guard.NonFiniteUpdateError`."""
        self.net.train_step(self._channels_first(x), target, check_finite=False)

    def grow_outputs(self, n_new: int) -> None:
        self.net.grow_outputs(n_new)

    def grow_inputs(self, n_new: int) -> None:
        raise ValueError(
            f"the conv encoder reads {self.input_size} channels, fixed by the first sequence; "
            f"it cannot add {n_new}."
        )

    def state_dict(self) -> dict:
        return self.net.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state)

    @property
    def nbytes(self) -> int:
        tensors = list(self.net.parameters())
        for opt in self.optimizers:
            for state in opt.state.values():
                tensors += [v for v in state.values() if torch.is_tensor(v)]
        return sum(t.numel() * t.element_size() for t in tensors)
