"""``save`` / ``load`` for the estimators: a versioned ``torch.save`` archive.

The archive is a dict of plain Python values and tensors, so ``torch.load(path,
weights_only=True)`` reads it without unpickling arbitrary objects::

    {"format": "tpsgd-stream", "version": 1, "estimator": "TPSGDClassifier",
     "params": {...}, "seed": int, "features": [...], "network": state_dict | None,
     "n_inputs": int, "n_outputs": int, "optimizers": {layer: state_dict},
     "buffer": tensor, "buffer_y": tensor, "n_buffered": int, "n_updates": int,
     "task": {...}, "perturbation_steps": int, "train_layers": [int] | None}

Feature names and labels are stored tagged (``("py", value)``, ``("np", dtype, value)``,
``("tuple", [...])``) so that numpy scalars and tuples come back with their own types.
Projection matrices are not stored: they are regenerated from the seed.
"""

from __future__ import annotations

import os

import numpy as np
import torch

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
]

FORMAT = "tpsgd-stream"
FORMAT_VERSION = 1
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
        "n_inputs": model._width,
        "n_outputs": 0 if net is None else net.n_outputs,
        "optimizers": {}
        if net is None
        else {int(i): opt.state_dict() for i, opt in net.optimizers.items()},
        "buffer": torch.from_numpy(model._buffer.copy()),
        "buffer_y": torch.from_numpy(model._buffer_y.copy()),
        "n_buffered": int(model._n_buffered),
        "n_updates": int(model._n_updates),
        "task": model._task_state(),
        "perturbation_steps": 0 if net is None else int(net.perturbation_steps),
        "train_layers": model._train_layers,
    }
    write(payload, path)


def write(payload: dict, path) -> None:
    """``torch.save`` to a path or a binary file object, with a clear error for a folder."""
    if isinstance(path, (str, os.PathLike)) and os.path.isdir(path):
        raise IsADirectoryError(
            f"{path} is a directory; save() needs a file path, such as "
            f"{os.path.join(path, 'model.pt')}."
        )
    torch.save(payload, path)


def _read(path) -> dict:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception as err:  # torch raises many kinds for a damaged archive
        raise ValueError(
            f"{path} is not a readable tpsgd-stream model file (corrupted, truncated, or not "
            f"written by save()): {type(err).__name__}: {err}"
        ) from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is a torch file, but not a tpsgd-stream model written by save().")
    return payload


def read_checked(cls, path, device: str | None) -> tuple[dict, dict]:
    """The archive at ``path``, checked to be ``cls``'s in this format version, and the
    constructor parameters it stores (``device`` replaced when given)."""
    payload = _read(path)
    version = payload.get("version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{path} was saved in tpsgd-stream model format version {version!r}; this version of "
            f"tpsgd-stream reads format version {FORMAT_VERSION} only. Load it with the "
            f"tpsgd-stream release that wrote it and retrain or re-save from there."
        )
    if payload.get("estimator") != cls.__name__:
        raise ValueError(
            f"{path} holds a {payload.get('estimator')}, not a {cls.__name__}: use "
            f"{payload.get('estimator')}.load()."
        )
    params = dict(payload["params"])
    if isinstance(params.get("rule"), str):  # saved under an old rule name: the new one
        params["rule"] = canonical_name(params["rule"])
    if device is not None:
        params["device"] = device
    return payload, params


def load(cls, path, *, device: str | None = None):
    payload, params = read_checked(cls, path, device)
    try:
        model = cls(**params)
        model._seed = payload["seed"]
        model._features = {decode(tag): i for i, tag in enumerate(payload["features"])}
        model._set_task_state(payload["task"])
        if payload["network"] is not None:
            model._build(payload["n_inputs"])
            net = model._net
            if payload["n_outputs"] > net.n_outputs:
                net.grow_outputs(payload["n_outputs"] - net.n_outputs)
            net.load_state_dict(payload["network"])
            for i, state in payload["optimizers"].items():
                net.optimizers[int(i)].load_state_dict(state)
        model._buffer = payload["buffer"].numpy().copy()
        model._buffer_y = payload["buffer_y"].numpy().copy()
        model._n_buffered = payload["n_buffered"]
        model._n_updates = payload["n_updates"]
        model._train_layers = payload.get("train_layers")
        if model._net is not None:
            model._net.perturbation_steps = payload.get("perturbation_steps", 0)
    except (KeyError, TypeError, RuntimeError, IndexError) as err:
        raise ValueError(
            f"{path} is a damaged tpsgd-stream model file ({type(err).__name__}: {err})."
        ) from err
    return model
