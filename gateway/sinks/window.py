"""Publishes in flight, confirmed in the order they were started.

A sink starts a publish per message (or per batch) without waiting for the
previous PUBACK, up to ``size`` at once. Each one's ``on_done`` runs in start
order, as soon as it and every earlier one have completed, so the sink's cursor
only moves over a confirmed prefix: after a lost connection it re-sends from
the first unconfirmed message. A failed publish stops confirmation there and
its error surfaces in the task group. Keeping the window small also keeps the
MQTT client's own in-flight bookkeeping small (paho walks all of it on every
PUBACK).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Coroutine
from typing import Any

Done = Callable[[], None]


class ConfirmWindow:
    def __init__(self, tg: asyncio.TaskGroup, size: int) -> None:
        self._tg = tg
        self.size = size
        self._q: collections.deque[tuple[asyncio.Task[None], Done | None]] = collections.deque()

    def __len__(self) -> int:
        return len(self._q)

    def _advance(self, _task: object = None) -> None:
        while self._q and self._q[0][0].done():
            task, on_done = self._q[0]
            if task.cancelled() or task.exception() is not None:
                return  # nothing after a failed publish is confirmed
            self._q.popleft()
            if on_done is not None:
                on_done()

    async def _wait_head(self) -> None:
        head = self._q[0][0]
        await asyncio.wait([head])
        self._advance()
        if self._q and self._q[0][0] is head:
            await head  # it failed: raise here too

    async def add(self, publish: Coroutine[Any, Any, None], on_done: Done | None) -> None:
        """Starts ``publish`` once fewer than ``size`` are in flight."""
        while len(self._q) >= max(1, self.size):
            await self._wait_head()
        task = self._tg.create_task(publish)
        self._q.append((task, on_done))
        task.add_done_callback(self._advance)

    async def drain(self) -> None:
        """Waits until everything started so far is confirmed."""
        while self._q:
            await self._wait_head()
