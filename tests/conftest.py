"""Shared helpers for the engine tests: hand-written maths and gradient capture.

Everything here is written with plain torch ops so that the tests check the library against an
independent computation, never against its own helpers.
"""

from __future__ import annotations

import os
import weakref

import pytest
import torch
from torch.nn import functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from tpsgd_stream import Conv2d, Dense, Flatten, MaxPool2d

# The tests use tiny tensors: one intra-op thread avoids thread-pool overhead that made
# each op ~10x slower on a busy 2-core machine (results do not depend on this).
torch.set_num_threads(1)
# The suite never downloads: a missing archive must skip (or fail under TPSGD_REQUIRE_DATA).
os.environ["TPSGD_DOWNLOAD"] = "0"

LEAKY_SLOPE = 0.1
REQUIRE_DATA = "TPSGD_REQUIRE_DATA"  # set by CI, whose checkout has ../shared/data beside it


def skip_without_data(name: str) -> None:
    """Skip a test whose archive ``name`` (e.g. ``"mnist.npz"``) is missing, as users without
    the shared data need; where ``$TPSGD_REQUIRE_DATA`` is set (CI), fail instead, so that a
    broken data path cannot turn these tests into silent skips."""
    from tpsgd_stream import datasets

    if (datasets.data_dir() / name).is_file():
        return
    message = f"{name} not found in {datasets.data_dir()} (set {datasets.DATA_ENV})"
    if os.environ.get(REQUIRE_DATA):
        pytest.fail(f"{message}, and {REQUIRE_DATA} is set: the shared data must be there.")
    pytest.skip(message)


@pytest.fixture
def no_data(tmp_path, monkeypatch):
    """No data folder, an empty cache and no downloads: what a user without the data has."""
    monkeypatch.setenv("TPSGD_DATA", str(tmp_path / "no-data"))
    monkeypatch.setenv("TPSGD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TPSGD_DOWNLOAD", "0")


def act_by_hand(name: str, z: torch.Tensor) -> torch.Tensor:
    """``sigma(z)`` written out."""
    if name == "leaky_relu":
        return torch.where(z > 0, z, LEAKY_SLOPE * z)
    if name == "relu":
        return torch.where(z > 0, z, torch.zeros_like(z))
    if name == "tanh":
        return torch.tanh(z)
    if name == "sigmoid":
        return 1.0 / (1.0 + torch.exp(-z))
    if name == "identity":
        return z
    raise AssertionError(name)


def slope_by_hand(name: str, z: torch.Tensor) -> torch.Tensor:
    """``sigma'(z)`` written out."""
    if name == "leaky_relu":
        return torch.where(z > 0, torch.ones_like(z), torch.full_like(z, LEAKY_SLOPE))
    if name == "relu":
        return (z > 0).float()
    if name == "tanh":
        return 1.0 - torch.tanh(z) ** 2
    if name == "sigmoid":
        s = 1.0 / (1.0 + torch.exp(-z))
        return s * (1.0 - s)
    if name == "identity":
        return torch.ones_like(z)
    raise AssertionError(name)


def softmax_by_hand(o: torch.Tensor) -> torch.Tensor:
    e = torch.exp(o - o.max(1, keepdim=True).values)
    return e / e.sum(1, keepdim=True)


def seeded(*shape: int, seed: int = 0) -> torch.Tensor:
    """A standard normal tensor from a local generator (the global RNG is never touched)."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def one_hot(labels, n_classes: int) -> torch.Tensor:
    return F.one_hot(torch.as_tensor(labels), n_classes).float()


def capture_grads(net) -> dict[int, dict[str, torch.Tensor]]:
    """Record the ``.grad`` of every parameter each time a layer's optimizer steps.

    Returns a dict filled in place: ``{layer index: {"weight": grad, "bias": grad}}``.
    """
    captured: dict[int, dict[str, torch.Tensor]] = {}
    for index, optimizer in net.optimizers.items():
        layer = net.layers[index]
        original = optimizer.step

        def step(*args, _index=index, _layer=layer, _original=original, **kwargs):
            captured[_index] = {
                "weight": _layer.weight.grad.detach().clone(),
                "bias": _layer.bias.grad.detach().clone(),
            }
            return _original(*args, **kwargs)

        optimizer.step = step
    return captured


def params_of(net) -> dict[int, dict[str, torch.Tensor]]:
    """Detached copies of every trainable layer's weight and bias."""
    return {
        i: {
            "weight": net.layers[i].weight.detach().clone(),
            "bias": net.layers[i].bias.detach().clone(),
        }
        for i in net.trainable_indices
    }


def state_copy(net) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def autograd_forward(net, params, x: torch.Tensor, *, upto: int | None = None):
    """Re-run ``net``'s layers with plain torch functional ops on leaf copies ``params``.

    Returns the list of every layer's output (``outputs[i]`` is layer ``i``'s output).
    """
    outputs = []
    h = x
    last = len(net.layers) - 1 if upto is None else upto
    for i, layer in enumerate(net.layers[: last + 1]):
        if isinstance(layer, Dense):
            w, b = params[i]
            h = act_by_hand(layer.activation, h @ w.T + b)
        elif isinstance(layer, Conv2d):
            w, b = params[i]
            z = F.conv2d(h, w, b, stride=layer.stride, padding=layer.padding)
            h = act_by_hand(layer.activation, z)
        elif isinstance(layer, MaxPool2d):
            h = F.max_pool2d(h, layer.kernel_size, layer.stride)
        elif isinstance(layer, Flatten):
            h = h.reshape(h.shape[0], -1)
        else:  # pragma: no cover - a layer kind the tests do not know
            raise AssertionError(type(layer))
        outputs.append(h)
    return outputs


def leaf_params(net) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Leaf copies (requires_grad) of every trainable layer's weight and bias."""
    return {
        i: (
            net.layers[i].weight.detach().clone().requires_grad_(True),
            net.layers[i].bias.detach().clone().requires_grad_(True),
        )
        for i in net.trainable_indices
    }


def cross_entropy_by_hand(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    log_p = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    return -(target * log_p).sum(1).mean()


class LiveBytes(TorchDispatchMode):
    """Peak bytes of the storages that torch ops allocate inside the ``with`` block and that
    are still referenced: what a step holds, measured by torch itself rather than by the
    library's own ``activation_bytes`` bookkeeping.

    >>> with LiveBytes() as held:
    ...     a = torch.ones(4) + 1  # 16 bytes
    ...     b = a * 2  # 16 more, both alive
    >>> held.peak
    32
    """

    def __init__(self):
        super().__init__()
        self.live = self.peak = 0
        self._storages: dict[int, int] = {}

    def _free(self, ptr: int) -> None:
        self.live -= self._storages.pop(ptr, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                ptr = t.untyped_storage().data_ptr()
                if ptr and ptr not in self._storages:  # a new storage (views and in-place: not)
                    self._storages[ptr] = t.untyped_storage().nbytes()
                    self.live += self._storages[ptr]
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(t, self._free, ptr)
        return out


def as_old_file(model, folder, params=(), entries=()):
    """Load ``model`` from a file saved without constructor ``params`` and payload
    ``entries``, as an earlier release wrote it (the checksum made again)."""
    from tpsgd_stream.models import _persistence

    model.save(folder / "new.pt")
    payload = torch.load(folder / "new.pt", weights_only=True)
    for key in params:
        del payload["params"][key]
    for key in entries:
        del payload[key]
    payload["checksum"] = _persistence.digest(payload)
    torch.save(payload, folder / "old.pt")
    return type(model).load(folder / "old.pt")
