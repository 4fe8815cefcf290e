"""Epoch loops over in-memory arrays with the paper's two schedules.

``simultaneous``: every layer updates on every minibatch. ``sequential``: the trainable layers
are trained one after the other, each for ``epochs`` epochs, with the layers below frozen and
the layers above untouched (the forward pass stops at the layer being trained).
"""

from __future__ import annotations

import sys

import torch

from .._optional import progress_bar
from .network import SCHEDULES, Network, derive_seed

__all__ = ["fit", "accuracy"]


def _targets(network: Network, y: torch.Tensor) -> torch.Tensor:
    if network.loss == "cross_entropy":
        return network.one_hot(y)
    return (y if y.dim() == 2 else y[:, None]).float()


def fit(
    network: Network,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int = 1,
    batch_size: int = 128,
    schedule: str = "simultaneous",
    shuffle: bool = True,
    progress: bool | None = None,
) -> Network:
    """Train ``network`` on ``(X, y)`` for ``epochs`` with minibatches of ``batch_size``.

    Parameters
    ----------
    X, y
        Inputs and integer labels (classification) or real targets (regression).
    schedule
        ``"simultaneous"`` or ``"sequential"`` (see the module docstring).
    shuffle
        Reshuffle each epoch, from the network's seed (deterministic).
    progress
        Show a tqdm bar; ``None`` shows it only when stderr is a terminal.

    Examples
    --------
    >>> import torch
    >>> X = torch.randn(512, 2, generator=torch.Generator().manual_seed(0))
    >>> y = (X[:, 0] > 0).long()
    >>> net = fit(Network.mlp(2, (16,), 2, lr=1e-2, seed=0), X, y, epochs=5, batch_size=32)
    >>> round(accuracy(net, X, y), 3)
    0.975
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"Unknown schedule {schedule!r}; expected one of {SCHEDULES}.")
    if len(X) != len(y) or len(X) == 0:
        raise ValueError(f"X and y must be non-empty and of equal length, got {len(X)}, {len(y)}.")
    if not torch.isfinite(X).all():
        raise ValueError("X contains NaN or infinite values.")
    stages = [None] if schedule == "simultaneous" else [[i] for i in network.trainable_indices]
    show = sys.stderr.isatty() if progress is None else progress
    n = len(X)
    total = len(stages) * epochs * -(-n // batch_size)
    step = network.epochs_seen  # a later fit() call continues with fresh shuffles
    with progress_bar(total=total, disable=not show, desc=f"fit ({schedule})", unit="batch") as bar:
        for stage in stages:
            for _ in range(epochs):
                order = torch.arange(n)
                if shuffle:
                    generator = torch.Generator().manual_seed(derive_seed(network.seed, step))
                    order = torch.randperm(n, generator=generator)
                for start in range(0, n, batch_size):
                    index = order[start : start + batch_size]
                    network.train_step(X[index], _targets(network, y[index]), layers=stage)
                    bar.update()
                step += 1
                network.epochs_seen = step
    return network


def accuracy(network: Network, X: torch.Tensor, y: torch.Tensor, batch_size: int = 4096) -> float:
    """Share of ``X`` whose predicted class equals ``y``."""
    correct = 0
    for start in range(0, len(X), batch_size):
        pred = network.predict(X[start : start + batch_size]).cpu()
        correct += int((pred == y[start : start + batch_size].cpu()).sum())
    return correct / len(X)
