r"""Recursive least squares: the output layer solved exactly after every sample.

An output layer ``z = W h + b`` can learn from one sample at a time as the exact ridge
regression of the targets on its inputs, updated in ``O(F^2)`` per sample (``F`` = inputs + 1)
instead of a gradient step: with ``phi = [h, 1]`` and ``P`` the inverse of the regularised Gram
matrix ``reg I + sum phi phi^T`` (``P = I / reg`` before the first sample),

.. math::

    k = \frac{P \phi}{1 + \phi^\top P \phi}, \quad
    [W, b] \mathrel{+}= (t - z)\, k^\top, \quad
    P \leftarrow P - k\, \phi^\top P

After each sample ``[W, b]`` minimises ``sum ||t - W h - b||^2 + reg ||[W, b] - [W0, b0]||^2``
over the samples so far (``W0, b0``: the weights before the first): a readout as good as it
can be from the first samples on, where a gradient step moves by ``lr``. Only the output
layer learns this way; it sees the true targets (a squared loss on the one-hot labels), the
hidden layers keep their local rules.

With a forgetting factor ``forget < 1`` the Gram matrix decays, ``A <- forget A + phi phi^T``
(``P`` divided by ``forget``), so recent samples count more and the readout follows drift; the
penalty that decay takes from the prior is given back, ``(1 - forget) reg`` per sample on the
diagonal (on one entry every four samples, by a rank-one update), so that ``P`` stays bounded
where the data leave directions unexcited.

With a ``margin``, a sample whose class the readout already scores ahead of every other class
by more than ``margin`` is not learned from (nothing changes, not even the forgetting): the
readout then spends its steps, and ``P`` its shrinking, on the samples it gets wrong or
nearly wrong, which keeps it quicker to follow drift, and skips the ``O(F^2)`` work of the
samples it has learned.

``P`` is the output layer's optimizer state (``optimizer.state[weight]["rls_inverse"]``, a
float64 tensor): it is saved, loaded, pickled and cleared (``Network.reset_optimizer_state``,
e.g. when a drift wrapper re-initialises the readout) with the layer's other state.
"""

from __future__ import annotations

import math
import weakref

import numpy as np
import torch
from scipy.linalg.blas import dger as _dger
from scipy.linalg.blas import sger as _sger

from .optim import adam_state
from .threads import single_blas_thread

__all__ = [
    "COUNT_KEY",
    "RLS_KEY",
    "keep_inverse",
    "least_squares_readout",
    "rls_block_step",
    "rls_step",
]

RLS_KEY = "rls_inverse"  # the optimizer state entry of P
COUNT_KEY = "rls_count"  # and of the samples learned (an int64 tensor), for the prior's turn
REFRESH_EVERY = 4  # samples between two refreshes of the prior (see _refresh_prior)
# samples between two symmetrisations of P: rounding leaves P - P^T of ~1e-16, which dividing
# P by ``forget`` each sample multiplies by 1 / forget: at 0.998 it reached 1e-2 after 17,500
# samples of MNIST and P went indefinite; every 64 samples it stays at rounding's size
SYMMETRIZE_EVERY = 64


def least_squares_readout(net) -> bool:
    """Whether :func:`rls_step` can update ``net``'s output layer: a float32 layer on the CPU
    without an output rule of its own."""
    out = net.output_index
    layer = net.layers[out]
    return (
        net.rules[out] is None
        and layer.weight.device.type == "cpu"
        and layer.weight.dtype == torch.float32
    )


class _Solver:
    """numpy views of an output layer's weight and bias and of its ``P``, and the features
    ``[h, 1]`` of the sample being learned (made once, while the same tensors hold the same
    memory and the optimizer keeps the same ``P``)."""

    def __init__(self, net, reg: float):
        out = net.output_index
        layer = net.layers[out]
        self.optimizer = net.optimizers[out]
        self.params = (layer.weight, layer.bias)
        self.pointers = tuple(p.data_ptr() for p in self.params)
        self.weight, self.bias = (p.detach().numpy() for p in self.params)
        width = self.weight.shape[1] + 1
        if isinstance(self.optimizer, torch.optim.Adam):  # (its step needs its moments too)
            for param in self.params:
                adam_state(self.optimizer, param)
        self.table = self.optimizer.state
        state = self.entry = self.table[layer.weight]
        inverse = state.get(RLS_KEY)
        if inverse is None or inverse.shape != (width, width):
            inverse = state[RLS_KEY] = _grown(inverse, width, reg)
        if COUNT_KEY not in state:
            state[COUNT_KEY] = torch.zeros((), dtype=torch.int64)
        self.inverse_tensor = inverse
        self.inverse = inverse.numpy()
        self.count = state[COUNT_KEY].numpy()
        self.phi = np.ones(width)
        # P phi and the gain (float32, as the weights), written in place each sample
        self.p_phi, self.gain = np.empty(width), np.empty(width, dtype=np.float32)

    def current(self, net) -> bool:
        """Whether the views still show ``net``'s output layer and its ``P``: the same
        optimizer and parameters in the same memory (growth makes new memory), the same state
        table (a loaded state is a new one) with the same entry for the weight (a reset
        removes it) holding this ``P`` (a new output layer comes with a new optimizer)."""
        optimizer = net.optimizers[net.output_index]
        weight, bias = self.params
        return (
            optimizer is self.optimizer
            and optimizer.state is self.table
            and self.table.get(weight) is self.entry
            and self.entry.get(RLS_KEY) is self.inverse_tensor
            and weight.data_ptr() == self.pointers[0]
            and bias.data_ptr() == self.pointers[1]
        )


_SOLVERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # network -> _Solver


def _solver(net, reg: float) -> _Solver | None:
    """``net``'s kept :class:`_Solver`, made anew when it no longer shows the output layer;
    ``None`` when :func:`least_squares_readout` does not hold."""
    solver = _SOLVERS.get(net)
    if solver is None or not solver.current(net):
        if not least_squares_readout(net):
            return None
        solver = _SOLVERS[net] = _Solver(net, reg)
    return solver


def _grown(inverse: torch.Tensor | None, width: int, reg: float) -> torch.Tensor:
    """``P`` of ``width`` features: ``I / reg``, keeping what ``inverse`` knew of the first
    features (a new input feature starts as one never seen)."""
    grown = torch.eye(width, dtype=torch.float64) / reg
    if inverse is not None:
        n = min(inverse.shape[0], width) - 1  # (the last row and column: the bias's)
        grown[:n, :n] = inverse[:n, :n]
        grown[:n, -1] = inverse[:n, -1]
        grown[-1, :n] = inverse[-1, :n]
        grown[-1, -1] = inverse[-1, -1]
    return grown


def rls_step(
    net,
    features: np.ndarray,
    target: np.ndarray,
    *,
    reg: float = 1.0,
    forget: float = 1.0,
    margin: float | None = None,
) -> bool | None:
    """Update ``net``'s output layer on one sample by recursive least squares.

    Parameters
    ----------
    net
        A network whose output layer is ``Dense`` (no output rule of its own).
    features
        The sample's last hidden activation, ``(hidden,)`` (float64 keeps ``P`` exact).
    target
        Its target row, ``(n_outputs,)`` (one-hot for a class).
    reg
        Ridge penalty of a new ``P`` (``I / reg``).
    forget
        Forgetting factor, in (0, 1] (see the module's description).
    margin
        For a one-hot ``target`` and at least two outputs: skip the sample when its class's
        score leads every other score by more than ``margin``. ``None``: learn every sample.

    Returns ``True`` once done (or skipped); ``False``, and nothing changed, when a value
    would not be finite; ``None``, and nothing changed, when :func:`least_squares_readout`
    does not hold.

    Examples
    --------
    >>> from tpsgd_stream.engine.network import Network
    >>> net = Network.mlp(2, (3,), 2, seed=0)
    >>> h = np.array([1.0, 0.0, 2.0])
    >>> for _ in range(50):
    ...     _ = rls_step(net, h, np.array([1.0, 0.0], np.float32))
    >>> out = net.layers[-1]
    >>> z = out.weight.detach().numpy() @ h + out.bias.detach().numpy()
    >>> np.round(z, 2).tolist()  # the target
    [1.0, 0.0]
    """
    solver = _solver(net, reg)
    if solver is None:
        return None
    scores = solver.weight @ features + solver.bias  # (in float64: no overflow)
    if margin is not None and _leads(scores, target, margin):
        return True
    with single_blas_thread():  # (a threaded BLAS stalls on a busy machine: see the helper)
        return _rls_update(solver, features, target, scores, reg, forget)


def _rls_update(
    solver: _Solver,
    features: np.ndarray,
    target: np.ndarray,
    scores: np.ndarray,
    reg: float,
    forget: float,
) -> bool:
    """:func:`rls_step`'s update of the weights and of ``P`` once the sample is to be
    learned; ``False``, and nothing changed, when a value would not be finite."""
    phi, p_phi, gain = solver.phi, solver.p_phi, solver.gain
    phi[:-1] = features
    np.matmul(solver.inverse, phi, p_phi)
    denominator = forget + float(phi.dot(p_phi))
    error = target - scores
    if not (math.isfinite(denominator) and math.isfinite(error.dot(error))):
        return False
    if denominator <= 0.0:  # P lost its positive definiteness: start it afresh (see _restart)
        denominator = _restart(solver, reg, forget)
    # the weights' update in their float32, by BLAS rank-one updates in place (the transposed
    # views are Fortran-ordered, as BLAS wants them): a few microseconds each, where numpy's
    # outer product and a torch call take several times longer
    np.multiply(p_phi, 1.0 / denominator, gain, casting="same_kind")
    error = error.astype(np.float32)
    _sger(1.0, gain[:-1], error, a=solver.weight.T, overwrite_a=True)
    solver.bias += error * gain[-1]
    # P = (P - p_phi p_phi^T / denominator) / forget (P symmetric: its transpose is itself)
    _dger(-1.0 / denominator, p_phi, p_phi, a=solver.inverse.T, overwrite_a=True)
    if forget != 1.0:
        np.multiply(solver.inverse, 1.0 / forget, solver.inverse)
        _refresh_prior(solver, (1.0 - forget) * reg)
    return True


def rls_block_step(
    net,
    features: np.ndarray,
    targets: np.ndarray,
    *,
    reg: float = 1.0,
    forget: float = 1.0,
    margin: float | None = None,
) -> bool | None:
    """Update ``net``'s output layer on a minibatch at once, as :func:`rls_step` on each row in
    turn would (exactly, without ``margin`` and forgetting's prior refresh), in a few matrix
    products: with ``Phi`` the rows ``[h, 1]`` and ``D = diag(forget^(m-1-i))``,
    ``S = forget^m D^-1 + Phi P Phi^T``, ``K = P Phi^T S^-1``,
    ``[W, b] += ((T - Z)^T K^T)`` and ``P <- (P - K Phi P) / forget^m``.

    With ``margin``, rows that the readout before the update already classifies by more than
    it are left out (as :func:`rls_step` would skip them, judged on the weights before the
    minibatch); the prior's refresh for the rows learned is given back at the end.

    Parameters and returns as :func:`rls_step`, with ``features`` ``(m, hidden)`` and
    ``targets`` ``(m, n_outputs)``.

    Examples
    --------
    >>> from tpsgd_stream.engine.network import Network
    >>> nets = Network.mlp(2, (3,), 2, seed=0), Network.mlp(2, (3,), 2, seed=0)
    >>> h = np.array([[1.0, 0.0, 2.0], [0.5, 1.0, 0.0], [0.0, 1.0, 1.0]])
    >>> t = np.eye(2, dtype=np.float32)[[0, 1, 1]]
    >>> rls_block_step(nets[0], h, t)
    True
    >>> for row, target in zip(h, t):
    ...     _ = rls_step(nets[1], row, target)
    >>> bool(np.allclose(nets[0].layers[-1].weight.detach(), nets[1].layers[-1].weight.detach()))
    True
    """
    solver = _solver(net, reg)
    if solver is None:
        return None
    scores = features @ solver.weight.T.astype(np.float64) + solver.bias
    if margin is not None:
        learn = ~_leads_rows(scores, targets, margin)
        features, targets, scores = features[learn], targets[learn], scores[learn]
    if len(features) == 0:
        return True
    with single_blas_thread():
        return _rls_block_update(solver, features, targets - scores, reg, forget)


def _rls_block_update(
    solver: _Solver, features: np.ndarray, errors: np.ndarray, reg: float, forget: float
) -> bool:
    """:func:`rls_block_step`'s update of the weights and of ``P`` on the rows to learn;
    ``False``, and nothing changed, when a value would not be finite."""
    m = len(features)
    phi = np.hstack([features, np.ones((m, 1))])
    if not (np.isfinite(phi).all() and np.isfinite(errors).all()):
        return False
    inverse = solver.inverse
    p_phi = inverse @ phi.T  # (F, m)
    system = phi @ p_phi
    system[np.diag_indices(m)] += forget ** np.arange(1, m + 1)  # forget^m D^-1
    try:
        gains = np.linalg.solve(system, p_phi.T).T  # K = P Phi^T S^-1 (S symmetric)
    except np.linalg.LinAlgError:
        return False
    if not np.isfinite(gains).all():
        return False
    update = (gains @ errors).T  # (n_outputs, F)
    solver.weight += update[:, :-1].astype(np.float32)
    solver.bias += update[:, -1].astype(np.float32)
    inverse -= gains @ p_phi.T
    inverse *= forget**-m
    _symmetrize(inverse)
    if forget != 1.0:
        for _ in range(m):
            _refresh_prior(solver, (1.0 - forget) * reg)
    return True


def _leads_rows(scores: np.ndarray, targets: np.ndarray, margin: float) -> np.ndarray:
    """:func:`_leads` of each row (one-hot ``targets``)."""
    if scores.shape[1] < 2:
        return np.zeros(len(scores), dtype=bool)
    labels = targets.argmax(1)
    rows = np.arange(len(scores))
    own = scores[rows, labels]
    others = scores.copy()
    others[rows, labels] = -np.inf
    return own - others.max(1) > margin


def _restart(solver: _Solver, reg: float, forget: float) -> float:
    """Set ``P`` back to the prior ``I / reg`` (the weights kept), for the sample in
    ``solver.phi``: return its denominator and leave ``P phi`` in ``solver.p_phi``. A last
    resort: rounding can make ``P`` indefinite (``phi^T P phi < 0``), after which every
    step would be refused and the readout would stop learning for good."""
    inverse = solver.inverse
    inverse[...] = 0.0
    np.fill_diagonal(inverse, 1.0 / reg)
    np.matmul(inverse, solver.phi, solver.p_phi)
    return forget + float(solver.phi.dot(solver.p_phi))


def _leads(scores: np.ndarray, target: np.ndarray, margin: float) -> bool:
    """Whether the score of the class of the one-hot ``target`` leads every other score by
    more than ``margin`` (never with fewer than two scores).

    Examples
    --------
    >>> _leads(np.array([0.9, 0.05]), np.array([1.0, 0.0]), 0.8)
    True
    >>> _leads(np.array([0.6, 0.3]), np.array([1.0, 0.0]), 0.8), _leads(np.ones(1), np.ones(1), 1)
    (False, False)
    """
    if len(scores) < 2:
        return False
    label = int(target.argmax())
    own = scores[label]
    scores[label] = -math.inf
    lead = own - scores.max()
    scores[label] = own
    return bool(lead > margin)


def _refresh_prior(solver: _Solver, rate: float) -> None:
    """Give back to ``A = P^-1`` the penalty that forgetting takes from it, ``rate`` on its
    diagonal per sample: every ``REFRESH_EVERY`` samples, ``REFRESH_EVERY * width * rate`` on
    one diagonal entry, each in turn, by a rank-one update of ``P`` (Sherman-Morrison). Plain
    forgetting divides ``P`` by ``forget`` every sample, so directions the data leave
    unexcited grow without bound (wind-up) and the readout turns ill-conditioned: rounding
    differences in the features then move its outputs by 1e-3 instead of 1e-7. Every
    ``SYMMETRIZE_EVERY`` samples, ``P`` is also made exactly symmetric again."""
    count = int(solver.count)
    solver.count[()] = count + 1
    if count % SYMMETRIZE_EVERY == SYMMETRIZE_EVERY - 1:
        _symmetrize(solver.inverse)
    if count % REFRESH_EVERY != REFRESH_EVERY - 1:
        return
    inverse = solver.inverse
    index = count // REFRESH_EVERY % len(inverse)
    rho = REFRESH_EVERY * len(inverse) * rate
    column = inverse[index].copy()  # (P symmetric: its row is its column)
    _dger(-rho / (1.0 + rho * column[index]), column, column, a=inverse.T, overwrite_a=True)


def _symmetrize(inverse: np.ndarray) -> None:
    """Make ``inverse`` exactly symmetric, in place: ``(P + P^T) / 2`` (numpy buffers the
    overlapping transpose)."""
    inverse += inverse.T
    inverse *= 0.5


def keep_inverse(optimizer: torch.optim.Optimizer, saved: dict) -> None:
    """Put back ``P`` (float64) and the count (int64) of ``saved`` (the ``state_dict`` just
    loaded into ``optimizer``), which ``load_state_dict`` casts to their parameter's float32
    like a moment.

    Examples
    --------
    >>> from tpsgd_stream.engine.network import Network
    >>> net = Network.mlp(2, (3,), 2, seed=0)
    >>> _ = rls_step(net, np.ones(3), np.array([1.0, 0.0], np.float32))
    >>> optimizer = net.optimizers[net.output_index]
    >>> saved = optimizer.state_dict()
    >>> optimizer.load_state_dict(saved)
    >>> state = optimizer.state[net.layers[-1].weight]
    >>> state[RLS_KEY].dtype, state[COUNT_KEY].dtype
    (torch.float32, torch.float32)
    >>> keep_inverse(optimizer, saved)
    >>> state = optimizer.state[net.layers[-1].weight]
    >>> state[RLS_KEY].dtype, state[COUNT_KEY].dtype
    (torch.float64, torch.int64)
    """
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for index, entry in saved.get("state", {}).items():
        for key in (RLS_KEY, COUNT_KEY):
            if key in entry:
                optimizer.state[params[int(index)]][key] = entry[key].clone()
