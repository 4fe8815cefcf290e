"""Refusing an update that would leave a network non-finite: snapshot, step, check, undo.

A value can be finite on the way in and still overflow inside an update (a feature of 1e30
makes a gradient of 1e30, whose square, Adam's second moment, is infinite in float32). Such an
update must not stick: :func:`refuse_non_finite` copies the parameters and the optimizer state
into a flat buffer kept per network before the step (one ``foreach`` copy), copies them into
a second one after it and sums it (NaN and infinities show in the sum) and, only when the check
fails, copies everything back and raises :class:`NonFiniteUpdateError`. The two buffers cost
two more copies of the network's parameters and optimizer state, made again when these
change (a new class or feature), never during a step once made.
An exception raised inside the step undoes it the same way.
"""

from __future__ import annotations

import math
import operator
import weakref
from collections.abc import Iterable

import torch
from torch import nn

from . import _ops

__all__ = ["NonFiniteUpdateError", "all_finite", "refuse_non_finite"]


class NonFiniteUpdateError(ValueError):
    """An update made a weight or an optimizer state NaN or infinite; it was undone."""


def all_finite(tensors: list[torch.Tensor]) -> bool:
    """Whether every entry of float ``tensors`` is finite (one max-norm per tensor).

    Examples
    --------
    >>> big, nan = torch.tensor(3.0e38), torch.tensor([0.0, float("nan")])
    >>> all_finite([torch.ones(3), big]), all_finite([nan])
    (True, False)
    """
    if not tensors:
        return True
    norms = _ops.max_abs_all(tensors)  # max |x|: never overflows on finite x
    return bool(torch.stack(norms).isfinite().all())


def _state(optimizers: list) -> list[tuple[dict, object, torch.Tensor]]:
    """``(state dict, key, tensor)`` of every tensor in the optimizers' state (moments and
    step counts: an exact integer count is copied back exactly too)."""
    return [
        (state, key, value)
        for optimizer in optimizers
        for state in optimizer.state.values()
        for key, value in state.items()
        if type(value) is torch.Tensor
    ]


class _Flat:
    """Two preallocated flat buffers, with views into each shaped like a list of tensors:
    copying them all into one is a single ``foreach`` copy, and one sum of the other then
    checks them all."""

    def __init__(self, tensors: list[torch.Tensor]):
        self.tensors = tensors  # (held: the buffers are laid out for these very tensors)
        sizes = [t.numel() for t in tensors]
        self.snapshot = torch.empty(sum(sizes), dtype=tensors[0].dtype, device=tensors[0].device)
        self.check = torch.empty_like(self.snapshot)
        self.copies = [v.view(t.shape) for v, t in zip(self.snapshot.split(sizes), tensors)]
        self.checked = [v.view(t.shape) for v, t in zip(self.check.split(sizes), tensors)]

    def matches(self, tensors: list[torch.Tensor]) -> bool:
        """Whether the buffers are laid out for ``tensors``: the same objects of the same
        shapes (a parameter grown in place keeps its identity, not its shape)."""
        return (
            len(tensors) == len(self.tensors)
            and all(map(operator.is_, tensors, self.tensors))
            and all(t.shape == v.shape for t, v in zip(tensors, self.copies))
        )


# per module: its flat buffers (weak keys: never pickled, gone with the module)
_BUFFERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _buffer(module: nn.Module, tensors: list[torch.Tensor]) -> _Flat | None:
    """The module's flat buffers for ``tensors`` (made again when they change, e.g. after
    growth); ``None`` for tensors of mixed dtypes or devices."""
    flat = _BUFFERS.get(module)
    if flat is not None and flat.matches(tensors):
        return flat
    if not tensors or len({(t.dtype, t.device) for t in tensors}) > 1:
        return None
    flat = _BUFFERS[module] = _Flat(tensors)
    return flat


def _tensors(optimizers: list) -> tuple[list, list[tuple[dict, object]]]:
    """The parameters the optimizers update, then their state tensors of the parameters'
    dtypes; and the ``(state dict, key)`` of each state tensor.

    State of another dtype is no optimizer step's to change (a least-squares readout's
    float64 inverse Gram matrix and int64 count, kept beside a layer's moments): left out,
    it neither costs a copy nor sends the check down its slow path for mixed dtypes."""
    params = [p for opt in optimizers for group in opt.param_groups for p in group["params"]]
    dtypes = {p.dtype for p in params}
    state = [entry for entry in _state(optimizers) if entry[2].dtype in dtypes]
    return params + [t for _, _, t in state], [(d, k) for d, k, _ in state]


class _Snapshot:
    """What a step may change: parameters, optimizer state, learned heads, step counters."""

    def __init__(self, module: nn.Module, optimizers: list):
        self.module, self.optimizers = module, optimizers
        self.tensors, self.slots = _tensors(optimizers)
        self.flat = _buffer(module, self.tensors)
        if self.flat is None:
            self.copies = [t.clone() for t in self.tensors]
        else:
            _ops.copy_all(self.flat.copies, self.tensors)
            self.copies = self.flat.copies
        self.had_state = [set(map(id, opt.state)) for opt in optimizers]
        self.groups = [len(opt.param_groups) for opt in optimizers]
        self.counters = [getattr(opt, "_fast_steps", None) for opt in optimizers]
        self.steps = getattr(module, "perturbation_steps", None)

    def _same_tensors(self) -> bool:
        """Whether the step made no parameter or state entry (optimizers update in place)."""
        return all(
            len(opt.state) == len(had) and len(opt.param_groups) == groups
            for opt, had, groups in zip(self.optimizers, self.had_state, self.groups)
        )

    def finite(self) -> bool:
        """Whether parameters and optimizer state (those made by the step too) are finite."""
        flat = self.flat
        if flat is not None and self._same_tensors():
            _ops.copy_all(flat.checked, self.tensors)
            if math.isfinite(flat.check.sum().item()):
                return True  # (a sum of huge finite values may overflow: then look closer)
        tensors, _ = _tensors(self.optimizers)
        return all_finite([t for t in tensors if t.is_floating_point()])

    def restore(self) -> None:
        """Put back every value and remove what the step created (state, heads, groups)."""
        _ops.copy_all(self.tensors, self.copies)
        n_params = len(self.tensors) - len(self.slots)
        for (state, key), value in zip(self.slots, self.tensors[n_params:]):
            state[key] = value  # (an optimizer may have replaced a state tensor)
        for optimizer, had, groups, counter in zip(
            self.optimizers, self.had_state, self.groups, self.counters
        ):
            for param in [p for p in optimizer.state if id(p) not in had]:
                del optimizer.state[param]
            del optimizer.param_groups[groups:]  # (a learned head made by the step)
            if counter is not None:
                optimizer._fast_steps = counter
        kept = {id(t) for t in self.tensors[:n_params]}
        for net in self.module.modules():  # learned heads made by the step (networks' heads)
            for key, head in list(getattr(net, "heads", {}).items()):
                if id(head) not in kept:
                    del net.heads[key]
                    getattr(net, "_states", {}).pop(int(key), None)  # its rule state
        if self.steps is not None:
            self.module.perturbation_steps = self.steps


class refuse_non_finite:
    """Run the update in the ``with`` block; undo it if it fails or leaves a NaN or an infinity.

    Raises :class:`NonFiniteUpdateError` (a ``ValueError``) after undoing a non-finite update;
    any other exception from the block is re-raised after undoing it. The block runs without
    gradient tracking. (A class rather than a generator: a network enters it on every update,
    and a ``contextlib.contextmanager`` costs several times more per entry.)

    Examples
    --------
    >>> layer = nn.Linear(2, 1); opt = torch.optim.SGD(layer.parameters(), lr=1.0)
    >>> before = layer.weight.clone()
    >>> try:
    ...     with refuse_non_finite(layer, [opt]):
    ...         layer.weight.grad = torch.full((1, 2), float("inf")); opt.step()
    ... except NonFiniteUpdateError as err:
    ...     print(err)
    the update made a weight or an optimizer state NaN or infinite; it was undone
    >>> torch.equal(layer.weight, before)
    True
    """

    __slots__ = ("module", "optimizers", "snapshot", "no_grad")

    def __init__(self, module: nn.Module, optimizers: Iterable[torch.optim.Optimizer]):
        self.module, self.optimizers = module, list(optimizers)
        self.snapshot: _Snapshot | None = None
        self.no_grad: torch.no_grad | None = None

    def __enter__(self) -> None:
        if torch.is_grad_enabled():  # (a network's train_step already runs without it)
            self.no_grad = torch.no_grad()
            self.no_grad.__enter__()
        self.snapshot = _Snapshot(self.module, self.optimizers)

    def __exit__(self, kind, error, traceback) -> bool:
        try:
            if kind is not None:
                self.snapshot.restore()
                return False  # (the exception goes on)
            if not self.snapshot.finite():
                self.snapshot.restore()
                raise NonFiniteUpdateError(
                    "the update made a weight or an optimizer state NaN or infinite; it was undone"
                )
            return False
        finally:
            if self.no_grad is not None:
                self.no_grad.__exit__(None, None, None)
