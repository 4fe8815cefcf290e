"""Many streams, one model each: routed in-process, or sharded over Ray actors.

A :class:`StreamFleet` owns one model per stream key (a device, a machine, a patient), cloned
from a template on the key's first sample. Keys map to shards by consistent hashing
(:class:`HashRing`), so adding shards moves few keys. The ``"local"`` backend keeps every shard
in this process; the ``"ray"`` backend runs each shard in a Ray actor (``pip install
tpsgd-stream[ray]``).

Fault tolerance (Ray): every shard checkpoints its models with the versioned save format
(:meth:`~tpsgd_stream.models.TPSGDClassifier.save`) to a directory or fsspec URL every
``checkpoint_every`` samples. The fleet keeps, per shard, a log of the calls sent since that
checkpoint (bounded: reaching the bound triggers a checkpoint). When an actor dies, Ray restarts
it, it reloads its checkpoint, and the fleet replays the log, so no acknowledged sample is lost
and the models end exactly as without the failure.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import posixpath
import socket
import tempfile
import time
from collections import deque
from collections.abc import Hashable, Iterable

import numpy as np
import torch

from .._optional import require
from ..models._inputs import hashes_by_identity
from ..models._persistence import decode, digest, encode, shown

__all__ = ["HashRing", "Shard", "StreamFleet"]

FLEET_FORMAT, FLEET_VERSION = "tpsgd-stream-shard", 2
FLEET_READ_VERSIONS = (1, 2)  # version 1: no checksum


def stable_hash(value: Hashable) -> int:
    """A 64-bit hash of the key's canonical ``repr``, the same in every process (unlike
    ``hash``) and for keys that compare equal (``3``, ``3.0``, ``np.int64(3)``).

    Examples
    --------
    >>> import numpy as np
    >>> stable_hash(3) == stable_hash(3.0) == stable_hash(np.int64(3)), stable_hash(True)
    (True, ...)
    >>> stable_hash((1, "a")) == stable_hash((np.int32(1), "a"))
    True
    """
    text = repr(_canonical(value))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def _canonical(value):
    """One representative of the keys equal to ``value``: Python numbers for numpy scalars and
    bools, ints for integral floats, tuples element by element."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, tuple):
        return tuple(_canonical(v) for v in value)
    return value


def _check_key(key) -> None:
    try:
        hash(key)
    except TypeError:
        raise TypeError(
            f"A fleet key must be hashable (a str, an int, a tuple, ...); got {key!r} of type "
            f"{type(key).__name__}."
        ) from None
    if hashes_by_identity(key):
        raise TypeError(
            f"A fleet key must equal itself and hash by value; got {key!r} of type "
            f"{type(key).__name__} (a NaN, a torch tensor, an object whose comparison raises), "
            f"which would make a new model on every call. Use a str, an int or a tuple."
        )


def _check_records(template, records) -> list:
    """``records`` as a list of ``(key, x, y)``, each checked as ``template.learn_one`` would
    check it, before any model learns from any (all or nothing)."""
    records = list(records)
    check = getattr(template, "_check_sample", None)
    for i, record in enumerate(records):
        if not (isinstance(record, tuple) and len(record) == 3):
            raise TypeError(f"Record {i} must be a (key, x, y) tuple, got {record!r:.200}.")
        key, x, y = record
        _check_key(key)
        if check is not None:
            try:
                check(x, y)
            except (TypeError, ValueError) as err:
                raise type(err)(f"Record {i} (key {key!r:.100}): {err}") from None
    return records


def _check_x(template, x) -> None:
    """The error ``template.predict_one(x)`` would raise for bad ``x`` (for unknown keys)."""
    check = getattr(template, "_check_input", None)
    if check is not None:
        check(x)


class HashRing:
    """Consistent hashing of keys onto ``n_shards`` shards, ``replicas`` points per shard.

    Examples
    --------
    >>> ring, bigger = HashRing(4), HashRing(5)
    >>> keys = range(1000)
    >>> moved = sum(ring.shard_of(k) != bigger.shard_of(k) for k in keys)
    >>> moved < 350  # about 1/5 of the keys move to the new shard, none between old ones
    True
    """

    def __init__(self, n_shards: int, replicas: int = 64):
        if isinstance(n_shards, bool) or not isinstance(n_shards, int) or n_shards < 1:
            raise ValueError(f"n_shards must be an int >= 1, got {n_shards!r}.")
        self.n_shards = n_shards
        points = sorted(
            (stable_hash(f"shard-{s}-{r}"), s) for s in range(n_shards) for r in range(replicas)
        )
        self._hashes = [h for h, _ in points]
        self._shards = [s for _, s in points]

    def shard_of(self, key: Hashable) -> int:
        i = bisect.bisect(self._hashes, stable_hash(key)) % len(self._hashes)
        return self._shards[i]


class Shard:
    """The models of one shard, with checkpointing to a directory or fsspec URL.

    Examples
    --------
    >>> from tpsgd_stream.models import TPSGDClassifier
    >>> shard = Shard(TPSGDClassifier(seed=0, batch_size=1))
    >>> shard.learn_one("sensor-7", {"t": 1.0}, "hot")
    >>> shard.predict_one("sensor-7", {"t": 1.0}), shard.predict_one("other", {"t": 1.0})
    ('hot', None)
    """

    def __init__(self, template, *, shard_id: int = 0, checkpoint_url: str | None = None):
        self.template = template
        self.shard_id = shard_id
        self.checkpoint_url = checkpoint_url
        self.models: dict = {}
        self.n_learned = 0
        if checkpoint_url is not None:
            self.restore()

    def learn_one(self, key: Hashable, x: dict, y) -> None:
        model = self.models.get(key)
        if model is None:  # a new key's model is kept only once it accepted its first sample
            model = self.template.clone()
            model.learn_one(x, y)
            self.models[key] = model
        else:
            model.learn_one(x, y)
        self.n_learned += 1

    def learn_many(self, records: Iterable[tuple]) -> None:
        """Learn ``(key, x, y)`` records in order, after checking every one (all or nothing)."""
        for key, x, y in _check_records(self.template, records):
            self.learn_one(key, x, y)

    def predict_one(self, key: Hashable, x: dict):
        model = self.models.get(key)
        if model is None:
            _check_x(self.template, x)  # bad input is named for an unknown key too
            return None
        return model.predict_one(x)

    def predict_proba_one(self, key: Hashable, x: dict) -> dict:
        model = self.models.get(key)
        if model is None:
            _check_x(self.template, x)
            return {}
        return model.predict_proba_one(x)

    def predict_many(self, records: Iterable[tuple]) -> list:
        return [self.predict_one(key, x) for key, x in records]

    def ping(self) -> int:
        return self.n_learned

    # ------------------------------------------------------------------------ checkpoints
    @property
    def _path(self) -> str:
        return f"{self.checkpoint_url.rstrip('/')}/shard-{self.shard_id}.pt"

    def checkpoint(self) -> int:
        """Write every model of this shard (the versioned save format) in one archive."""
        models = {}
        for key, model in self.models.items():
            buffer = io.BytesIO()
            model.save(buffer)
            models[len(models)] = (encode(key), buffer.getvalue())
        payload = {
            "format": FLEET_FORMAT,
            "version": FLEET_VERSION,
            "n_learned": self.n_learned,
            "models": models,
        }
        payload["checksum"] = digest(payload)  # (torch does not verify its archive's CRCs)
        fs, path = _fsspec().core.url_to_fs(self._path)
        fs.makedirs(posixpath.dirname(path), exist_ok=True)
        with fs.open(path + ".partial", "wb") as f:  # a crash mid-write leaves the old one
            torch.save(payload, f)
        fs.mv(path + ".partial", path)
        return len(models)

    def restore(self) -> None:
        """Reload the last checkpoint, if there is one."""
        fs, path = _fsspec().core.url_to_fs(self._path)
        if not fs.exists(path):
            return
        try:
            with fs.open(path, "rb") as f:
                payload = torch.load(f, weights_only=True)
        except Exception as err:  # torch raises many kinds for a damaged archive
            raise self._damaged(f"{type(err).__name__}: {err}") from err
        if (
            not isinstance(payload, dict)
            or payload.get("format") != FLEET_FORMAT
            or payload.get("version") not in FLEET_READ_VERSIONS
        ):
            raise ValueError(
                f"{shown(self._path)} is not a shard checkpoint of format "
                f"{' or '.join(map(str, FLEET_READ_VERSIONS))}."
            )
        if payload["version"] >= 2 and payload.get("checksum") != digest(payload):
            raise self._damaged("its checksum does not match its contents")
        cls = type(self.template)
        try:
            n_learned, models = payload["n_learned"], payload["models"]
            if type(n_learned) is not int or n_learned < 0 or not isinstance(models, dict):
                raise ValueError("no sample count or no models")
            loaded = {decode(tag): cls.load(io.BytesIO(blob)) for tag, blob in models.values()}
            if len(loaded) != len(models):
                raise ValueError("two models under one key")
        except (KeyError, TypeError, ValueError, IndexError) as err:
            raise self._damaged(f"{type(err).__name__}: {err}") from err
        self.models, self.n_learned = loaded, n_learned

    def _damaged(self, reason: str) -> ValueError:
        return ValueError(
            f"{shown(self._path)} is not a readable shard checkpoint (corrupted, truncated, or "
            f"not written by checkpoint()): {reason[:500]}"
        )


class StreamFleet:
    """One model per stream key, on one machine (``"local"``) or sharded over Ray actors.

    Parameters
    ----------
    model
        The template every new key's model is cloned from (e.g. a ``TPSGDClassifier``).
    backend
        ``"local"`` (default, in this process) or ``"ray"``.
    n_shards
        Shards (Ray actors) the keys are spread over.
    checkpoint_url
        Directory or fsspec URL of the shards' checkpoints (Ray default: a temporary folder).
    checkpoint_every
        Samples per shard between checkpoints; also the bound of each shard's replay log.
    max_in_flight
        Calls sent to one actor and not yet answered before ``learn_one`` waits (backpressure).
    batch
        Ray backend: ``learn_one`` samples gathered per shard into one call (a remote call costs
        about a millisecond); predictions, ``flush`` and checkpoints send what is gathered.
    timeout
        Seconds to wait for a cluster to connect or an actor to answer before a clear error.
    ray_address
        Address of an existing Ray cluster; ``None`` starts a local one (``num_cpus`` = shards).

    Examples
    --------
    >>> from tpsgd_stream.models import TPSGDClassifier
    >>> fleet = StreamFleet(TPSGDClassifier(seed=0, batch_size=1), n_shards=2)
    >>> for i in range(20):
    ...     fleet.learn_one(f"device-{i % 4}", {"v": float(i % 2)}, i % 2 == 0)
    >>> fleet.predict_one("device-1", {"v": 0.0}), len(fleet.keys())
    (False, 4)
    """

    def __init__(
        self,
        model,
        *,
        backend: str = "local",
        n_shards: int = 1,
        checkpoint_url: str | None = None,
        checkpoint_every: int = 10_000,
        max_in_flight: int = 64,
        batch: int = 64,
        timeout: float = 60.0,
        ray_address: str | None = None,
    ):
        if backend not in ("local", "ray"):
            raise ValueError(f"backend must be 'local' or 'ray', got {backend!r}.")
        if isinstance(model, type) or not all(
            callable(getattr(model, name, None)) for name in ("clone", "learn_one", "predict_one")
        ):
            raise TypeError(
                f"model must be an estimator instance to clone per key, such as "
                f"TPSGDClassifier(), got {model!r}."
            )
        if checkpoint_every < 1 or max_in_flight < 1 or batch < 1:
            raise ValueError("checkpoint_every, max_in_flight and batch must be >= 1.")
        self.batch = batch
        self._template = model
        self._checkpoint_url = checkpoint_url
        self.backend, self.ring = backend, HashRing(n_shards)
        self.checkpoint_every, self.max_in_flight, self.timeout = (
            checkpoint_every,
            max_in_flight,
            timeout,
        )
        if backend == "local":
            self._shards = [
                Shard(model, shard_id=s, checkpoint_url=checkpoint_url) for s in range(n_shards)
            ]
            return
        self._ray = _connect(ray_address, n_shards, timeout)
        url = checkpoint_url or tempfile.mkdtemp(prefix="tpsgd-fleet-")
        remote = self._ray.remote(max_restarts=-1, max_task_retries=0)(Shard)
        self._shards = [
            remote.remote(model, shard_id=s, checkpoint_url=url) for s in range(n_shards)
        ]
        self._logs = [deque() for _ in range(n_shards)]  # calls since the last checkpoint
        self._in_flight = [deque() for _ in range(n_shards)]
        self._pending = [0] * n_shards  # samples logged since the shard's last checkpoint
        self._gathered: list[list] = [[] for _ in range(n_shards)]  # learn_one not yet sent
        self.recovery_seconds: list[float] = []  # restart + replay time of each recovery

    # -------------------------------------------------------------------------- routing

    def __repr__(self) -> str:
        """The template, backend and shards; what the fleet holds is not listed.

        Examples
        --------
        >>> from tpsgd_stream.models import TPSGDClassifier
        >>> StreamFleet(TPSGDClassifier(seed=0), n_shards=2)
        StreamFleet(TPSGDClassifier, backend='local', n_shards=2, checkpoint_url=None)
        """
        return (
            f"StreamFleet({type(self._template).__name__}, backend={self.backend!r}, "
            f"n_shards={len(self._shards)}, checkpoint_url={self._checkpoint_url!r})"
        )

    def learn_one(self, key: Hashable, x: dict, y) -> None:
        """Learn ``(x, y)`` on ``key``'s model (asynchronous on Ray; ordered per shard)."""
        _check_key(key)
        shard = self.ring.shard_of(key)
        if self.backend == "local":
            self._shards[shard].learn_one(key, x, y)
            return
        _check_records(self._template, [(key, x, y)])  # (checked here: the actor learns later)
        gathered = self._gathered[shard]
        gathered.append((key, dict(x), y))
        if len(gathered) >= self.batch:
            self._send_gathered(shard)

    def _send_gathered(self, shard: int) -> None:
        gathered = self._gathered[shard]
        if gathered:
            self._gathered[shard] = []
            self._call(shard, len(gathered), "learn_many", gathered)

    def learn_many(self, records: Iterable[tuple]) -> None:
        """Learn ``(key, x, y)`` records, one call per shard, after checking every record (its
        key, and ``x`` and ``y`` as the template's ``learn_one`` would): a bad record raises
        before any model learns from any record."""
        records = _check_records(self._template, records)
        for shard, chunk in self._by_shard(records, lambda r: r[0]).items():
            self._call(shard, len(chunk), "learn_many", chunk)

    def predict_one(self, key: Hashable, x: dict):
        """``key``'s model's prediction (``None`` for a key never learned from)."""
        _check_key(key)
        return self._ask(self.ring.shard_of(key), "predict_one", key, x)

    def predict_proba_one(self, key: Hashable, x: dict) -> dict:
        _check_key(key)
        return self._ask(self.ring.shard_of(key), "predict_proba_one", key, x)

    def predict_many(self, records: Iterable[tuple]) -> list:
        """Predictions for ``(key, x)`` records, in their order."""
        records = list(records)
        numbered = ((i, key, x) for i, (key, x) in enumerate(records))
        groups = self._by_shard(numbered, lambda r: r[1])
        out = [None] * len(records)
        for shard, chunk in groups.items():
            answers = self._ask(shard, "predict_many", [(key, x) for _, key, x in chunk])
            for (i, _, _), answer in zip(chunk, answers):
                out[i] = answer
        return out

    def keys(self) -> list:
        """Every key with a model (local backend only)."""
        if self.backend != "local":
            raise NotImplementedError("keys() needs the local backend.")
        return [key for shard in self._shards for key in shard.models]

    def _by_shard(self, records, key_of) -> dict[int, list]:
        groups: dict[int, list] = {}
        for record in records:
            _check_key(key_of(record))
            groups.setdefault(self.ring.shard_of(key_of(record)), []).append(record)
        return groups

    # ----------------------------------------------------------------- the ray machinery
    def _call(self, shard: int, n_samples: int, method: str, *args) -> None:
        if self.backend == "local":
            getattr(self._shards[shard], method)(*args)
            return
        self._logs[shard].append((method, args))
        self._pending[shard] += n_samples
        in_flight = self._in_flight[shard]
        in_flight.append(getattr(self._shards[shard], method).remote(*args))
        if len(in_flight) >= self.max_in_flight:
            self._drain(shard, keep=self.max_in_flight // 2)
        if self._pending[shard] >= self.checkpoint_every:
            self._checkpoint(shard)

    def _ask(self, shard: int, method: str, *args):
        if self.backend == "local":
            return getattr(self._shards[shard], method)(*args)
        self._send_gathered(shard)
        self._drain(shard, keep=0)  # every learn sent before is applied (or replayed)
        while True:
            try:
                return self._get(getattr(self._shards[shard], method).remote(*args))
            except self._ray.exceptions.RayActorError:
                self._recover(shard)

    def _get(self, ref):
        try:
            return self._ray.get(ref, timeout=self.timeout)
        except self._ray.exceptions.GetTimeoutError:
            raise TimeoutError(f"A fleet shard did not answer within {self.timeout} s.") from None

    def _drain(self, shard: int, keep: int) -> None:
        """Wait until at most ``keep`` calls to ``shard`` are unanswered (recover on death)."""
        in_flight = self._in_flight[shard]
        while len(in_flight) > keep:
            ref = in_flight.popleft()
            try:
                self._get(ref)
            except self._ray.exceptions.RayActorError:
                self._recover(shard)
                return

    def _recover(self, shard: int) -> None:
        """The actor died: wait for Ray's restart (it reloads its checkpoint), then replay."""
        start = time.monotonic()
        self._in_flight[shard].clear()
        actor = self._shards[shard]
        deadline = start + self.timeout
        while True:
            try:
                self._get(actor.ping.remote())
                break
            except self._ray.exceptions.RayActorError:
                if time.monotonic() > deadline:
                    raise ConnectionError(f"Shard {shard} did not come back.") from None
                time.sleep(0.1)
        refs = [getattr(actor, method).remote(*args) for method, args in self._logs[shard]]
        for ref in refs:
            self._get(ref)
        self.recovery_seconds.append(time.monotonic() - start)

    def _checkpoint(self, shard: int) -> None:
        self._send_gathered(shard)
        self._drain(shard, keep=0)
        while True:
            try:
                self._get(self._shards[shard].checkpoint.remote())
                break
            except self._ray.exceptions.RayActorError:
                self._recover(shard)
        self._logs[shard].clear()
        self._pending[shard] = 0

    def flush(self) -> None:
        """Wait until every shard has applied every call sent so far."""
        if self.backend == "ray":
            for shard in range(len(self._shards)):
                self._send_gathered(shard)
                self._drain(shard, keep=0)

    def checkpoint(self) -> None:
        """Checkpoint every shard now."""
        for shard in range(len(self._shards)):
            if self.backend == "ray":
                self._checkpoint(shard)
            elif self._shards[shard].checkpoint_url is not None:
                self._shards[shard].checkpoint()

    def close(self) -> None:
        """Stop the shard actors (Ray backend)."""
        if self.backend == "ray":
            for actor in self._shards:
                self._ray.kill(actor)
            self._shards = []


def _fsspec():
    """fsspec, which writes checkpoints (the ``[ray]`` extra installs it)."""
    return require("fsspec", "ray", "checkpointing a fleet")


def _connect(address: str | None, n_shards: int, timeout: float):
    """Import Ray and join (or start) a cluster; a clear error instead of a hang."""
    try:
        import ray
    except ImportError:
        raise ImportError("backend='ray' needs Ray: pip install 'tpsgd-stream[ray]'.") from None
    if address is not None:
        _probe(address, timeout)
    if ray.is_initialized():
        return ray
    kwargs = {"include_dashboard": False, "log_to_driver": False}
    if address is None:  # a local cluster on the loopback interface only
        kwargs.update(num_cpus=n_shards, _node_ip_address="127.0.0.1")
    else:
        kwargs["address"] = address
    try:
        ray.init(**kwargs)
    except Exception as err:  # Ray raises several kinds for an unreachable address
        raise ConnectionError(f"Could not reach a Ray cluster at {address!r}: {err}") from None
    return ray


def _probe(address: str, timeout: float) -> None:
    """Fail fast when nothing listens at ``host:port`` (Ray itself would retry for minutes)."""
    if address == "auto":
        return
    host, _, port = address.split("://")[-1].rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=min(timeout, 10.0)).close()
    except (OSError, ValueError) as err:
        raise ConnectionError(f"Could not reach a Ray cluster at {address!r}: {err}") from None
