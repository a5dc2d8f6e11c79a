"""Abuse limits shared by every API replica: failed authentications per client address, uploads
per key.  Fixed windows (``INCR`` + ``EXPIRE`` in Redis, key ``rag:limit:<kind>:<who>:<window>``).

Redis away: the counters fall back to this process's memory (each replica then counts alone)
rather than refusing everyone; Redis is tried again after a few seconds.

The client address is the socket peer, unless the peer is a trusted proxy (``RAG_TRUSTED_PROXIES``,
e.g. the stack's Nginx): then ``X-Real-IP``, else the right-most untrusted ``X-Forwarded-For`` hop.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

log = logging.getLogger("stack.api.limits")

#: After a Redis error, this process counts in memory for this long before trying Redis again.
REDIS_RETRY_S = 5.0

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=32)
def trusted_networks(spec: str) -> tuple[Network, ...]:
    """``"127.0.0.0/8, 10.1.2.3"`` → networks (a bare address is its own /32 or /128)."""
    networks = []
    for part in spec.split(","):
        part = part.strip()
        if part:
            networks.append(ipaddress.ip_network(part, strict=False))
    return tuple(networks)


def _ip(text: str | None):
    try:
        return ipaddress.ip_address((text or "").strip())
    except ValueError:
        return None


def _trusted(ip, networks: tuple[Network, ...]) -> bool:
    return ip is not None and any(ip.version == net.version and ip in net for net in networks)


def client_address(peer: str | None, headers: Any, trusted_spec: str) -> str:
    """Who a request comes from (see the module's docstring)."""
    peer = peer or "unknown"
    networks = trusted_networks(trusted_spec)
    if not _trusted(_ip(peer), networks):
        return peer
    real = _ip(headers.get("x-real-ip"))
    if real is not None:
        return str(real)
    hops = [_ip(h) for h in (headers.get("x-forwarded-for") or "").split(",")]
    hops = [h for h in hops if h is not None]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            return str(hop)
    return str(hops[0]) if hops else peer


@dataclass(frozen=True)
class Count:
    value: int
    retry_after_s: int


class Limiter:
    """Fixed-window counters in Redis, in memory while Redis is away."""

    def __init__(self, redis: Any, window_s: int) -> None:
        self.redis, self.window_s = redis, window_s
        self._local: dict[str, int] = {}
        self._lock = threading.Lock()
        self._redis_down_until = 0.0

    def _key(self, kind: str, who: str) -> tuple[str, int]:
        now = time.time()
        window = int(now // self.window_s)
        retry_after = max(1, int((window + 1) * self.window_s - now + 0.999))
        return f"rag:limit:{kind}:{who}:{window}", retry_after

    def _redis_usable(self) -> bool:
        return time.monotonic() >= self._redis_down_until

    def _redis_failed(self, exc: Exception) -> None:
        if self._redis_usable():
            log.warning("rate limits count in this process only for %.0f s: Redis: %s", REDIS_RETRY_S, exc)
        self._redis_down_until = time.monotonic() + REDIS_RETRY_S

    def _local_get(self, key: str, add: int) -> int:
        with self._lock:
            if len(self._local) > 10_000:  # old windows: drop all but the current ones
                current = key.rsplit(":", 1)[1]
                self._local = {k: v for k, v in self._local.items() if k.endswith(":" + current)}
            value = self._local.get(key, 0) + add
            if add:
                self._local[key] = value
            return value

    def hit(self, kind: str, who: str) -> Count:
        """Count one more for ``who`` in the current window; the count so far."""
        key, retry_after = self._key(kind, who)
        if self._redis_usable():
            try:
                pipe = self.redis.pipeline()
                pipe.incr(key)
                pipe.expire(key, self.window_s + 1)
                value = int(pipe.execute()[0])
                return Count(value, retry_after)
            except Exception as exc:  # noqa: BLE001 - any Redis failure: count here
                self._redis_failed(exc)
        return Count(self._local_get(key, 1), retry_after)

    def peek(self, kind: str, who: str) -> Count:
        """The count for ``who`` in the current window, without adding."""
        key, retry_after = self._key(kind, who)
        if self._redis_usable():
            try:
                pipe = self.redis.pipeline()  # the same calls as hit: one client, one behaviour
                pipe.get(key)
                return Count(int(pipe.execute()[0] or 0), retry_after)
            except Exception as exc:  # noqa: BLE001
                self._redis_failed(exc)
        return Count(self._local_get(key, 0), retry_after)
