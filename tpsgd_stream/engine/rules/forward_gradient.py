r"""Forward gradients: weight-perturbation gradient estimates from forward passes only.

As in "Stepping Forward on the Last Mile" (Feng et al., NeurIPS 2024), the gradient of the
true loss with respect to the weights ``w`` of the chosen layers is estimated from two forward
passes per random direction ``v`` (SPSA):

.. math::

    \hat g = \frac{1}{K} \sum_{k=1}^{K} \frac{L(w + \epsilon v_k) - L(w - \epsilon v_k)}{2 \epsilon}
    \, v_k, \qquad v_k \sim \mathcal{N}(0, I)

No activation is stored, so training needs the memory of inference. With ``bits=8`` (or 16)
the weights live on a fixed-point grid with one scale per tensor, the perturbation is a whole
number of grid steps, and updates are stochastically rounded back onto the grid: the model
adapts with inference-only fixed-point arithmetic (simulated here in float32).
"""

from __future__ import annotations

import math

import torch

from ..losses import output_loss
from ..seeding import derive_seed
from .base import Rule

__all__ = ["ForwardGradient", "quantise", "perturbation_gradients"]


class ForwardGradient(Rule):
    """Train a layer's weights with forward-gradient (SPSA) estimates of the true loss.

    Parameters
    ----------
    n_perturbations
        Directions ``K`` averaged per minibatch (each costs two forward passes).
    epsilon
        Perturbation size (in weight units; with ``bits``, in grid steps, rounded up to 1).
    bits
        ``None`` (float weights), ``8`` or ``16`` (fixed-point weights and perturbations).

    Layers with this rule are perturbed jointly; the rest of the network trains as usual in the
    same step. When it is the network's default rule the output layer uses it too.

    Examples
    --------
    >>> import torch
    >>> from tpsgd_stream import Network
    >>> net = Network.mlp(4, (8,), 2, rule=ForwardGradient(n_perturbations=4), seed=0)
    >>> x, y = torch.randn(16, 4), torch.arange(16) % 2
    >>> net.train_step(x, net.one_hot(y)).shape
    torch.Size([16, 2])
    """

    name = "forward_grad"
    mode = "perturbation"
    default_activation = "tanh"
    trains_output = True
    trains_cells = False
    default_projection = None

    def __init__(self, n_perturbations: int = 8, epsilon: float = 1e-3, bits: int | None = None):
        super().__init__()
        if isinstance(n_perturbations, bool) or not isinstance(n_perturbations, int):
            raise ValueError(f"n_perturbations must be an int >= 1, got {n_perturbations!r}.")
        if n_perturbations < 1:
            raise ValueError(f"n_perturbations must be an int >= 1, got {n_perturbations!r}.")
        if not (isinstance(epsilon, (int, float)) and math.isfinite(epsilon) and epsilon > 0):
            raise ValueError(f"epsilon must be a positive number, got {epsilon!r}.")
        if bits not in (None, 8, 16):
            raise ValueError(f"bits must be None, 8 or 16, got {bits!r}.")
        self.n_perturbations, self.epsilon, self.bits = n_perturbations, float(epsilon), bits

    def __hash__(self) -> int:
        return hash((type(self), self.n_perturbations, self.epsilon, self.bits))

    def estimate(self, params: list[torch.Tensor], loss_of, *, seed: int) -> list[torch.Tensor]:
        """Gradients of ``loss_of()`` with respect to ``params`` (see
        :func:`perturbation_gradients`)."""
        return perturbation_gradients(params, loss_of, self, seed=seed)

    def after_update(self, params, *, seed: int) -> None:
        """With ``bits``: put the updated ``params`` back on their grid (stochastic rounding)."""
        if self.bits is None:
            return
        generator = torch.Generator().manual_seed(seed)
        for p in params:
            p.copy_(quantise(p, self.bits, generator=generator))


def _grid_step(tensor: torch.Tensor, bits: int) -> float:
    """The fixed-point step of ``tensor``: its largest magnitude spans the signed range."""
    largest = float(tensor.abs().max())
    return (largest if largest > 0 else 1.0) / (2 ** (bits - 1) - 1)


def quantise(
    tensor: torch.Tensor, bits: int, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``tensor`` on a signed ``bits``-bit grid with one scale; stochastic rounding if seeded.

    Examples
    --------
    >>> quantise(torch.tensor([0.5, -1.0, 0.26]), 8).mul(127).round().tolist()
    [64.0, -127.0, 33.0]
    """
    step = _grid_step(tensor, bits)
    scaled = tensor / step
    if generator is None:
        scaled = scaled.round()
    else:
        noise = torch.rand(scaled.shape, generator=generator).to(scaled.device)
        scaled = torch.floor(scaled + noise)
    limit = 2 ** (bits - 1) - 1
    return scaled.clamp_(-limit, limit) * step


def perturbation_gradients(
    params: list[torch.Tensor],
    loss_of,
    rule: ForwardGradient,
    *,
    seed: int,
) -> list[torch.Tensor]:
    """SPSA estimate of ``d loss_of() / d params``; ``params`` are perturbed in place, restored.

    Holds one copy of ``params`` (to restore them exactly) and one direction at a time.

    ``loss_of`` evaluates the loss at the current values of ``params`` (a forward pass).
    """
    generator = torch.Generator().manual_seed(seed)
    grads = [torch.zeros_like(p) for p in params]
    originals = [p.detach().clone() for p in params]
    for _ in range(rule.n_perturbations):
        directions = [torch.randn(p.shape, generator=generator).to(p.device) for p in params]
        if rule.bits is None:
            sizes = [rule.epsilon] * len(params)
        else:  # whole grid steps, Rademacher directions: the perturbed weights stay on the grid
            directions = [torch.sign(d) for d in directions]
            steps = [_grid_step(p0, rule.bits) for p0 in originals]
            sizes = [max(1.0, round(rule.epsilon)) * step for step in steps]
        for p, p0, d, eps in zip(params, originals, directions, sizes):
            torch.add(p0, d, alpha=eps, out=p)
        loss_plus = float(loss_of())
        for p, p0, d, eps in zip(params, originals, directions, sizes):
            torch.add(p0, d, alpha=-eps, out=p)
        loss_minus = float(loss_of())
        for g, d, eps in zip(grads, directions, sizes):
            g.add_(d, alpha=(loss_plus - loss_minus) / (2 * eps * rule.n_perturbations))
    for p, p0 in zip(params, originals):
        p.copy_(p0)  # restored exactly (adding and subtracting again would drift)
    return grads


def network_loss(network, h: torch.Tensor, target: torch.Tensor, start: int) -> torch.Tensor:
    """The true loss of ``network`` on ``h``, the input of layer ``start``."""
    return output_loss(network.forward(h, start=start), target, network.loss)


def derive_step_seed(network, step: int) -> int:
    """The seed of the perturbations of a network's ``step``-th forward-gradient update."""
    return derive_seed(network.seed, 7_000_003, step)
