"""Token-bucket rate limiting shared by every process through the store.

Contracts: one bucket per client key, ``capacity`` tokens, refilled continuously at
``refill_per_min``; a take is one store transaction, so exactly ``capacity`` requests pass a
full bucket however many processes serve them. Buckets expire once they would be full again.
"""
from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from core.store import Store


@dataclass(frozen=True)
class Decision:
    allowed: bool
    remaining: int
    retry_after: int  # seconds until one token is back (0 when allowed)
    reset: int  # seconds until the bucket is full again


class RateLimiter:
    def __init__(
        self,
        store: Store,
        capacity: int,
        refill_per_min: float,
        exempt_cidrs: Sequence[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.capacity = capacity
        self.rate = refill_per_min / 60.0
        self.exempt = [ipaddress.ip_network(c, strict=False) for c in exempt_cidrs]
        self.clock = clock

    def is_exempt(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.exempt)

    def take(self, key: str) -> Decision:
        now = self.clock()
        with self.store.transact():
            bucket = self.store.get("bucket", key) or {"tokens": float(self.capacity), "at": now}
            tokens = min(self.capacity, bucket["tokens"] + max(0.0, now - bucket["at"]) * self.rate)
            allowed = tokens >= 1
            if allowed:
                tokens -= 1
            full_in = (self.capacity - tokens) / self.rate
            self.store.put("bucket", key, {"tokens": tokens, "at": now}, ttl=full_in + 1)
        retry = 0 if allowed else math.ceil((1 - tokens) / self.rate)
        return Decision(allowed, int(tokens), retry, math.ceil(full_in))

    def describe(self) -> dict[str, object]:
        per_minute = round(self.rate * 60, 3)
        return {"capacityPerIp": self.capacity, "refillPerMinute": int(per_minute) if per_minute.is_integer() else per_minute}
