"""Rules whose signal comes down a fixed feedback matrix ``B`` or from the layer above.

=============  ====================================================================
rule           ``delta`` for a hidden layer (``n`` = minibatch size)
=============  ====================================================================
``bp``         ``(delta_above @ W_above) * sigma'(z)`` (true gradient)
``dfa``        ``(e @ B) * sigma'(z) / n``, ``e`` the output error ``softmax(o) - y*``
``sdfa``       ``(sign(e) @ B) * sigma'(z) / n``, ``B`` centred over the classes
``drtp``       ``(y* @ B) * sigma'(z) / n`` (label only, no error)
=============  ====================================================================
"""

from __future__ import annotations

import torch

from .base import Backward, Rule, _project, _through

__all__ = ["Backprop", "DFA", "SignDFA", "DRTP", "dfa_delta", "drtp_delta"]


def dfa_delta(
    *, error: torch.Tensor, feedback: torch.Tensor, like: torch.Tensor, backward: Backward
) -> torch.Tensor:
    """DFA: ``(e @ B) * sigma'(z) / n`` (Noekland 2016); ``like`` is ``z`` (for its shape)."""
    return backward(_project(error / like.shape[0], feedback, like))


def drtp_delta(
    *, target: torch.Tensor, feedback: torch.Tensor, like: torch.Tensor, backward: Backward
) -> torch.Tensor:
    """DRTP: ``(y* @ B) * sigma'(z) / n`` (Frenkel et al. 2021)."""
    return backward(_project(target / like.shape[0], feedback, like))


class Backprop(Rule):
    """True gradient from the layer above (``delta = (delta_above @ W_above) * sigma'(z)``).

    A run of ``bp`` layers under a layer with a local rule is trained by back-propagating that
    layer's local loss through the run; under the output layer, by the true loss.

    Examples
    --------
    >>> Backprop().mode, Backprop().projection
    ('backprop', None)
    """

    name = "bp"
    default_hidden_lr_scale = 0.3  # 14x14 MNIST: 0.859 (0.850 at 0.1, 0.809 at 1)
    # its hidden gradients come through the readout from the cross-entropy: a least-squares
    # readout (regression scores) sends them another loss's (14x14 MNIST: 0.805 against 0.858)
    default_readout_solver = "optimizer"
    mode = "backprop"
    default_projection = None


class DFA(Rule):
    """Direct feedback alignment: ``delta = (e @ B) * sigma'(z) / n``.

    Examples
    --------
    >>> import torch
    >>> from tpsgd_stream.engine.activations import get_activation
    >>> z = torch.tensor([[1.0, -1.0]])
    >>> DFA().delta(z=z, a=z, act=get_activation("relu"), target=None,
    ...             error=torch.tensor([[0.5, -0.5]]), matrix=torch.eye(2))
    tensor([[0.5000, -0.0000]])
    """

    name = "dfa"
    default_hidden_lr_scale = 0.1  # 14x14 MNIST: 0.837 (0.786 at 0.3, 0.759 at 1)
    needs_error = True
    default_projection = "uniform"
    default_activation = "tanh"

    def delta(self, *, z, a, act, target, error, matrix):
        return dfa_delta(error=error, feedback=matrix, like=z, backward=_through(act, z, a))


class SignDFA(Rule):
    """Sign-symmetric DFA: ``delta = (sign(e) @ B) * sigma'(z) / n``.

    Its signal does not shrink as the network learns: pair it with a saturating activation
    (``activation="tanh"``, the estimators' default for it), whose slope stops a saturated
    unit; with leaky ReLU and Adam the hidden units are pushed without bound (see
    ``BENCHMARKS.md``).

    Under a softmax output ``e = softmax(o) - y*`` is positive on every class but the label,
    so ``sign(e) @ B = sum_k B_k - 2 B_y``: the same push ``sum_k B_k`` for every sample,
    which carries no label and drives the units into saturation. With ``centre=True`` (the
    default) ``B``'s class rows have their mean taken out whenever there are two or more, so
    that only the label moves the layer; one row (a regression output) is kept as drawn.

    Parameters
    ----------
    centre
        Take the class mean out of ``B`` (``False``: ``B`` as drawn, the plain rule).
    **kwargs
        As :class:`Rule`.

    Examples
    --------
    >>> import torch
    >>> from tpsgd_stream.engine.activations import get_activation
    >>> z = torch.tensor([[1.0, 2.0]])
    >>> SignDFA().delta(z=z, a=z, act=get_activation("identity"), target=None,
    ...                 error=torch.tensor([[0.1, -3.0]]), matrix=torch.eye(2))
    tensor([[ 1., -1.]])
    """

    name = "sdfa"
    needs_error = True
    default_projection = "uniform"
    default_activation = "tanh"

    def __init__(self, *, centre: bool = True, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(centre, bool):
            raise ValueError(f"centre must be True or False, got {centre!r}.")
        self.centre = centre

    def __hash__(self) -> int:
        return hash((super().__hash__(), self.centre))

    def matrix(self, state, n_classes, units, *, device):
        """``B``, its class mean taken out (see the class notes)."""
        return self._centred(super().matrix(state, n_classes, units, device=device))

    def step_matrix(self, n_classes, n_units, *, seed, stream, step, device):
        """A recurrent cell's ``B_t``, its class mean taken out as :meth:`matrix`'s."""
        drawn = super().step_matrix(
            n_classes, n_units, seed=seed, stream=stream, step=step, device=device
        )
        return self._centred(drawn)

    def _centred(self, matrix: torch.Tensor) -> torch.Tensor:
        if not self.centre or matrix.shape[0] < 2:
            return matrix
        return matrix - matrix.mean(0, keepdim=True)

    def delta(self, *, z, a, act, target, error, matrix):
        backward = _through(act, z, a)
        return dfa_delta(error=torch.sign(error), feedback=matrix, like=z, backward=backward)


class DRTP(Rule):
    """Direct random target projection: ``delta = (y* @ B) * sigma'(z) / n``.

    As :class:`SignDFA`, its signal does not shrink: use a saturating activation
    (``activation="tanh"``; see ``BENCHMARKS.md``).

    Examples
    --------
    >>> import torch
    >>> from tpsgd_stream.engine.activations import get_activation
    >>> z = torch.tensor([[1.0, 2.0]])
    >>> DRTP().delta(z=z, a=z, act=get_activation("identity"), target=torch.tensor([[0.0, 1.0]]),
    ...              error=None, matrix=torch.tensor([[1.0, 1.0], [2.0, -2.0]]))
    tensor([[ 2., -2.]])
    """

    name = "drtp"
    default_projection = "orthogonal"
    default_activation = "tanh"

    def delta(self, *, z, a, act, target, error, matrix):
        return drtp_delta(target=target, feedback=matrix, like=z, backward=_through(act, z, a))
