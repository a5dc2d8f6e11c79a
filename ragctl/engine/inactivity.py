"""Long engine calls (image save, load, build, pull) move gigabytes for minutes: they have no limit on
their length, only on *inactivity*.  :class:`Inactivity` runs one in a thread and fails it with
:class:`~ragctl.errors.EngineStalled` (what stalled, for how long, after what progress, what to run
next) when the engine sends or takes nothing for ``inactivity_limit()`` seconds
(``ENGINE_INACTIVITY_S``, or ``$RAGCTL_ENGINE_INACTIVITY_S``); a call that keeps moving never fails.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from ragctl.environment import ENGINE_INACTIVITY_ENV, cli_environment
from ragctl.errors import EngineStalled

#: Seconds a long engine call may go without a byte or a progress message (not a limit on its length).
ENGINE_INACTIVITY_S = 120
INACTIVITY_ENV = ENGINE_INACTIVITY_ENV

T = TypeVar("T")


def inactivity_limit() -> float:
    """``$RAGCTL_ENGINE_INACTIVITY_S`` when set (a positive number), else ENGINE_INACTIVITY_S."""
    return cli_environment().engine_inactivity_s or ENGINE_INACTIVITY_S


def is_timeout(exc: BaseException | None) -> bool:
    """A read or write that timed out on the engine's socket (requests, urllib3 or the socket itself)."""
    seen = 0
    while exc is not None and seen < 10:
        name = type(exc).__name__
        if isinstance(exc, TimeoutError) or name in ("ReadTimeout", "ReadTimeoutError", "Timeout",
                                                     "ConnectTimeout", "TimeoutError") \
                or "timed out" in str(exc).lower():
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


class Inactivity:
    """Fail one long engine call when nothing moves for ``limit_s`` seconds; never for its length.

    ``stream(start)`` calls ``start()`` (the engine call) and iterates what it returns in a thread,
    yielding each item in the caller's thread; every item is progress, and so is every ``beat()``
    (an upload's block taken by the engine).  Time the caller spends on an item is not the engine's.
    ``alive()``, when given, is asked before a silence is called a stall: it returns a reason when
    the engine is visibly at work (a build's RUN step running) and resets the clock."""

    def __init__(self, what: str, *, hint: str, limit_s: float | None = None,
                 so_far: Callable[[], str] | None = None, alive: Callable[[], str | None] | None = None,
                 cancel: Callable[[], None] | None = None, poll_s: float = 1.0) -> None:
        self.what, self.hint = what, hint
        self.limit_s = float(limit_s) if limit_s is not None else inactivity_limit()
        self.so_far, self.alive, self.cancel = so_far, alive, cancel
        self.poll_s = poll_s
        self.last = time.monotonic()
        self.started = self.last

    def beat(self) -> None:
        self.last = time.monotonic()

    def idle_s(self) -> float:
        return time.monotonic() - self.last

    def stalled(self, idle_s: float | None = None) -> EngineStalled:
        idle = self.idle_s() if idle_s is None else idle_s
        progress = self.so_far() if self.so_far else ""
        return EngineStalled(
            f"{self.what} stalled: the engine sent and took nothing for {idle:.0f} s "
            f"(limit {self.limit_s:.0f} s without progress; {time.monotonic() - self.started:.0f} s in all"
            + (f"; {progress} so far" if progress else "") + ").",
            hint=f"{self.hint}   (check the engine: docker info, df -h /var/lib/docker; on a slow host raise "
                 f"the limit: {INACTIVITY_ENV}=600)")

    def _give_up(self) -> None:
        if self.cancel is not None:
            with contextlib.suppress(Exception):  # closing a stalled connection is best effort
                self.cancel()

    def stream(self, start: Callable[[], Iterable[T]]) -> Iterator[T]:
        items: queue.Queue = queue.Queue(maxsize=8)
        stop = threading.Event()

        def put(entry) -> bool:
            while not stop.is_set():
                try:
                    items.put(entry, timeout=0.2)
                    return True
                except queue.Full:
                    continue
            return False

        def produce() -> None:
            try:
                for item in start():
                    self.beat()
                    if not put(("item", item)):
                        return
                put(("end", None))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                put(("error", exc))

        self.started = self.last = time.monotonic()
        thread = threading.Thread(target=produce, name=f"engine: {self.what}", daemon=True)
        thread.start()
        try:
            while True:
                try:  # what arrived is taken before a silence is judged
                    kind, value = items.get(timeout=max(0.01, min(self.poll_s, self.limit_s - self.idle_s())))
                except queue.Empty:
                    idle = self.idle_s()
                    if idle < self.limit_s:
                        continue
                    if self.alive is not None and self.alive():
                        self.beat()
                        continue
                    self._give_up()
                    raise self.stalled(idle)
                if kind == "end":
                    return
                if kind == "error":
                    if is_timeout(value):
                        raise self.stalled() from value
                    raise value
                self.beat()
                yield value
                self.beat()  # the caller's time with the item is not the engine's silence
        finally:
            stop.set()
