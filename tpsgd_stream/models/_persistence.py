"""``save`` / ``load`` for the estimators: a versioned ``torch.save`` archive.

The archive is a dict of plain Python values and tensors, so ``torch.load(path,
weights_only=True)`` reads it without unpickling arbitrary objects::

    {"format": "tpsgd-stream", "version": 2, "estimator": "TPSGDClassifier",
     "params": {...}, "seed": int, "features": [...], "network": state_dict | None,
     "n_inputs": int, "n_outputs": int, "optimizers": {layer: state_dict},
     "buffer": tensor, "buffer_y": tensor, "n_buffered": int, "n_updates": int,
     "task": {...}, "perturbation_steps": int, "train_layers": [int] | None,
     "n_skipped": int, "n_batched": int, "checksum": str}

Version 2 adds ``"checksum"``: the SHA-256 of every other entry (tensors by dtype, shape and
bytes), checked on load, since torch does not verify its archive's CRCs and a flipped bit would
otherwise load as a different weight. Version 1 files (no checksum) still load, and so do
files without ``"n_batched"`` (written before the minibatch ramp): they keep a fixed minibatch.
On load the structure is checked too (keys, types, counts within the buffer, finite
tensors): a damaged file is refused with a ``ValueError`` before any model is returned.
Loading runs ``torch.load(weights_only=True)``: no code in a file is ever executed.

Feature names and labels are stored tagged (``("py", value)``, ``("np", dtype, value)``,
``("tuple", [...])``) so that numpy scalars and tuples come back with their own types.
Projection matrices are not stored: they are regenerated from the seed.
"""

from __future__ import annotations

import errno
import hashlib
import inspect
import os

import numpy as np
import torch

from ..engine.least_squares import keep_inverse
from ..engine.rules import canonical_name

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "save",
    "load",
    "write",
    "encode",
    "decode",
    "plain_params",
    "digest",
    "shown",
    "damaged",
    "check_finite_tensors",
]

FORMAT = "tpsgd-stream"
FORMAT_VERSION = 2
READ_VERSIONS = (1, 2)  # version 1: no checksum
_SHOWN = 200  # characters of a path shown in an error message
_PLAIN = (str, int, float, bool, type(None))


def encode(value):
    """A feature name or label as a tag that ``torch.load(weights_only=True)`` accepts."""
    if type(value) in _PLAIN:
        return ("py", value)
    if isinstance(value, np.generic):
        return ("np", value.dtype.str, value.item())
    if type(value) is tuple:
        return ("tuple", [encode(v) for v in value])
    raise TypeError(
        f"Cannot save the name or label {value!r} of type {type(value).__name__}; save supports "
        f"str, int, float, bool, None, numpy scalars and tuples of these."
    )


def decode(tag):
    kind = tag[0]
    if kind == "py":
        return tag[1]
    if kind == "np":
        return np.dtype(tag[1]).type(tag[2])
    if kind == "tuple":
        return tuple(decode(t) for t in tag[1])
    raise ValueError(f"Unknown tag {kind!r} in a saved model.")


def plain_params(params: dict) -> dict:
    """``params`` with numpy scalars as Python numbers (inside tuples too), which
    ``torch.load(weights_only=True)`` reads back; a constructor accepts either.

    Examples
    --------
    >>> plain_params({"lr": np.float64(0.5), "sizes": (np.int64(4), 2), "rule": "bp"})
    {'lr': 0.5, 'sizes': (4, 2), 'rule': 'bp'}
    """
    return {name: _plain(value) for name, value in params.items()}


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return value


def save(model, path) -> None:
    net = model._net
    payload = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "estimator": type(model).__name__,
        "params": plain_params(model._get_params()),
        "seed": int(model._seed),
        "features": [encode(name) for name in model._features],
        "network": None if net is None else {k: v.cpu() for k, v in net.state_dict().items()},
        "n_inputs": model.n_inputs,
        "n_outputs": 0 if net is None else net.n_outputs,
        "optimizers": {}
        if net is None
        else {int(i): opt.state_dict() for i, opt in net.optimizers.items()},
        "buffer": torch.from_numpy(model._buffer.copy()),
        "buffer_y": torch.from_numpy(model._buffer_y.copy()),
        "n_buffered": int(model._n_buffered),
        "n_updates": int(model._n_updates),
        "n_skipped": int(model.skipped_updates),
        "n_batched": int(model._n_batched),
        "task": model._task_state(),
        "perturbation_steps": 0 if net is None else int(net.perturbation_steps),
        "train_layers": model._train_layers,
        "readout_blocks": bool(model._readout_blocks),
    }
    write(payload, path)


def shown(path, limit: int = _SHOWN) -> str:
    """``path`` for an error message: its start and end when it is longer than ``limit``."""
    text = str(path)
    if len(text) <= limit:
        return text
    return f"{text[: limit // 2]}...{text[-limit // 4 :]} ({len(text)} characters)"


def digest(payload: dict) -> str:
    """SHA-256 of every entry of ``payload`` but ``"checksum"``, in order: tensors by dtype,
    shape and bytes, containers item by item, plain values by type and ``repr``."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in payload.items() if k != "checksum"})
    return h.hexdigest()


def _feed(h, value) -> None:
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}:".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        h.update(f"D{len(value)}:".encode())
        for key, item in value.items():
            _feed(h, key)
            _feed(h, item)
    elif isinstance(value, (list, tuple)):
        h.update(f"{type(value).__name__[0]}{len(value)}:".encode())
        for item in value:
            _feed(h, item)
    elif isinstance(value, bytes):
        h.update(f"B{len(value)}:".encode())
        h.update(value)
    else:
        h.update(f"{type(value).__name__}={value!r};".encode())


def damaged(path, reason: str) -> ValueError:
    """The error of a file that torch reads but that is not an intact model (or checkpoint)."""
    return ValueError(
        f"{shown(path)} is not a readable tpsgd-stream model file (corrupted, truncated, or not "
        f"written by save()): {reason[:500]}"
    )


def check_finite_tensors(where: str, values) -> None:
    """A ``ValueError`` naming ``where`` if a floating tensor in ``values`` (nested in dicts,
    lists and tuples) holds a NaN or an infinity: a model never saves one."""
    if isinstance(values, torch.Tensor):
        if values.is_floating_point() and not bool(torch.isfinite(values).all()):
            raise ValueError(f"{where} holds NaN or infinite values")
    elif isinstance(values, dict):
        for key, value in values.items():
            check_finite_tensors(f"{where}[{key!r}]", value)
    elif isinstance(values, (list, tuple)):
        for i, value in enumerate(values):
            check_finite_tensors(f"{where}[{i}]", value)


def write(payload: dict, path) -> None:
    """``torch.save`` of ``payload`` with its checksum to a path or a binary file object, with a
    clear error for a folder, a path that cannot be written and what is not a path."""
    payload = {**payload, "checksum": digest(payload)}
    if hasattr(path, "write"):
        torch.save(payload, path)
        return
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"save() needs a file path (str or os.PathLike) or a binary file object, got "
            f"{type(path).__name__}: {shown(repr(path))}."
        )
    if os.path.isdir(path):
        raise IsADirectoryError(
            f"{shown(path)} is a directory; save() needs a file path, such as "
            f"{shown(os.path.join(path, 'model.pt'))}."
        )
    try:
        with open(path, "wb") as file:  # (Python's own OSError names the path and the cause)
            torch.save(payload, file)
    except OSError as err:
        raise type(err)(err.errno, f"save() cannot write {shown(path)}: {err.strerror}") from None


def _read(path) -> dict:
    if not hasattr(path, "read") and not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"load() needs a file path (str or os.PathLike) or a binary file object, got "
            f"{type(path).__name__}."
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as err:  # (no such file, a folder, no permission, a name too long)
        if err.errno == errno.EINVAL and (hasattr(path, "read") or os.path.isfile(path)):
            raise damaged(path, f"{type(err).__name__}: {err}") from err  # a cut archive
        raise type(err)(err.errno, f"load() cannot read {shown(path)}: {err.strerror}") from None
    except Exception as err:  # torch raises many kinds for a damaged archive
        raise damaged(path, f"{type(err).__name__}: {err}") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(
            f"{shown(path)} is a torch file, but not a tpsgd-stream model written by save()."
        )
    return payload


def read_checked(cls, path, device: str | None) -> tuple[dict, dict]:
    """The archive at ``path``, checked to be ``cls``'s in a format version this release
    reads, intact (its checksum), and the constructor parameters it stores (``device``
    replaced when given)."""
    payload = _read(path)
    version = payload.get("version")
    if type(version) is not int or version not in READ_VERSIONS:
        raise ValueError(
            f"{shown(path)} was saved in tpsgd-stream model format version {version!r}; this "
            f"version of tpsgd-stream reads format version {' or '.join(map(str, READ_VERSIONS))}"
            f". Load it with the tpsgd-stream release that wrote it and retrain or re-save from "
            f"there."
        )
    if version >= 2 and payload.get("checksum") != digest(payload):
        raise damaged(path, "its checksum does not match its contents")
    if payload.get("estimator") != cls.__name__:
        raise ValueError(
            f"{shown(path)} holds a {payload.get('estimator')}, not a {cls.__name__}: use "
            f"{payload.get('estimator')}.load()."
        )
    params = payload.get("params")
    if not isinstance(params, dict):
        raise damaged(path, "no constructor parameters")
    params = dict(params)
    if isinstance(params.get("rule"), str):  # saved under an old rule name: the new one
        params["rule"] = canonical_name(params["rule"])
    if device is not None:
        params["device"] = device
    return payload, params


_TYPES = {
    "seed": int,
    "features": list,
    "n_inputs": int,
    "n_outputs": int,
    "optimizers": dict,
    "buffer": torch.Tensor,
    "buffer_y": torch.Tensor,
    "n_buffered": int,
    "n_updates": int,
    "task": dict,
}


def _check_payload(payload: dict) -> None:
    """Keys, types and tensors of a tabular model's payload (``ValueError`` naming the first
    problem); counts are checked against the model once it is built."""
    for key, kind in _TYPES.items():
        if not isinstance(payload.get(key), kind) or isinstance(payload.get(key), bool):
            raise ValueError(f"{key!r} is missing or not a {kind.__name__}")
    if payload["network"] is not None and not isinstance(payload["network"], dict):
        raise ValueError("'network' is not a state dict")
    for key in ("network", "optimizers", "buffer"):
        check_finite_tensors(key, payload[key])
    counts = ("n_updates", "n_skipped", "n_batched")
    if min(payload["seed"], *(payload.get(key, 0) for key in counts)) < 0:
        raise ValueError("a negative seed or count")


def _check_loaded(model, buffer_shape: tuple, n_outputs: int) -> None:
    """Counts of the loaded ``model`` within its buffer and network."""
    n = model._n_buffered
    if model._buffer.shape != buffer_shape or model._buffer_y.shape != (buffer_shape[0],):
        raise ValueError(f"a buffer of shape {model._buffer.shape}, expected {buffer_shape}")
    if not 0 <= n < model.batch_size:
        raise ValueError(f"{n} buffered samples for a batch of {model.batch_size}")
    if len(model._features) > max(model.n_inputs, 1):
        raise ValueError(f"{len(model._features)} features for {model.n_inputs} input columns")
    if model._buffer_y.dtype.kind == "i":
        units = model._buffer_y[:n]
        if len(units) and not (0 <= units.min() and units.max() < n_outputs):
            raise ValueError("a buffered label beyond the output units")
    elif not np.isfinite(model._buffer_y[:n]).all():
        raise ValueError("a buffered target is not finite")
    classes = getattr(model, "_classes", None)
    if classes is not None and model._net is not None and len(classes) > model._net.n_outputs:
        raise ValueError(f"{len(classes)} classes for {model._net.n_outputs} output units")


def load(cls, path, *, device: str | None = None):
    payload, params = read_checked(cls, path, device)
    if "n_batched" not in payload:  # saved before the minibatch ramp: a fixed batch, as then
        params.setdefault("batch_ramp", 0)
    if "readout_per_sample" in inspect.signature(cls).parameters:
        # saved before the per-sample readout: every layer on the minibatch, at one lr, as then
        params.setdefault("readout_per_sample", False)
        params.setdefault("hidden_lr_scale", 1.0)
    if "readout_solver" in inspect.signature(cls).parameters:
        # saved before the least-squares readout: the optimizer's per-sample step, as then
        params.setdefault("readout_solver", "optimizer")
        params.setdefault("readout_forget", 1.0)
    if "readout_margin" in inspect.signature(cls).parameters:
        params.setdefault("readout_margin", None)  # saved before it: every sample, as then
    try:
        _check_payload(payload)
        model = cls(**params)
        model._seed = payload["seed"]
        model._features.extend(decode(tag) for tag in payload["features"])
        model._set_task_state(payload["task"])
        if payload["network"] is not None:
            model._build(payload["n_inputs"])
            net = model._net
            if payload["n_outputs"] > net.n_outputs:
                net.grow_outputs(payload["n_outputs"] - net.n_outputs)
            net.load_state_dict(payload["network"])
            for i, state in payload["optimizers"].items():
                net.optimizers[int(i)].load_state_dict(state)
                keep_inverse(net.optimizers[int(i)], state)
        buffer_shape = model._buffer.shape
        model._buffer = payload["buffer"].numpy().astype(np.float32)
        model._buffer_y = payload["buffer_y"].numpy().astype(model._target_dtype)
        model._n_buffered = payload["n_buffered"]
        model._n_updates = payload["n_updates"]
        model._n_skipped = payload.get("n_skipped", 0)
        model._resume_batching(
            payload.get("n_batched", (model._n_updates + model._n_skipped) * model.batch_size)
        )
        model._train_layers = payload.get("train_layers")
        # saved before the block readout: its minibatch readout stays the optimizer's, as then
        model._readout_blocks = bool(payload.get("readout_blocks", False))
        if model._net is not None:
            model._net.perturbation_steps = payload.get("perturbation_steps", 0)
        _check_loaded(model, buffer_shape, payload["n_outputs"])
        layers = model._train_layers
        if layers is not None and (
            model._net is None or not set(layers) <= set(model._net.trainable_indices)
        ):
            raise ValueError(f"train_layers {layers!r} are not trainable layers of the network")
        if len(model._features) != len(payload["features"]):
            raise ValueError("repeated feature names")
    except (KeyError, TypeError, RuntimeError, IndexError, ValueError, AttributeError) as err:
        raise damaged(path, f"{type(err).__name__}: {err}") from err
    return model
