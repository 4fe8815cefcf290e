"""The :class:`Rule` interface, the registry of rule names, and helpers shared by the rules.

A rule owns everything that is particular to it: the fixed matrix or learned tensor it keeps
per layer (:meth:`Rule.init_state`), how that state grows when classes arrive
(:meth:`Rule.grow`), the layer's ``delta`` (:meth:`Rule.delta`) and how an update is applied
(:meth:`Rule.apply`). The networks call these hooks and never ask which rule they hold.

A subclass with a ``name`` registers itself in :data:`RULES` when it is defined.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
from torch import nn

from ..projection import PROJECTION_KINDS, Projection, step_matrix

__all__ = [
    "Rule",
    "RuleState",
    "RowDelta",
    "RULES",
    "DEFAULT_RULE",
    "MODES",
    "get_rule",
    "canonical_name",
    "dense_delta",
]

TARGET_ON = ("activation", "preactivation")
MODES = ("local", "backprop", "perturbation")
"""How the network trains a layer under a rule: from the rule's own ``delta`` (``local``), from
the ``delta`` of the layer above (``backprop``), or from forward passes (``perturbation``)."""

DEFAULT_RULE = "tpsgd_l2_gated"
"""The rule of every entry point that is not given one (see ``README.md``, the rules table)."""

Backward = Callable[[torch.Tensor], torch.Tensor]
"""Multiplies a gradient with respect to ``a`` by ``sigma'(z)`` (one fused kernel)."""


def _through(act, z: torch.Tensor, a: torch.Tensor) -> Backward:
    """``g -> g * sigma'(z)`` for this layer, as one fused kernel."""
    return lambda grad: act.backward(grad, z, a)


def _flat(matrix: torch.Tensor) -> torch.Tensor:
    """``(n_rows, *units)`` -> ``(n_rows, prod(units))`` (a 2-d ``matrix`` as it is)."""
    return matrix if matrix.dim() == 2 else matrix.flatten(1)  # (0 rows too)


def _unflat(grad: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``(rows, prod(units))`` -> ``(rows, *units)`` with the units of ``like``."""
    return grad if like.dim() == 2 else grad.reshape(grad.shape[0], *like.shape[1:])


def _project(signal: torch.Tensor, matrix: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``signal @ matrix`` shaped like the layer output ``like``."""
    return _unflat(torch.mm(signal, _flat(matrix)), like)


class RowDelta(NamedTuple):
    """A ``delta`` that is zero outside ``rows``: ``values`` holds only those rows.

    A gated rule returns it so that the layer's weight gradient is computed from the samples
    that still learn (``values^T @ x[rows]``) instead of a mostly-zero minibatch.

    Examples
    --------
    >>> RowDelta(torch.tensor([1]), torch.ones(1, 2)).dense(like=torch.zeros(3, 2))
    tensor([[0., 0.],
            [1., 1.],
            [0., 0.]])
    """

    rows: torch.Tensor
    values: torch.Tensor

    def dense(self, like: torch.Tensor) -> torch.Tensor:
        """The full ``delta``, zeros outside ``rows``, shaped like ``like``."""
        return like.new_zeros(like.shape).index_copy_(0, self.rows, self.values)


def dense_delta(delta: torch.Tensor | RowDelta, like: torch.Tensor) -> torch.Tensor:
    """``delta`` as a full tensor shaped like ``like`` (a :class:`RowDelta` filled with zeros).

    Examples
    --------
    >>> dense_delta(torch.ones(2, 1), like=torch.zeros(2, 1)).tolist()
    [[1.0], [1.0]]
    """
    return delta.dense(like=like) if isinstance(delta, RowDelta) else delta


@dataclass
class RuleState:
    """What a rule keeps for one layer: a fixed matrix generator, a learned tensor, or both.

    ``param`` (a local head, say) is trained by the layer's optimizer and saved with the network
    as ``heads.<layer index>``; ``seed`` and ``stream`` regenerate the layer's random matrices.

    Examples
    --------
    >>> RuleState(seed=0, stream=1).param is None
    True
    """

    seed: int = 0
    stream: int = 0
    projection: Projection | None = None
    param: nn.Parameter | None = None


class _Registry(dict):
    """Rule names -> classes; old names resolve to new ones with a ``DeprecationWarning``.

    Iteration lists current names only; ``in`` and ``[]`` accept the old ones too.
    """

    def __init__(self) -> None:
        super().__init__()
        self.aliases: dict[str, str] = {}

    def canonical(self, name: str, *, stacklevel: int = 3) -> str:
        new = self.aliases.get(name) if isinstance(name, str) else None
        if new is None:
            return name
        warnings.warn(
            f"Rule {name!r} was renamed {new!r}; the old name will be removed.",
            DeprecationWarning,
            stacklevel=stacklevel,
        )
        return new

    def __contains__(self, name: object) -> bool:
        return super().__contains__(name) or name in self.aliases

    def __getitem__(self, name: str) -> type[Rule]:
        return super().__getitem__(self.canonical(name))

    def get(self, name, default=None):
        return super().get(self.canonical(name), default)


RULES: _Registry = _Registry()
"""Every registered rule by name (old names still look up, with a ``DeprecationWarning``)."""


def canonical_name(name: str) -> str:
    """The current name of rule ``name`` (a ``DeprecationWarning`` for an old one).

    Examples
    --------
    >>> canonical_name("tpsgd_l2")
    'tpsgd_l2'
    """
    return RULES.canonical(name)


class Rule:
    """Base of all update rules: what a hidden layer learns from, and how.

    Subclasses set ``name`` (registered in :data:`RULES` when the class is defined; pass
    ``register=False`` in the class statement to stay out) and override :meth:`delta`; a rule
    with a different state or update overrides the other hooks.

    ``default_activation``, ``default_lr``, ``default_hidden_lr_scale`` and
    ``default_readout_solver`` are the hidden activation, the learning rate (for Adam), the
    hidden layers' multiplier of it and the per-sample readout's solver that the estimators
    train this rule with when the user gives none (``activation=None``, ``lr=None``,
    ``hidden_lr_scale=None``, ``readout_solver=None``): a rule whose signal never shrinks
    (``drtp``, ``sdfa``) needs a saturating activation, a cross-entropy readout a smaller step,
    backprop a readout trained on the loss its gradients come from.
    ``Network`` itself never reads them.

    Parameters
    ----------
    projection
        Kind of the rule's fixed random matrix (see
        :class:`~tpsgd_stream.engine.projection.Projection`); ``None`` takes the rule's default.
    scale
        Multiplier of the matrix entries; ``None`` takes the rule's default.
    target_on
        ``"activation"`` (compare ``sigma(z)`` with the target, as the paper) or
        ``"preactivation"`` (compare ``z``).

    Examples
    --------
    >>> from tpsgd_stream.engine.rules import TPSGDL2
    >>> rule = TPSGDL2(projection="uniform", target_on="preactivation")
    >>> rule.projection, rule.target_on, rule == TPSGDL2(projection="uniform",
    ...                                                     target_on="preactivation")
    ('uniform', 'preactivation', True)
    """

    name: ClassVar[str] = "rule"
    aliases: ClassVar[tuple[str, ...]] = ()  # old names, kept working with a warning
    mode: ClassVar[str] = "local"  # one of MODES
    needs_error: ClassVar[bool] = False  # True: delta reads the output error (dfa, sdfa)
    trains_output: ClassVar[bool] = False  # True: also decides the output layer's update
    reads_classes: ClassVar[bool] = False  # True: a softmax over classes (cross-entropy only)
    trains_cells: ClassVar[bool] = True  # False: cannot train recurrent cells
    default_projection: ClassVar[str | None] = "normal"
    default_activation: ClassVar[str] = "leaky_relu"  # the estimators' when not given one
    default_lr: ClassVar[float] = 1e-2  # the estimators' (Adam) when not given one
    # the estimators' multiplier of lr for the hidden layers when not given one (their readout
    # learning from each sample: benchmarks/rule_defaults.py, short_streams.py)
    default_hidden_lr_scale: ClassVar[float] = 1.0
    # how the estimators' readout learns from each sample when not told: "rls" (least squares)
    # or "optimizer" (a gradient step on the network's loss)
    default_readout_solver: ClassVar[str] = "rls"
    # descriptions kept for old callers (the engine reads the hooks instead)
    is_local: ClassVar[bool] = True
    uses_error: ClassVar[bool] = False
    perturbative: ClassVar[bool] = False
    discrete: ClassVar[bool] = False
    learns_head: ClassVar[bool] = False

    def __init_subclass__(cls, register: bool = True, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if cls.mode not in MODES:
            raise TypeError(f"{cls.__name__}.mode must be one of {MODES}, got {cls.mode!r}.")
        if cls.__module__.startswith(f"{__package__}."):  # pickles name the public path
            cls.__module__ = __package__
        cls.is_local = cls.mode != "backprop"
        cls.uses_error = cls.needs_error
        cls.perturbative = cls.mode == "perturbation"
        if register and "name" in cls.__dict__:
            RULES[cls.name] = cls
            RULES.aliases.update({old: cls.name for old in cls.__dict__.get("aliases", ())})

    def __init__(
        self,
        *,
        projection: str | None = None,
        scale: float | None = None,
        target_on: str = "activation",
    ):
        if target_on not in TARGET_ON:
            raise ValueError(f"target_on must be one of {TARGET_ON}, got {target_on!r}.")
        if projection is not None and projection not in PROJECTION_KINDS:
            raise ValueError(
                f"Unknown projection kind {projection!r}; expected one of {PROJECTION_KINDS}."
            )
        if scale is not None and not (
            isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0
        ):
            raise ValueError(f"scale must be a positive finite number or None, got {scale!r}.")
        self.projection = projection or self.default_projection
        self.scale = scale
        self.target_on = target_on

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(projection={self.projection!r}, scale={self.scale!r}, "
            f"target_on={self.target_on!r})"
        )

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash((type(self), self.projection, self.scale, self.target_on))

    # ------------------------------------------------------------------ checks and set-up
    def check_loss(self, loss: str) -> None:
        """Refuse an output ``loss`` this rule cannot train with (a ``ValueError``)."""
        if self.reads_classes and loss != "cross_entropy":
            raise ValueError(f"rule {self.name!r} needs loss='cross_entropy'.")

    def prepare_layer(self, layer: nn.Module) -> None:
        """Adjust a layer's freshly initialised parameters (nothing by default)."""

    # ----------------------------------------------------------------------- layer state
    def default_scale(self, n_units: int) -> float:
        """Scale of the matrix entries when ``scale`` is not given."""
        return 1.0

    def make_projection(self, n_units: int, *, seed: int, stream: int) -> Projection | None:
        """The fixed matrix this rule uses on a layer of ``n_units`` outputs."""
        if self.projection is None:
            return None
        scale = self.scale if self.scale is not None else self.default_scale(n_units)
        return Projection(self.projection, scale=scale, seed=seed, stream=stream)

    def init_state(
        self, units: tuple[int, ...], n_classes: int, *, seed: int, stream: int, device
    ) -> RuleState:
        """The state of a layer whose outputs have shape ``units``, made on its first step."""
        projection = self.make_projection(math.prod(units), seed=seed, stream=stream)
        return RuleState(seed=seed, stream=stream, projection=projection)

    def restore_state(
        self, value: torch.Tensor, *, seed: int, stream: int, device
    ) -> RuleState | None:
        """A state able to receive a saved learned tensor shaped like ``value``; ``None``: this
        rule learns none (loading it then fails as an unexpected key)."""
        return None

    def grow(self, state: RuleState, n_new: int, *, device) -> None:
        """Make room for ``n_new`` new classes (fixed matrices regenerate their rows: nothing)."""

    def init_grown(self, layer: nn.Module, *, dim: int, start: int, seed: int) -> None:
        """Initialise what ``layer`` just grew: its weights from index ``start`` on along
        ``dim`` (``0``: output units of new classes, ``1``: input columns of new features).

        Nothing by default: they stay at zero, so the outputs do not change. ``seed`` is the
        layer's; a rule that draws should draw each new index from its own seed, so that
        growing one at a time or all at once gives the same weights.
        """

    def matrix(
        self, state: RuleState, n_classes: int, units: tuple[int, ...], *, device
    ) -> torch.Tensor | None:
        """The matrix :meth:`delta` receives: here the fixed ``P`` (or ``B``), ``n_classes``
        rows shaped ``units``; ``None`` for a rule without one."""
        if state.projection is None:
            return None
        return state.projection.matrix(n_classes, units, device=device)

    def step_matrix(
        self, n_classes: int, n_units: int, *, seed: int, stream: int, step: int, device
    ) -> torch.Tensor | None:
        """A recurrent cell's matrix at time ``step``, regenerated on the spot."""
        if self.projection is None:
            return None
        scale = self.scale if self.scale is not None else self.default_scale(n_units)
        return step_matrix(
            self.projection,
            n_classes,
            n_units,
            seed=seed,
            stream=stream,
            step=step,
            scale=scale,
            device=device,
        )

    # --------------------------------------------------------------------------- update
    def delta(
        self,
        *,
        z: torch.Tensor,
        a: torch.Tensor,
        act,
        target: torch.Tensor,
        error: torch.Tensor | None,
        matrix: torch.Tensor | None,
    ) -> torch.Tensor | RowDelta:
        """``dL/dz`` of this layer, averaged over the minibatch.

        ``act`` is the layer's activation, ``error`` the output error (when
        :attr:`needs_error`), ``matrix`` what :meth:`matrix` gave. A :class:`RowDelta` says
        that only its rows learn.
        """
        raise NotImplementedError

    def layer_delta(self, out, state: RuleState, *, train: bool) -> torch.Tensor | RowDelta:
        """The layer's ``delta`` from what :meth:`delta` returned; a rule that also learns its
        state writes the state's gradient here when ``train`` (nothing to do by default)."""
        return out

    def apply(self, layer: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Turn the gradients in the layer's ``.grad`` into an update (an optimizer step)."""
        fast_step = getattr(optimizer, "fast_step", None)
        if fast_step is None or not fast_step():
            optimizer.step()

    def estimate(self, params: list[torch.Tensor], loss_of, *, seed: int) -> list[torch.Tensor]:
        """With ``mode = "perturbation"``: gradients of ``loss_of()`` for ``params``, from
        forward passes only."""
        raise NotImplementedError(f"rule {self.name!r} does not train by perturbation.")

    def after_update(self, params: list[torch.Tensor], *, seed: int) -> None:
        """With ``mode = "perturbation"``: adjust ``params`` after their update (nothing)."""

    def _compared(self, z, a, act) -> tuple[torch.Tensor, Backward | None]:
        """What the target is compared with, and how its gradient reaches ``z``."""
        if self.target_on == "activation":
            return a, _through(act, z, a)
        return z, None


def get_rule(rule: str | Rule, **kwargs) -> Rule:
    """A :class:`Rule` from its name (``"tpsgd_l2"``) or an instance (returned as is).

    An old name (``"tpsgd_head"``) gives the renamed rule, with a ``DeprecationWarning``.

    Examples
    --------
    >>> get_rule("drtp")
    DRTP(projection='orthogonal', scale=None, target_on='activation')
    """
    if isinstance(rule, Rule):
        return rule
    if rule not in RULES:
        raise ValueError(f"Unknown rule {rule!r}; expected one of {sorted(RULES)} or a Rule.")
    return dict.__getitem__(RULES, RULES.canonical(rule))(**kwargs)
