"""A network trained layer by layer: every layer updates as soon as its output exists.

:meth:`Network.train_step` runs one forward pass. Each hidden layer with a local rule computes
its ``delta`` from its own output and the label, writes its gradients and steps its own
optimizer, then hands its output (computed with the pre-update weights) to the next layer and
is forgotten. Only the output layer sees the true loss. A run of ``bp`` layers is held until
the first layer above it with a local rule (or the output layer) back-propagates its ``delta``
through the run: an all-``bp`` network is plain backprop, and its memory grows with depth,
while a local-rule network holds one layer at a time.

What a layer's rule keeps (a fixed matrix, a learned local head) is made by the rule on the
layer's first step (:meth:`~tpsgd_stream.engine.rules.Rule.init_state`) and updated through the
rule's hooks; the network never asks which rule it holds, only how the rule trains a layer
(its ``mode``: from its own ``delta``, from the layer above, or from forward passes). A learned
tensor of a rule is saved with the network as ``heads.<layer index>``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from .base import BaseNetwork, resolve_device
from .guard import refuse_non_finite
from .layers import (
    GLOBAL_POOLS,
    Conv1d,
    Conv2d,
    Dense,
    Flatten,
    MaxPool2d,
    Trainable,
    Transform,
    _check_sizes,
)
from .losses import output_delta, output_error, output_loss
from .optim import pad_optimizer_state
from .projection import Projection
from .rules import DEFAULT_RULE, RowDelta, Rule, RuleState, get_rule
from .seeding import derive_seed

__all__ = ["Network", "SCHEDULES", "derive_seed", "resolve_device"]

SCHEDULES = ("simultaneous", "sequential")


class Network(BaseNetwork):
    """An ordered stack of layers, each trained by its own rule.

    Parameters
    ----------
    layers
        :class:`~tpsgd_stream.engine.layers.Trainable` layers and parameter-free
        :class:`~tpsgd_stream.engine.layers.Transform` layers; the last one must be a
        ``Dense`` output layer with the ``"identity"`` activation (its outputs are the logits).
    rule
        Default rule of the hidden layers whose own ``rule`` is ``None`` (a name from
        :data:`~tpsgd_stream.engine.rules.RULES` or a :class:`~tpsgd_stream.engine.rules.Rule`);
        by default target projection, ``"tpsgd_l2_gated"``.
    loss
        The output layer's true loss: ``"cross_entropy"`` (targets are one-hot labels),
        ``"mse"`` or ``"huber"`` (targets are real vectors).
    optimizer, lr
        One optimizer per trainable layer (``"adam"`` or ``"sgd"``) with this learning rate.
    seed
        Seeds every layer's initial weights and every projection: two networks with the same
        seed and data train identically.
    device
        Where parameters and projections live (``"cpu"``, ``"cuda"``).

    Examples
    --------
    >>> import torch
    >>> net = Network.mlp(4, (8,), 3, rule="tpsgd_l2", seed=0)
    >>> x, y = torch.randn(16, 4), torch.arange(16) % 3
    >>> logits = net.train_step(x, net.one_hot(y))
    >>> logits.shape, net.predict(x).shape
    (torch.Size([16, 3]), torch.Size([16]))
    """

    def __init__(
        self,
        layers: Sequence[nn.Module],
        *,
        rule: str | Rule = DEFAULT_RULE,
        loss: str = "cross_entropy",
        optimizer: str = "adam",
        lr: float = 1e-3,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ):
        super().__init__()
        _check_layers(layers)
        self._setup(loss=loss, optimizer=optimizer, lr=lr, seed=seed, device=device)
        self.layers = nn.ModuleList(layers)
        # a plain tuple of the same modules: indexing a ModuleList costs ~1 us per call, and a
        # training step indexes its layers a dozen times (layers are grown in place, never
        # replaced, so the tuple stays valid)
        self._stack = tuple(layers)
        self.default_rule = get_rule(rule)
        self.output_index = len(layers) - 1
        self.rules: list[Rule | None] = [self._rule_of(i) for i in range(len(layers))]
        for i, rule_ in enumerate(self.rules):
            if rule_ is not None:
                try:
                    rule_.check_loss(loss)
                except ValueError as err:
                    raise ValueError(f"Layer {i}: {err}") from None
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Trainable):
                layer.reset_parameters(torch.Generator().manual_seed(derive_seed(self.seed, i)))
                if self.rules[i] is not None:
                    self.rules[i].prepare_layer(layer)
        self.to(self.device)
        self.optimizers = {
            i: self._optimizer(layer)
            for i, layer in enumerate(self.layers)
            if isinstance(layer, Trainable)
        }
        # each hidden layer's rule state, made by its rule on the layer's first step
        self._states: dict[int, RuleState] = {}
        # the rules' learned tensors (local heads) by layer index, saved with the network
        self.heads = nn.ParameterDict()
        # how each trainable layer turns gradients into an update (the output layer's rule, or
        # plain optimizer steps)
        self._updaters = {i: self.rules[i] or _PLAIN for i in self.optimizers}
        # what a step over all trainable layers needs, fixed by the rules
        self._all_trainable = frozenset(self.optimizers)
        self._all_stop = self._last_needed(self._all_trainable)
        self._error_users = frozenset(
            i for i, r in enumerate(self.rules) if r is not None and r.needs_error
        )
        self._perturbed = tuple(i for i in range(len(layers)) if self._mode(i) == "perturbation")
        self.activation_bytes = 0  # peak bytes of activations held by the last train_step
        self.epochs_seen = 0  # epochs run by tpsgd_stream.engine.training.fit (seeds its shuffles)
        self.perturbation_steps = 0  # forward-gradient updates so far (seeds the directions)
        self._forward_peaks: dict = {}  # (input shape, first layer) -> bytes a forward holds

    # ----------------------------------------------------------------- construction helpers
    @classmethod
    def mlp(
        cls,
        n_inputs: int,
        hidden_layer_sizes: Iterable[int],
        n_outputs: int,
        *,
        activation: str = "leaky_relu",
        **kwargs,
    ) -> Network:
        """A multi-layer perceptron ``n_inputs -> hidden... -> n_outputs``."""
        sizes = [int(n_inputs), *(int(h) for h in hidden_layer_sizes)]
        layers: list[nn.Module] = [
            Dense(a, b, activation=activation) for a, b in zip(sizes[:-1], sizes[1:])
        ]
        layers.append(Dense(sizes[-1], int(n_outputs), activation="identity"))
        return cls(layers, **kwargs)

    @classmethod
    def cnn(
        cls,
        image_shape: tuple[int, int, int],
        n_outputs: int,
        *,
        channels: Iterable[int] = (16, 16),
        kernel_size: int = 5,
        pool: int = 0,
        activation: str = "leaky_relu",
        hidden: Iterable[int] = (),
        **kwargs,
    ) -> Network:
        """Conv2d layers (``channels``, each ``kernel_size`` wide, optional max-pool), Dense
        layers of ``hidden`` units, and a linear readout.

        The default is the tpSGD paper's Table 3 net: two Conv2d 16@5x5 and a linear readout;
        ``channels=(..., 64), hidden=(256,)`` ends in the paper's image adaptor (Conv2d 64@5x5,
        Dense 256, Dense n_outputs).
        A kernel wider than the map it slides over is cut to the map's smaller side, and a
        ``pool`` is skipped once the map is smaller than it, so any image size gives a network.
        """
        if not (
            isinstance(image_shape, tuple)
            and len(image_shape) == 3
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in image_shape)
        ):
            raise ValueError(
                f"image_shape must be (channels, height, width) of positive ints, such as "
                f"(1, 28, 28), got {image_shape!r}."
            )
        if isinstance(pool, bool) or not isinstance(pool, int) or pool < 0:
            raise ValueError(f"pool must be an int >= 0 (0: none), got {pool!r}.")
        c, h, w = image_shape
        layers: list[nn.Module] = []
        for out in channels:
            k = min(kernel_size, h, w)
            layers.append(Conv2d(c, out, k, activation=activation))
            c, h, w = out, h - k + 1, w - k + 1
            if pool and min(h, w) >= pool:
                layers.append(MaxPool2d(pool))
                h, w = h // pool, w // pool
        layers.append(Flatten())
        sizes = [c * h * w, *(int(units) for units in hidden)]
        layers += [Dense(a, b, activation=activation) for a, b in zip(sizes[:-1], sizes[1:])]
        layers.append(Dense(sizes[-1], int(n_outputs), activation="identity"))
        return cls(layers, **kwargs)

    @classmethod
    def cnn1d(
        cls,
        in_channels: int,
        length: int,
        n_outputs: int,
        *,
        channels: Iterable[int] = (32, 32),
        kernel_size: int = 5,
        dilation: int | Iterable[int] = 1,
        padding: int | str = "same",
        pool: str = "avg",
        hidden: Iterable[int] = (),
        activation: str = "leaky_relu",
        **kwargs,
    ) -> Network:
        """Conv1d layers over time, global temporal pooling, Dense layers and a linear readout,
        for sequences ``(n, in_channels, length)``.

        ``channels`` gives each Conv1d's filters, each ``kernel_size`` taps apart by
        ``dilation`` (an int, or one per layer such as ``(1, 2, 4)``) with ``padding``
        (``"same"`` keeps the length); ``pool`` (``"avg"`` or ``"max"``) pools each channel
        over time, so the readout's size does not depend on ``length``; then Dense layers of
        ``hidden`` units. Other keywords (``rule``, ``seed``, ...) go to :class:`Network`.

        Examples
        --------
        >>> net = Network.cnn1d(1, 40, 10, channels=(8, 8), dilation=(1, 2), rule="local_head")
        >>> x, y = torch.randn(16, 1, 40), torch.arange(16) % 10
        >>> net.train_step(x, net.one_hot(y)).shape
        torch.Size([16, 10])
        """
        _check_sizes("cnn1d", in_channels=in_channels, length=length, n_outputs=n_outputs)
        if pool not in GLOBAL_POOLS:
            raise ValueError(f"cnn1d: pool must be one of {sorted(GLOBAL_POOLS)}, got {pool!r}.")
        channels = list(channels)
        dilations = [dilation] * len(channels) if isinstance(dilation, int) else list(dilation)
        if len(dilations) != len(channels):
            raise ValueError(
                f"cnn1d: dilation must be an int or one per layer ({len(channels)}), "
                f"got {dilation!r}."
            )
        layers: list[nn.Module] = []
        c, t = in_channels, length
        for i, (out, d) in enumerate(zip(channels, dilations)):
            conv = Conv1d(c, out, kernel_size, dilation=d, padding=padding, activation=activation)
            if t < conv.min_length:
                raise ValueError(
                    f"cnn1d: layer {i} reads {conv.receptive_field} steps, but its input has only "
                    f"{t}; use padding='same', a smaller kernel_size or dilation, or fewer layers."
                )
            layers.append(conv)
            c, t = out, conv.output_length(t)
        layers.append(GLOBAL_POOLS[pool]())
        sizes = [c, *(int(units) for units in hidden)]
        layers += [Dense(a, b, activation=activation) for a, b in zip(sizes[:-1], sizes[1:])]
        layers.append(Dense(sizes[-1], int(n_outputs), activation="identity"))
        return cls(layers, **kwargs)

    def _rule_of(self, index: int) -> Rule | None:
        """The layer's rule (its own, else the default); ``None`` for the output layer.

        The output layer learns from the true loss, but a rule that ``trains_output``
        (``forward_grad``, ``bitflip``) also decides how it turns that loss into an update.
        """
        layer = self.layers[index]
        if not isinstance(layer, Trainable):
            return None
        rule_ = layer.rule if layer.rule is not None else self.default_rule
        if index == self.output_index and not rule_.trains_output:
            return None
        return rule_

    def _mode(self, index: int) -> str | None:
        """How layer ``index`` is trained (its rule's ``mode``); ``None`` without a rule."""
        rule_ = self.rules[index]
        return None if rule_ is None else rule_.mode

    # --------------------------------------------------------------------------- properties
    @property
    def n_outputs(self) -> int:
        return self._stack[self.output_index].out_features

    @property
    def trainable_indices(self) -> list[int]:
        return list(self.optimizers)

    def projection(self, index: int) -> Projection | None:
        """The fixed projection (or feedback) matrix generator of hidden layer ``index``.

        ``None`` for layers without one, or before the layer's first training step (a
        projection's default scale depends on the layer's number of output units, which a
        convolution knows only once it has seen an input).
        """
        state = self._states.get(index)
        return None if state is None else state.projection

    def head(self, index: int) -> nn.Parameter | None:
        """The learned local head ``(n_outputs, head units)`` of hidden layer ``index``.

        ``None`` for layers without one, or before the layer's first training step (a
        convolution's head size depends on its output map, known once it has seen an input).
        """
        state = self._states.get(index)
        return None if state is None else state.param

    @property
    def _projections(self) -> dict[int, Projection]:
        """The fixed matrices of the layers that have one (read by older callers)."""
        return {i: s.projection for i, s in self._states.items() if s.projection is not None}

    def rule_state(self, index: int) -> RuleState | None:
        """What the rule of hidden layer ``index`` keeps (``None`` before its first step)."""
        return self._states.get(index)

    def _state(self, index: int, z: torch.Tensor) -> RuleState:
        """Layer ``index``'s rule state, made by its rule on the first call."""
        state = self._states.get(index)
        if state is None:
            state = self.rules[index].init_state(
                tuple(z.shape[1:]), self.n_outputs, seed=self.seed, stream=index, device=self.device
            )
            self._adopt(index, state)
        return state

    def _adopt(self, index: int, state: RuleState) -> None:
        """Keep ``state``; its learned tensor joins the layer's optimizer and the saved state."""
        self._states[index] = state
        if state.param is not None:
            state.param.data = state.param.data.to(self.device)
            self.heads[str(index)] = state.param
            self.optimizers[index].add_param_group({"params": [state.param]})

    def multiply_adds(self, x: torch.Tensor) -> list[int]:
        """Multiply-adds of each trainable layer's forward pass on the one-sample input ``x``:
        a dense layer's weights, a convolution's weights times its output positions.

        Examples
        --------
        >>> net = Network.cnn((1, 8, 8), 10, channels=(4,), kernel_size=3)
        >>> net.multiply_adds(torch.zeros(1, 1, 8, 8))  # 4x1x3x3 weights at 6x6, then 144x10
        [1296, 1440]
        """
        macs = []
        with torch.no_grad():
            for layer in self._stack:
                x = layer(x)
                if isinstance(layer, Trainable):
                    positions = math.prod(x.shape[2:])  # 1 for a dense layer
                    macs.append(layer.weight.numel() * positions)
        return macs

    # ------------------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, *, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """The logits (no gradient tracking: this network never back-propagates through it).

        ``start``/``stop`` run only ``layers[start:stop]``: ``forward(x, stop=k)`` gives the
        input of layer ``k`` (an encoder's features), ``forward(h, start=k)`` continues from it.
        """
        with torch.no_grad():
            for layer in self._stack[start:stop]:
                x = layer(x)
        return x

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Class indices (classification) or the outputs (regression)."""
        with torch.inference_mode():
            x = self._as_batch(x, "x")
            self._check_input(x, 0)
            out = self.forward(x)
        return out.argmax(1) if self.loss == "cross_entropy" else out

    # ----------------------------------------------------------------------------- training
    def train_step(
        self,
        x: torch.Tensor,
        target: torch.Tensor,
        *,
        layers: Iterable[int] | None = None,
        start: int = 0,
        check_finite: bool = True,
    ) -> torch.Tensor | None:
        """Update the network on one minibatch, layer by layer, in one forward pass.

        Parameters
        ----------
        x
            Inputs, ``(n, ...)`` as the first layer expects.
        target
            ``(n, n_outputs)``: one-hot labels for cross-entropy, real targets otherwise.
        layers
            Indices of the layers to update (the sequential schedule trains one at a time);
            ``None`` updates all. The forward pass stops at the last layer it needs.
        start
            ``x`` is the input of layer ``start`` (e.g. cached features of a frozen encoder,
            from ``forward(x, stop=start)``); the layers below it are neither run nor trained.
        check_finite
            Refuse NaN or infinite values in ``x`` or ``target`` with a ``ValueError`` (one sum
            each; the estimators, which check every row they buffer, turn it off).

        Returns
        -------
        The logits from the pre-update weights, or ``None`` when the pass stopped early.

        Inputs of any real dtype are cast to the network's (float32); nothing is updated
        when a check fails. An update that would leave a weight or an optimizer state NaN or
        infinite (finite inputs can overflow inside it) is undone and raises
        :class:`~tpsgd_stream.engine.guard.NonFiniteUpdateError`, a ``ValueError``.
        """
        x, target = self._as_batch(x, "x"), self._as_batch(target, "target")
        self._check_target(x, target, check_finite)
        if layers is None:
            train, stop = self._all_trainable, self._all_stop
        else:
            train = set(layers)
            stop = self._last_needed(train)
        lowest = min(train)
        if not 0 <= start <= lowest:
            raise ValueError(f"start={start} must lie in [0, {lowest}] (the lowest trained).")
        self._check_input(x, start)
        with torch.no_grad(), refuse_non_finite(self, self.optimizers.values()):
            error = None
            if not self._error_users.isdisjoint(train):
                error = output_error(self.forward(x, start=start), target, self.loss)
            logits = self._local_pass(x, target, error, train, stop, start)
            perturbed = [i for i in self._perturbed if i in train]
            if perturbed:
                self._perturbation_step(x, target, perturbed, start)
            return logits

    def _perturbation_step(self, x, target, layers: list[int], start: int) -> None:
        """Update ``layers`` from forward passes only, perturbed jointly by the lowest's rule."""
        lowest = layers[0]
        rule_ = self.rules[lowest]
        h = self.forward(x, start=start, stop=lowest)
        self.activation_bytes = max(self.activation_bytes, self._forward_bytes(h, lowest))
        params = [p for i in layers for p in self.layers[i].parameters()]
        seed = derive_seed(self.seed, 7_000_003, self.perturbation_steps)
        grads = rule_.estimate(
            params,
            lambda: output_loss(self.forward(h, start=lowest), target, self.loss),
            seed=seed,
        )
        for p, g in zip(params, grads):
            p.grad = g
        for i in layers:
            self._optimize(i)
            rule_.after_update(list(self.layers[i].parameters()), seed=seed + i)
        self.perturbation_steps += 1

    @property
    def _dtype(self) -> torch.dtype:
        return self._stack[self.output_index].weight.dtype

    def _check_input(self, x: torch.Tensor, start: int) -> None:
        """A clear error for an input of the wrong width, before torch's matmul complains."""
        layer = self._stack[start]
        if isinstance(layer, Dense) and (x.dim() != 2 or x.shape[1] != layer.in_features):
            expected = f"(n, {layer.in_features})"
        elif isinstance(layer, Conv2d) and (x.dim() != 4 or x.shape[1] != layer.in_channels):
            expected = f"(n, {layer.in_channels}, height, width)"
        elif isinstance(layer, Conv1d) and not (
            x.dim() == 3 and x.shape[1] == layer.in_channels and x.shape[2] >= layer.min_length
        ):
            expected = f"(n, {layer.in_channels}, time steps >= {layer.min_length})"
        else:
            return
        raise ValueError(f"Layer {start} expects inputs of shape {expected}, got {tuple(x.shape)}.")

    def _forward_bytes(self, h: torch.Tensor, start: int) -> int:
        """Peak bytes a forward pass from layer ``start`` holds (one layer's input and output);
        measured once per input shape, since a perturbation step runs many such passes."""
        key = (tuple(h.shape), start)
        if key not in self._forward_peaks:
            peak = 0
            for layer in self._stack[start:]:
                out = layer(h)
                peak = max(peak, _held_bytes(h, out))
                h = out
            self._forward_peaks[key] = peak
        return self._forward_peaks[key]

    def _check_trainable(self, indices: Iterable[int]) -> None:
        """A clear error naming the ``indices`` that are not trainable layers."""
        unknown = set(indices) - self.optimizers.keys()
        if unknown:
            raise ValueError(f"No trainable layers at indices {sorted(unknown)}.")

    def _last_needed(self, train: set[int]) -> int:
        """The highest layer the pass must reach: each ``bp`` layer needs the next local one."""
        if not train:
            raise ValueError("layers is empty: name at least one trainable layer to update.")
        self._check_trainable(train)
        stop = max(train)
        while self._mode(stop) == "backprop":
            stop = min(i for i in self.trainable_indices if i > stop)
        return stop

    def _local_pass(self, h, target, error, train, stop, start):
        layers, rules = self._stack, self.rules
        # (index, layer, input, pre-activation) of each layer of a held bp run, bottom first
        pending: list[tuple[int, nn.Module, torch.Tensor, torch.Tensor | None]] = []
        peak = 0
        for i in range(start, stop + 1):
            layer = layers[i]
            if isinstance(layer, Transform):
                out = layer(h)
                if pending:
                    pending.append((i, layer, h, None))
                h = out
                continue
            act = layer.act
            z = layer.linear(h)
            a = act.forward(z)
            rule_ = rules[i]
            mode = None if rule_ is None else rule_.mode
            if mode == "perturbation":
                h = a  # updated after this pass, from forward passes only
                continue
            if mode == "backprop":
                pending.append((i, layer, h, z))
                h = a
                continue
            if i not in train and not pending:
                h = a
                continue
            if i == self.output_index:
                delta = output_delta(z, target, self.loss)
            else:
                state = self._state(i, z)
                matrix = rule_.matrix(state, self.n_outputs, z.shape[1:], device=self.device)
                out = rule_.delta(z=z, a=a, act=act, target=target, error=error, matrix=matrix)
                delta = rule_.layer_delta(out, state, train=i in train)
            if isinstance(delta, RowDelta):
                if not pending and i in train:  # only the rows still learning cost anything
                    peak = max(peak, _held_bytes(h, z, a, delta.values))
                    self._step(i, h.index_select(0, delta.rows), delta.values)
                    h = a
                    continue
                delta = delta.dense(like=z)
            held = _held_bytes(h, z, a, delta)
            peak = max(peak, held + sum(_held_bytes(x, z_) for _, _, x, z_ in pending))
            if pending:
                self._backprop(pending, layer.input_grad(delta, h), train)
                pending = []
            if i in train:
                self._step(i, h, delta)
            h = a
        self.activation_bytes = peak
        return h if stop == self.output_index else None

    def _backprop(self, pending, grad: torch.Tensor, train: set[int]) -> None:
        """Push ``grad`` (dL/d output of the top pending layer) down the held ``bp`` run."""
        for depth, (index, layer, x, z) in enumerate(reversed(pending)):
            lowest = depth == len(pending) - 1
            if isinstance(layer, Transform):
                grad = layer.input_grad(grad, x)
                continue
            delta = layer.act.backward(grad, z)
            if not lowest:
                grad = layer.input_grad(delta, x)
            if index in train:
                self._step(index, x, delta)

    def _step(self, index: int, x: torch.Tensor, delta: torch.Tensor) -> None:
        self._stack[index].set_grads(x, delta)
        self._optimize(index)

    def _optimize(self, index: int) -> None:
        """Update layer ``index`` from the gradients in ``.grad`` (as its rule applies them,
        an optimizer step by default), then drop them."""
        layer = self._stack[index]
        self._updaters[index].apply(layer, self.optimizers[index])
        layer.weight.grad = layer.bias.grad = None  # cheaper than zero_grad(set_to_none=True)
        state = self._states.get(index)
        if state is not None and state.param is not None:
            state.param.grad = None

    def reset_optimizer_state(self, layers: Iterable[int] | None = None) -> None:
        """Clear the optimizer state (Adam's moments and step counts) of trainable ``layers``.

        Their next step starts afresh, as from a new optimizer; a learned head's state goes
        with its layer's. Useful when the meaning of a layer's units changed (re-initialised
        weights, remapped classes), so that old moments do not push it back.

        Parameters
        ----------
        layers
            Indices of trainable layers (as :attr:`trainable_indices`); ``None`` means all.

        Examples
        --------
        >>> import torch
        >>> net = Network.mlp(4, (8,), 3, seed=0)
        >>> _ = net.train_step(torch.randn(8, 4), net.one_hot(torch.arange(8) % 3))
        >>> net.reset_optimizer_state([net.output_index])
        >>> [len(net.optimizers[i].state) for i in net.trainable_indices]
        [2, 0]
        """
        chosen = self.trainable_indices if layers is None else list(layers)
        self._check_trainable(chosen)
        for index in chosen:
            self.optimizers[index].state.clear()

    # ------------------------------------------------------------------------------ growth
    def grow_outputs(self, n_new: int) -> None:
        """Add ``n_new`` output units (new classes); existing logits and targets are unchanged
        (the new units' weights are zero unless the output rule draws them: ``bitflip``)."""
        layer = self.layers[self.output_index]
        layer.grow_outputs(n_new)
        self._init_grown(self.output_index, dim=0, n_new=n_new)
        self._pad_state(self.output_index)
        for index, state in self._states.items():  # each rule grows what it keeps
            self.rules[index].grow(state, n_new, device=self.device)
            if state.param is not None:
                pad_optimizer_state(self.optimizers[index], state.param)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """As :meth:`torch.nn.Module.load_state_dict`; first has the rules make the learned
        heads the state holds that this network has not made yet (a fresh network makes them
        on its first step), so that they are loaded too and trained by their layers'
        optimizers."""
        for key, value in state_dict.items():
            index = key.removeprefix("heads.")
            if key == index or index in self.heads or not index.isdigit():
                continue
            rule_ = self.rules[int(index)] if int(index) < len(self.rules) else None
            restored = None
            if rule_ is not None:
                restored = rule_.restore_state(
                    value, seed=self.seed, stream=int(index), device=self.device
                )
            if restored is not None:
                self._adopt(int(index), restored)
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        for key, head in self.heads.items():  # assign=True puts new tensors in
            self._states[int(key)].param = head
        return result

    def grow_inputs(self, n_new: int) -> None:
        """Add ``n_new`` input features, with zero weights (outputs unchanged) unless the first
        layer's rule draws them (``bitflip``: random levels, see :meth:`Rule.init_grown`)."""
        first = self.layers[0]
        if not isinstance(first, Dense):
            raise TypeError("Only a network whose first layer is Dense can grow its inputs.")
        first.grow_inputs(n_new)
        self._init_grown(0, dim=1, n_new=n_new)
        self._pad_state(0)

    def _init_grown(self, index: int, *, dim: int, n_new: int) -> None:
        """Let layer ``index``'s rule initialise the ``n_new`` units or columns it grew."""
        rule_ = self.rules[index]
        if rule_ is not None:
            layer = self.layers[index]
            start = layer.weight.shape[dim] - n_new
            rule_.init_grown(layer, dim=dim, start=start, seed=derive_seed(self.seed, index))

    def _pad_state(self, index: int) -> None:
        for param in self.layers[index].parameters():
            pad_optimizer_state(self.optimizers[index], param)

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state = dict(state)
        state["activation_bytes"] = 0
        return state

    def __setstate__(self, state: dict) -> None:
        if "_states" not in state:  # pickled before the rules kept their own state
            state = _rule_states_of_old(state)
        super().__setstate__(state)


_PLAIN = Rule()  # applies a layer's gradients as an optimizer step


def _rule_states_of_old(state: dict) -> dict:
    """A pickled network's ``_projections`` and ``_head_of`` as rule states."""
    state = dict(state)
    projections = state.pop("_projections", {})
    heads = state.pop("_head_of", {})
    states = {}
    for index in sorted({*projections, *heads}):
        states[index] = RuleState(
            seed=state["seed"],
            stream=index,
            projection=projections.get(index),
            param=heads.get(index),
        )
    state["_states"] = states
    rules = state["rules"]
    state["_updaters"] = {i: rules[i] or _PLAIN for i in state["optimizers"]}
    return state


def _held_bytes(*tensors: torch.Tensor | None) -> int:
    """Bytes of the elements of ``tensors`` (``None`` skipped), read from their shapes."""
    return sum(t.nbytes for t in tensors if t is not None)


def _check_layers(layers: Sequence[nn.Module]) -> None:
    if not layers:
        raise ValueError("A Network needs at least one layer.")
    for i, layer in enumerate(layers):
        if not isinstance(layer, (Trainable, Transform)):
            raise TypeError(
                f"Layer {i} is a {type(layer).__name__}; use tpsgd_stream.engine.layers (Dense, "
                f"Conv2d, Conv1d, the pools, Flatten)."
            )
    output = layers[-1]
    if not isinstance(output, Dense) or output.activation != "identity":
        raise ValueError(
            "The last layer must be Dense(..., activation='identity'): its outputs are the "
            "logits (classification) or predictions (regression)."
        )
