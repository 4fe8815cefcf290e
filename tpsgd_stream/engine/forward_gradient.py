"""Moved to :mod:`tpsgd_stream.engine.rules.forward_gradient`; this path keeps working."""

from .rules.forward_gradient import (
    ForwardGradient,
    derive_step_seed,
    network_loss,
    perturbation_gradients,
    quantise,
)

__all__ = [
    "ForwardGradient",
    "quantise",
    "perturbation_gradients",
    "derive_step_seed",
    "network_loss",
]
