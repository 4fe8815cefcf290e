r"""Elman recurrent layers trained with local rules over time, or with BPTT.

The paper's cell (its eq. 5) is ``H_{t+1} = sigma(H_t W_H + b_H + X_t W_X + b_X)``. A local rule
gives every time step its own ``delta_t`` from the label through a fixed matrix ``B_t``
(regenerated from the seed at each step, never stored), e.g. for tpSGD-l1
``delta_t = sign(H_{t+1} - y* B_t) * H_{t+1} (1 - H_{t+1})``. The pseudo-gradients
``H_t^T delta_t`` (for ``W_H``) and ``delta_t^T X_t`` (for ``W_X``, stored ``(hidden, in)`` as
``Dense.weight``, so the code computes ``X_t W_X^T``) are summed over the steps as they come, so
the memory a local rule holds does not grow with the sequence length. Only the ``bp`` rule
(back-propagation through time) keeps the unrolled sequence.

A readout (linear, or with one hidden layer) on the last state is trained with the true loss.

Beyond the paper, ``credit_steps=K`` sends each step's local ``delta_t`` back through ``W_H``
over the ``K - 1`` steps before it (truncated local credit; memory O(K), not O(T); see
BENCHMARKS.md, "Recurrent tables").
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable

import torch
from torch import nn

from .activations import Activation, get_activation
from .base import BaseNetwork
from .layers import Dense, _check_sizes
from .losses import output_error, output_loss
from .network import Network
from .optim import pad_optimizer_state
from .rules import DEFAULT_RULE, RULES, Rule, dense_delta, get_rule
from .seeding import derive_seed

__all__ = [
    "WEIGHT_LAYOUT",
    "ElmanCell",
    "RecurrentNetwork",
    "recurrent_rules",
    "upgrade_weight_layout",
]

# Layout of ElmanCell.weight_x: 2 is (hidden, in), as Dense.weight; 1 (releases before it) was
# (in, hidden). Saved sequence models record it; pickles and state dicts of layout 1 still load.
WEIGHT_LAYOUT = 2


def recurrent_rules() -> tuple[str, ...]:
    """Names of the rules that train :class:`RecurrentNetwork` cells: all but those that learn
    a head per layer (``local_head``) or train by weight perturbation (``forward_grad``).

    Examples
    --------
    >>> "fixed_readout_ce" in recurrent_rules(), "local_head" in recurrent_rules()
    (True, False)
    """
    return tuple(sorted(name for name, rule in RULES.items() if _trains_cells(rule)))


def _trains_cells(rule: Rule | type[Rule]) -> bool:
    """Whether ``rule`` (an instance or a class) can train recurrent cells."""
    return rule.trains_cells


class ElmanCell(nn.Module):
    """``H_{t+1} = sigma(H_t W_H + b_H + X_t W_X^T + b_X)`` with ``W_H`` and ``W_X`` kept apart.

    ``weight_x`` is laid out ``(hidden_size, input_size)``, as :class:`~.layers.Dense`'s
    ``weight`` (a new input feature is a new column); ``weight_h`` multiplies the state from the
    right. A state dict or pickle of the earlier ``(input_size, hidden_size)`` layout loads
    transposed (a state dict by its metadata version, or by its shape when it has none).

    Examples
    --------
    >>> cell = ElmanCell(3, 4)
    >>> cell.linear(torch.ones(2, 3), torch.zeros(2, 4)).shape
    torch.Size([2, 4])
    """

    _version = WEIGHT_LAYOUT  # the state dict's metadata version (torch's default was 1)

    def __init__(self, input_size: int, hidden_size: int, *, activation: str = "sigmoid"):
        super().__init__()
        self.input_size, self.hidden_size = int(input_size), int(hidden_size)
        self.activation = get_activation(activation).name
        self.weight_layout = WEIGHT_LAYOUT  # (absent from pickles of layout 1)
        self.weight_x = nn.Parameter(torch.zeros(self.hidden_size, self.input_size))
        self.bias_x = nn.Parameter(torch.zeros(self.hidden_size))
        self.weight_h = nn.Parameter(torch.zeros(self.hidden_size, self.hidden_size))
        self.bias_h = nn.Parameter(torch.zeros(self.hidden_size))
        self.reset_parameters(torch.Generator().manual_seed(0))

    def extra_repr(self) -> str:
        return f"{self.input_size} -> {self.hidden_size}, {self.activation}"

    @property
    def act(self) -> Activation:
        return get_activation(self.activation)

    def reset_parameters(self, generator: torch.Generator) -> None:
        """U(-1/sqrt(hidden), 1/sqrt(hidden)) for every parameter, as ``torch.nn.RNN``.

        ``weight_x`` is drawn ``(input_size, hidden_size)`` and transposed: the draws of the
        earlier layout, so a seed gives the same cell as it always did.
        """
        bound = 1.0 / math.sqrt(self.hidden_size)
        with torch.no_grad():
            for name, param in self.named_parameters():
                shape = param.shape[::-1] if name == "weight_x" else param.shape
                draw = (torch.rand(shape, generator=generator) * 2 - 1) * bound
                param.copy_(draw.T if name == "weight_x" else draw)

    def grow_inputs(self, n_new: int) -> None:
        """Append ``n_new`` input features with zero weights (the states do not change)."""
        with torch.no_grad():
            pad = self.weight_x.data.new_zeros(self.hidden_size, int(n_new))
            self.weight_x.data = torch.cat([self.weight_x.data, pad], dim=1)
        self.input_size += int(n_new)

    def linear(self, x_t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """The pre-activation ``z_t`` of the next state."""
        return nn.functional.linear(x_t, self.weight_x, self.bias_x) + torch.addmm(
            self.bias_h, h, self.weight_h
        )

    def accumulate(self, x_t: torch.Tensor, h: torch.Tensor, delta: torch.Tensor) -> None:
        """Add this step's pseudo-gradients: ``delta^T X_t`` to W_X, ``H_t^T delta`` to W_H."""
        for param, grad in (
            (self.weight_x, delta.T @ x_t),
            (self.weight_h, h.T @ delta),
            (self.bias_x, delta.sum(0)),
            (self.bias_h, delta.sum(0)),
        ):
            if param.grad is None:
                param.grad = grad
            else:
                param.grad.add_(grad)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, *args, **kwargs):
        key = prefix + "weight_x"
        weight = state_dict.get(key)
        if isinstance(weight, torch.Tensor) and self._old_layout(
            weight, local_metadata.get("version")
        ):
            state_dict[key] = weight.T
        super()._load_from_state_dict(state_dict, prefix, local_metadata, *args, **kwargs)

    def _old_layout(self, weight: torch.Tensor, version: int | None) -> bool:
        """Whether a saved ``weight_x`` is ``(input_size, hidden_size)``: by the metadata
        version a state dict carries, else by its shape (a square one is taken as current)."""
        if version is not None:
            return version < WEIGHT_LAYOUT
        old = (self.input_size, self.hidden_size)
        return tuple(weight.shape) == old and old != tuple(self.weight_x.shape)

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        if "weight_layout" not in state:  # pickled with weight_x as (in, hidden)
            with torch.no_grad():
                self.weight_x.data = self.weight_x.data.T.contiguous()
            self.weight_layout = WEIGHT_LAYOUT
            self._moments_to_transpose = True  # (the network transposes its optimizer's)


def _reverse(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """Reverse each sequence in time within its own length (padding stays at the end)."""
    if lengths is None:
        return x.flip(1)
    steps = torch.arange(x.shape[1], device=x.device)
    index = torch.where(steps < lengths[:, None], lengths[:, None] - 1 - steps, steps)
    return x.gather(1, index[:, :, None].expand_as(x))


class RecurrentNetwork(BaseNetwork):
    """Stacked (and optionally bidirectional) Elman layers with a readout on the last state.

    Parameters
    ----------
    input_size, hidden_size, n_outputs
        Features per time step, units per recurrent layer, classes (or regression outputs).
    num_layers
        Stacked recurrent layers; the upper ones read the lower one's states.
    bidirectional
        Add a layer reading each sequence backwards; the readout sees both last states.
    rule
        ``"tpsgd_l2_gated"`` (the default: target projection, each sample stopped once its
        state is nearest its class's target), ``"tpsgd_l1"`` (the paper's eq. 5, binary
        ``B_t``), ``"drtp"`` (orthogonal ``B_t``), ``"tpsgd_l2"``, ``"fixed_readout_ce"``,
        ``"dfa"``, ``"sdfa"`` or ``"bp"`` (BPTT); any name in :func:`recurrent_rules`.
    readout_hidden
        ``()`` for a linear readout, ``(n,)`` for one hidden layer of ``n`` (trained by backprop
        within the readout, from the true loss).
    activation
        Of the recurrent cells (``"sigmoid"`` as the paper; ``"tanh"`` as an option).
    train_recurrent
        ``False`` keeps the recurrent layers at their random initialisation and trains only the
        readout (the paper's control).
    credit_steps
        Truncated local credit (beyond the paper): each step's local ``delta_t`` is also sent
        back through ``W_H`` over the ``credit_steps - 1`` steps before it,
        ``delta_{t-j-1} = (delta_{t-j} W_H^T) * sigma'(z_{t-j-1})``, so a state is also
        shaped to help the states after it meet their targets. ``1`` is the paper's rule.
        Memory grows with ``credit_steps``, never with the sequence length.
    max_recurrent_norm
        After each update, rescale ``W_H`` so that its Frobenius norm is at most this times
        ``sqrt(hidden_size)``; ``None`` leaves it free (local rules can grow it without bound).
    clip_grad_norm
        With ``rule="bp"``: rescale the BPTT gradients of all parameters (recurrent layers and
        readout together) so that their joint L2 norm is at most this, before each optimizer
        step (``torch.nn.utils.clip_grad_norm_``); ``None`` does not clip. Local rules ignore
        it.

    Examples
    --------
    >>> net = RecurrentNetwork(2, 8, 3, rule="tpsgd_l1", seed=0)
    >>> x, y = torch.randn(4, 5, 2), torch.tensor([0, 1, 2, 0])
    >>> net.train_step(x, net.one_hot(y)).shape
    torch.Size([4, 3])
    >>> net.predict(x).shape
    torch.Size([4])
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        n_outputs: int,
        *,
        num_layers: int = 1,
        bidirectional: bool = False,
        rule: str | Rule = DEFAULT_RULE,
        readout_hidden: Iterable[int] = (),
        activation: str = "sigmoid",
        loss: str = "cross_entropy",
        optimizer: str = "adam",
        lr: float = 1e-3,
        seed: int = 0,
        device: str | torch.device = "cpu",
        train_recurrent: bool = True,
        credit_steps: int = 1,
        max_recurrent_norm: float | None = None,
        clip_grad_norm: float | None = None,
    ):
        super().__init__()
        _check_sizes(
            type(self).__name__,
            input_size=input_size,
            hidden_size=hidden_size,
            num_layers=num_layers,
        )
        if not isinstance(bidirectional, bool):
            raise ValueError(f"bidirectional must be True or False, got {bidirectional!r}.")
        self._setup(loss=loss, optimizer=optimizer, lr=lr, seed=seed, device=device)
        self.rule = get_rule(rule)
        if not _trains_cells(self.rule):  # (a custom rule, e.g. a LocalLoss, may well)
            raise ValueError(
                f"rule {self.rule.name!r} cannot train recurrent cells (a learned head per layer, "
                f"or weight perturbation, are not implemented for them); expected one of "
                f"{recurrent_rules()}."
            )
        self.num_layers, self.bidirectional = int(num_layers), bool(bidirectional)
        self.train_recurrent = bool(train_recurrent)
        if int(credit_steps) < 1:
            raise ValueError(f"credit_steps must be an int >= 1, got {credit_steps!r}.")
        if max_recurrent_norm is not None and not max_recurrent_norm > 0:
            raise ValueError(
                f"max_recurrent_norm must be positive or None, got {max_recurrent_norm!r}."
            )
        if clip_grad_norm is not None and not clip_grad_norm > 0:
            raise ValueError(f"clip_grad_norm must be positive or None, got {clip_grad_norm!r}.")
        self.credit_steps = int(credit_steps)
        self.clip_grad_norm = clip_grad_norm
        self.max_recurrent_norm = max_recurrent_norm
        directions = 2 if self.bidirectional else 1
        self.cells = nn.ModuleList()
        for layer in range(self.num_layers):
            n_in = int(input_size) if layer == 0 else int(hidden_size) * directions
            for _ in range(directions):
                cell = ElmanCell(n_in, hidden_size, activation=activation)
                cell.reset_parameters(
                    torch.Generator().manual_seed(derive_seed(self.seed, len(self.cells)))
                )
                self.cells.append(cell)
        readout_layers = _readout_layers(int(hidden_size) * directions, readout_hidden, n_outputs)
        self.readout = Network(
            readout_layers,
            rule="bp",
            loss=loss,
            optimizer=optimizer,
            lr=lr,
            seed=derive_seed(self.seed, 1_000_003),
            device=self.device,
        )
        self.cells.to(self.device)
        self.optimizers = [self._optimizer(cell) for cell in self.cells]
        self.held_bytes = 0  # peak bytes of activations held by the last train_step

    @property
    def n_outputs(self) -> int:
        return self.readout.n_outputs

    @property
    def input_size(self) -> int:
        return self.cells[0].input_size

    def grow_outputs(self, n_new: int) -> None:
        """Add ``n_new`` classes: readout units with zero weights; each ``B_t`` gains rows."""
        self.readout.grow_outputs(n_new)

    def grow_inputs(self, n_new: int) -> None:
        """Add ``n_new`` input features with zero weights in the first layer (both directions)."""
        directions = 2 if self.bidirectional else 1
        for c in range(directions):
            self.cells[c].grow_inputs(n_new)
            pad_optimizer_state(self.optimizers[c], self.cells[c].weight_x)

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        for cell, optimizer in zip(self.cells, self.optimizers):
            if cell.__dict__.pop("_moments_to_transpose", False):
                param = cell.weight_x
                if param in optimizer.state:
                    optimizer.state[param] = _transpose_moments(optimizer.state[param])

    # ------------------------------------------------------------------------------- forward
    def encode(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """The readout's input: the last state of the top layer (both directions)."""
        x, lengths = self._check(x, lengths)
        with torch.no_grad():
            return self._run(x, lengths, target=None, error=None)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of padded sequences ``x`` of shape ``(n, T, input_size)``."""
        return self.readout.forward(self.encode(x, lengths))

    def predict(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Class indices (classification) or outputs (regression)."""
        with torch.inference_mode():
            out = self.forward(x, lengths)
        return out.argmax(1) if self.loss == "cross_entropy" else out

    # ------------------------------------------------------------------------------ training
    def train_step(
        self,
        x: torch.Tensor,
        target: torch.Tensor,
        lengths: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One minibatch of sequences ``(n, T, d)`` (padded; ``lengths`` gives each length).

        Returns the logits from the pre-update weights.
        """
        x, lengths = self._check(x, lengths)
        target = self._as_batch(target, "target")
        self._check_target(x, target, check_finite=True)
        if self.rule.mode == "backprop" and self.train_recurrent:
            return self._bptt_step(x, target, lengths)
        with torch.no_grad():
            error = None
            if self.rule.needs_error and self.train_recurrent:
                error = output_error(self.forward(x, lengths), target, self.loss)
            train = target if self.train_recurrent else None
            features = self._run(x, lengths, target=train, error=error)
            if self.train_recurrent:
                for optimizer in self.optimizers:
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                self._cap_recurrent_norm()
            return self.readout.train_step(features, target)

    def _cap_recurrent_norm(self) -> None:
        if self.max_recurrent_norm is None:
            return
        with torch.no_grad():
            for cell in self.cells:
                limit = self.max_recurrent_norm * math.sqrt(cell.hidden_size)
                norm = torch.linalg.matrix_norm(cell.weight_h)
                if norm > limit:
                    cell.weight_h.mul_(limit / norm)

    def _check(self, x: torch.Tensor, lengths: torch.Tensor | None):
        if isinstance(x, torch.Tensor) and x.dim() == 3 and x.shape[0] == 0:
            raise ValueError("Empty minibatch: x has 0 sequences.")
        x = self._as_batch(x, "x")
        if x.dim() != 3 or x.shape[2] != self.cells[0].input_size:
            raise ValueError(
                f"x must have shape (n, T, {self.cells[0].input_size}), got {tuple(x.shape)}."
            )
        if x.shape[1] == 0:
            raise ValueError("Empty sequences: x has 0 time steps.")
        if lengths is not None:
            lengths = torch.as_tensor(lengths, device=self.device)
            if lengths.dtype.is_floating_point and not torch.equal(lengths, lengths.round()):
                raise ValueError(f"lengths must be whole numbers of steps, got {lengths}.")
            lengths = lengths.long()
            if (
                lengths.shape != (x.shape[0],)
                or (lengths < 1).any()
                or (lengths > x.shape[1]).any()
            ):
                raise ValueError(
                    f"lengths must hold {x.shape[0]} values in [1, {x.shape[1]}], got {lengths}."
                )
        return x, lengths

    def _run(self, x, lengths, *, target, error) -> torch.Tensor:
        """Run every layer; with a ``target``, accumulate the local pseudo-gradients."""
        mask = None
        if lengths is not None:
            mask = torch.arange(x.shape[1], device=self.device)[None, :] < lengths[:, None]
        if not self.bidirectional:
            cells = list(range(len(self.cells)))
            last, _, self.held_bytes = self._scan(cells, x, mask, target, error, False)
            return last
        # A bidirectional stack holds each lower layer's output sequence for the layer above.
        sequence, held = x, 0
        for layer in range(self.num_layers):
            keep = layer < self.num_layers - 1
            stored = 0 if layer == 0 else _nbytes(sequence)
            last_f, out_f, peak_f = self._scan([2 * layer], sequence, mask, target, error, keep)
            reversed_in = _reverse(sequence, lengths)
            last_b, out_b, peak_b = self._scan(
                [2 * layer + 1], reversed_in, mask, target, error, keep
            )
            held = max(held, stored + _nbytes(reversed_in) + max(peak_f, peak_b))
            if keep:
                sequence = torch.cat([out_f, _reverse(out_b, lengths)], dim=2)
        self.held_bytes = held
        return torch.cat([last_f, last_b], dim=1)

    def _scan(self, cell_ids, x, mask, target, error, keep_outputs):
        """Time-major pass of a stack of cells.

        Returns the top cell's last state, its output sequence (``keep_outputs``) and the peak
        bytes of activations held at one step (plus the kept outputs).
        """
        n = x.shape[0]
        states = [torch.zeros(n, self.cells[c].hidden_size, device=self.device) for c in cell_ids]
        # truncated local credit: per cell, [input, previous state, slope, delta summed so
        # far] of the last credit_steps steps
        history = [deque() for _ in cell_ids]
        outputs = []
        peak = 0
        for t in range(x.shape[1]):
            inp = x[:, t]
            valid = None if mask is None else mask[:, t : t + 1]
            for k, c in enumerate(cell_ids):
                cell = self.cells[c]
                z = cell.linear(inp, states[k])
                a = cell.act.forward(z)
                if valid is not None:
                    a = torch.where(valid, a, states[k])
                if target is not None:
                    slope = cell.act.derivative(z, a)
                    delta = self.step_delta(c, t, z, a, slope, target, error)
                    if valid is not None:
                        delta = delta * valid
                    if self.credit_steps == 1:
                        cell.accumulate(inp, states[k], delta)
                    else:
                        self._send_back(cell, delta, history[k])
                        history[k].append([inp, states[k], slope, delta])
                    held = [t_ for entry in history[k] for t_ in entry]
                    peak = max(peak, _nbytes(inp, states[k], z, a, delta, *held))
                states[k] = a
                inp = a
            if keep_outputs:
                outputs.append(inp)
        for k, c in enumerate(cell_ids):  # the last steps' credit is complete
            for inp, h, _, delta in history[k]:
                self.cells[c].accumulate(inp, h, delta)
        kept = torch.stack(outputs, 1) if keep_outputs else None
        return states[-1], kept, peak + (0 if kept is None else _nbytes(kept))

    def _send_back(self, cell: ElmanCell, delta: torch.Tensor, history: deque) -> None:
        """Truncated local credit: ``delta_t`` through ``W_H`` to the steps kept in ``history``.

        Each kept step sums the deltas it receives; a step that no later step can reach any
        more (``credit_steps`` behind) turns its sum into weight gradients once, so a step
        costs ``credit_steps - 1`` products with ``W_H`` and one outer product. Padding sits
        at the end of a sequence, so a row with a nonzero ``delta`` was valid at every
        earlier step: no mask is needed on the way back.
        """
        if len(history) == self.credit_steps:
            inp, h, _, total = history.popleft()
            cell.accumulate(inp, h, total)
        for entry in reversed(history):
            delta = (delta @ cell.weight_h.T) * entry[2]
            entry[3] = entry[3] + delta

    def step_delta(self, c, t, z, a, slope, target, error=None) -> torch.Tensor:
        """The local rule's ``delta_t`` of cell ``c`` at step ``t`` (``B_t`` made on the spot)."""
        rule_ = self.rule
        matrix = rule_.step_matrix(
            self.n_outputs, z.shape[1], seed=self.seed, stream=c, step=t, device=self.device
        )
        act = self.cells[c].act
        delta = rule_.delta(z=z, a=a, act=act, target=target, error=error, matrix=matrix)
        # a gated rule's rows: the cell's gradient and the credit sent back need every row
        return dense_delta(delta, like=z)

    def _bptt_step(self, x, target, lengths) -> torch.Tensor:
        """Back-propagation through time: the unrolled graph is kept (memory grows with T)."""
        saved = [0]

        def pack(tensor):
            saved[0] += tensor.numel() * tensor.element_size()
            return tensor

        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            features = self._run(x, lengths, target=None, error=None)
            h = features
            for layer in self.readout.layers:
                h = layer(h)
            loss = output_loss(h, target, self.loss)
            loss.backward()
        self.held_bytes = saved[0]
        optimizers = [*self.optimizers, *self.readout.optimizers.values()]
        if self.clip_grad_norm is not None:
            params = [
                p for opt in optimizers for group in opt.param_groups for p in group["params"]
            ]
            torch.nn.utils.clip_grad_norm_(params, self.clip_grad_norm)
        for optimizer in optimizers:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return h.detach()


def _transpose_moments(state: dict) -> dict:
    """An optimizer's per-parameter state with its matrices (Adam's moments, SGD's momentum)
    transposed."""
    return {
        k: v.T.contiguous() if torch.is_tensor(v) and v.dim() == 2 else v for k, v in state.items()
    }


def upgrade_weight_layout(network: dict, optimizers: list) -> tuple[dict, list]:
    """A :class:`RecurrentNetwork` state dict and its optimizers' state dicts (one per cell,
    in order, then any others) saved with ``weight_x`` as ``(input_size, hidden_size)``
    (layout 1), in today's layout: every ``cells.N.weight_x`` and its optimizer state
    transposed. The inputs are not changed.

    Examples
    --------
    >>> net = RecurrentNetwork(2, 3, 2)
    >>> old = {k: v.T if k.endswith("weight_x") else v for k, v in net.state_dict().items()}
    >>> new, _ = upgrade_weight_layout(old, [])
    >>> torch.equal(new["cells.0.weight_x"], net.cells[0].weight_x)
    True
    """
    network, optimizers = dict(network), list(optimizers)
    index = [name for name, _ in ElmanCell(1, 1).named_parameters()].index("weight_x")
    for key, value in network.items():
        parts = key.split(".")
        if len(parts) != 3 or parts[0] != "cells" or parts[2] != "weight_x":
            continue
        network[key] = value.T.contiguous()
        c = int(parts[1])
        if c >= len(optimizers):
            continue
        opt = optimizers[c]
        param_id = [p for group in opt["param_groups"] for p in group["params"]][index]
        if param_id in opt["state"]:
            state = dict(opt["state"])
            state[param_id] = _transpose_moments(state[param_id])
            optimizers[c] = {**opt, "state": state}
    return network, optimizers


def _readout_layers(n_in: int, hidden: Iterable[int], n_outputs: int) -> list[Dense]:
    sizes = [n_in, *(int(h) for h in hidden)]
    layers = [Dense(a, b, activation="leaky_relu") for a, b in zip(sizes[:-1], sizes[1:])]
    return [*layers, Dense(sizes[-1], int(n_outputs), activation="identity")]


def _nbytes(*tensors: torch.Tensor) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)
