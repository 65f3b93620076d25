"""The shared store: one diskcache directory in DATA_DIR for jobs, work, queue, cache and outbox.

Contracts:
- Several processes on one machine may open the same directory; every read-modify-write goes
  through ``update`` or ``transact``, which hold SQLite's write lock (``BEGIN IMMEDIATE``), so
  no update is lost between processes or threads.
- ``eviction_policy="none"``: nothing disappears because the cache is "full". Items disappear
  only when the ``ttl`` they were written with runs out (``None`` keeps them).
- Values are plain JSON-able dicts (or numbers for counters), so a store written by one version
  can be read by another and inspected by hand.
- Keys are ``"<namespace>:<key>"``; each domain module owns its namespace.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import diskcache

Record = dict[str, Any]


class Store:
    """Namespaced, process-safe key/value store over ``diskcache.Cache``."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        # size_limit is irrelevant with eviction off, but diskcache still culls on its own
        # default 1 GB limit unless the policy says none; both are set to say what we mean.
        self._cache = diskcache.Cache(
            str(self.directory), eviction_policy="none", size_limit=2**62, timeout=60, cull_limit=0
        )

    @staticmethod
    def _key(ns: str, key: str) -> str:
        return f"{ns}:{key}"

    def get(self, ns: str, key: str) -> Any:
        return self._cache.get(self._key(ns, key), retry=True)

    def put(self, ns: str, key: str, value: Any, ttl: float | None = None) -> None:
        self._cache.set(self._key(ns, key), value, expire=ttl, retry=True)

    def add(self, ns: str, key: str, value: Any, ttl: float | None = None) -> bool:
        """Insert only if absent; True when this call inserted it (atomic across processes)."""
        return bool(self._cache.add(self._key(ns, key), value, expire=ttl, retry=True))

    def delete(self, ns: str, key: str) -> bool:
        return bool(self._cache.delete(self._key(ns, key), retry=True))

    def incr(self, ns: str, key: str, delta: int = 1) -> int:
        return int(self._cache.incr(self._key(ns, key), delta, default=0, retry=True))

    def update(
        self, ns: str, key: str, fn: Callable[[Any], Any], ttl: float | None = None
    ) -> Any:
        """Atomically replace the value with ``fn(old)`` (old is None when absent).

        ``fn`` returning None deletes the item. Returns the new value.
        """
        with self.transact():
            new = fn(self.get(ns, key))
            if new is None:
                self.delete(ns, key)
            else:
                self.put(ns, key, new, ttl)
            return new

    @contextlib.contextmanager
    def transact(self) -> Iterator[None]:
        """All store calls in the block form one atomic transaction (re-entrant per thread)."""
        with self._cache.transact(retry=True):
            yield

    def keys(self, ns: str) -> list[str]:
        """Keys of one namespace (a scan: for recovery and admin views, not hot paths)."""
        prefix = f"{ns}:"
        return [k[len(prefix):] for k in self._cache.iterkeys() if isinstance(k, str) and k.startswith(prefix)]

    def push(self, queue: str, value: Any) -> None:
        """Append to a persisted FIFO queue."""
        self._cache.push(value, prefix=f"queue-{queue}", retry=True)

    def pull(self, queue: str) -> Any:
        """Remove and return the oldest queue item, or None (atomic: one taker per item)."""
        _, value = self._cache.pull(prefix=f"queue-{queue}", retry=True)
        return value

    def queue_length(self, queue: str) -> int:
        prefix = f"queue-{queue}-"
        return sum(1 for k in self._cache.iterkeys() if isinstance(k, str) and k.startswith(prefix))

    def close(self) -> None:
        self._cache.close()
