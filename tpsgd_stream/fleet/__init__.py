"""Many streams, one model each: in-process, or sharded over Ray actors (the ``[ray]`` extra)."""

from .stream_fleet import HashRing, Shard, StreamFleet

__all__ = ["HashRing", "Shard", "StreamFleet"]
