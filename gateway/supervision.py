"""What systemd hears while the gateway runs (sd_notify(3)): a STATUS line, and WATCHDOG=1
only while the pipeline is healthy.

A stuck event loop stops the pings by itself (this runs on the loop). What the loop cannot
see by itself is a part that stopped or hangs while the loop is fine: a core task that
ended, or a commit that has not returned for ``stall_s`` (a disk that stopped answering, a
database lock never released). Then the pings stop, the STATUS line says why, one log
line says it once, and systemd restarts the service when WatchdogSec runs out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway.systemd import notify, watchdog_interval_s

if TYPE_CHECKING:
    from gateway.service import Gateway

log = logging.getLogger(__name__)

STATUS_INTERVAL_S = 10.0  # without a watchdog, how often STATUS is refreshed


@dataclass
class Supervisor:
    gw: Gateway
    tasks: Sequence[asyncio.Task[None]]
    stall_s: float
    clock: Callable[[], float] = time.monotonic
    _events: int = 0
    _at: float = field(default=0.0)
    _reported: str | None = None
    _depth: int | None = None
    _depth_task: asyncio.Task[int] | None = None

    def problem(self) -> str | None:
        """Why the pipeline is not healthy, or None."""
        for task in self.tasks:
            if task.done():
                return f"{task.get_name()} stopped"
        busy = self.gw.ingest.busy_since
        if busy is not None and self.clock() - busy > self.stall_s:
            return f"a commit has not finished in {self.stall_s:g} s"
        return None

    async def _pending(self) -> int:
        return max([await self.gw.outbox.pending(s.name) for s in self.gw.sinks], default=0)

    def _outbox_depth(self) -> int | None:
        """The last depth the outbox reported. Asked in the background, never awaited here:
        the outbox's one thread may be the part that is stuck."""
        task = self._depth_task
        if task is not None and task.done():
            error = None if task.cancelled() else task.exception()
            if error is None and not task.cancelled():
                self._depth = task.result()
            elif error is not None:  # the outbox failing now: the last depth stands
                log.debug("outbox depth for STATUS: %s", error)
            task = None
        if task is None:
            self._depth_task = asyncio.create_task(self._pending(), name="outbox depth")
        return self._depth

    def status(self) -> str:
        """One line: nodes online, events/s since the last line, outbox depth, sinks."""
        now, events = self.clock(), self.gw.health.counters["events"]
        rate = (events - self._events) / (now - self._at) if self._at and now > self._at else 0.0
        self._events, self._at = events, now
        # the health payload's own sections, so STATUS and the health topic agree
        nodes = self.gw.health.read("nodes") or {}
        sinks = self.gw.health.read("sinks") or {}
        depth = self._outbox_depth()
        connected = sum(bool(s.get("connected")) for s in sinks.values())
        return (
            f"{nodes.get('online', 0)} of {nodes.get('known', 0)} nodes online, "
            f"{rate:.0f} events/s, "
            f"outbox {'?' if depth is None else depth} pending, "
            f"sinks {connected}/{len(sinks)} connected"
        )

    def tick(self) -> bool:
        """Tells systemd how things stand; returns whether it pinged the watchdog."""
        problem = self.problem()
        if problem != self._reported:
            if problem is not None:
                log.error("not healthy, watchdog pings stop: %s", problem)
            elif self._reported is not None:
                log.warning("healthy again, watchdog pings resume")
            self._reported = problem
        if problem is not None:
            notify(f"STATUS=not healthy: {problem}")
            return False
        line = self.status()
        notify(f"WATCHDOG=1\nSTATUS={line}" if self.watchdog else f"STATUS={line}")
        return self.watchdog

    @property
    def watchdog(self) -> bool:
        return self.gw.config.health.watchdog and watchdog_interval_s() is not None

    async def run(self) -> None:
        interval = watchdog_interval_s() if self.watchdog else None
        try:
            await self._loop(interval)
        finally:
            if self._depth_task is not None:
                self._depth_task.cancel()

    async def _loop(self, interval: float | None) -> None:
        while True:
            self.tick()
            await asyncio.sleep(interval or STATUS_INTERVAL_S)
