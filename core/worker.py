"""The worker pool: ``concurrency`` threads taking works from the persisted queue.

Contracts:
- Any process that accepts jobs runs a pool unless PROCESS_JOBS=false (the emulator at start, a standalone
  functions-framework handler on its first request); all pools on one machine share the queue
  in the store, and each queued work is taken by exactly one of them.
- Each running work is stamped with this process's identity and a heartbeat refreshed every
  ``lease / 3`` seconds. A work whose owner process is gone (same host, pid gone or reused) is
  re-queued at once; one whose heartbeat is older than ``lease`` (another host, a hung process)
  after the lease runs out. ``JobService.recover`` bounds the number of tries.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from core.jobs import JobService
from core.pipeline import Pipeline
from core.store import Record

log = logging.getLogger("tttranscribe.jobs")


def _process_start(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), which a reused pid won't share."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def process_identity() -> Record:
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": _process_start(os.getpid()), "token": uuid.uuid4().hex}


def owner_is_dead(owner: Record) -> bool:
    """True only when we can prove it: same host, and that pid is gone or is another process."""
    if not owner or owner.get("host") != socket.gethostname():
        return False
    if owner.get("pid") == os.getpid():
        return False  # ourselves: our own threads hold their works
    start = _process_start(int(owner.get("pid", -1)))
    return start is None or (owner.get("start") is not None and start != owner["start"])


class WorkerPool:
    """Threads that claim works and run them through the pipeline."""

    def __init__(
        self,
        jobs: JobService,
        pipeline: Pipeline,
        *,
        concurrency: int = 1,
        lease: float = 30.0,
        poll_interval: float = 1.0,
        is_dead: Callable[[Record], bool] = owner_is_dead,
    ) -> None:
        self.jobs = jobs
        self.pipeline = pipeline
        self.concurrency = concurrency
        self.lease = lease
        self.poll_interval = poll_interval
        self.is_dead = is_dead
        self.identity = process_identity()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._running: set[str] = set()
        self._lock = threading.Lock()

    @property
    def started(self) -> bool:
        return bool(self._threads)

    def start(self) -> None:
        with self._lock:
            if self._threads:
                return
            requeued = self.jobs.recover(self.is_dead, self.lease)
            if requeued:
                log.warning("[job-processing] re-queued %d interrupted work(s): %s", len(requeued), requeued)
            for i in range(self.concurrency):
                self._spawn(self._loop, f"ttt-worker-{i}")
            self._spawn(self._watch, "ttt-heartbeat")

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def wake(self) -> None:
        """A work was queued: stop waiting for the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def busy(self) -> int:
        return len(self._running)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                work = self.jobs.claim(self.identity)
            except Exception:
                log.exception("[job-processing] could not read the queue")
                work = None
            if work is None:
                self._wake.wait(self.poll_interval)
                self._wake.clear()
                continue
            with self._lock:
                self._running.add(work["key"])
            try:
                self.pipeline.run(work)
            finally:
                with self._lock:
                    self._running.discard(work["key"])

    def _watch(self) -> None:
        """Heartbeats for our works, and recovery of works whose owner died meanwhile."""
        while not self._stop.wait(self.lease / 3):
            try:
                with self._lock:
                    keys = list(self._running)
                self.jobs.heartbeat(keys)
                if self.jobs.recover(self.is_dead, self.lease):
                    self.wake()
            except Exception:
                log.exception("[job-processing] heartbeat failed")

