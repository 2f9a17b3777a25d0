"""The verification stage: a bounded queue, one task, one worker thread."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from gateway.logs import RateLimitedLog
from gateway.model import Inbound, node_hex
from gateway.protocol import Message

log = logging.getLogger(__name__)

R = TypeVar("R")

Verify = Callable[[Message], R]
"""Runs the model on one EVENT (blocking: it is called on the stage's own thread)."""


class VerificationStage(Generic[R]):
    def __init__(
        self,
        verify: Callable[[Message], R],
        on_result: Callable[[Inbound, R], Awaitable[None]],
        counters: Counter[str],
        failures: RateLimitedLog,
        queue_size: int = 256,
    ) -> None:
        self._verify = verify
        self._on_result = on_result
        self._c = counters
        self._failures = failures
        self._queue: asyncio.Queue[Inbound] = asyncio.Queue(queue_size)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="verify")

    def offer(self, item: Inbound) -> None:
        """Called by the pipeline for each committed EVENT; never waits."""
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self._c["events_unverified_busy"] += 1

    async def drain(self) -> None:
        """Waits until every event offered so far has its result handled."""
        await self._queue.join()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            item = await self._queue.get()
            try:
                result = await loop.run_in_executor(self._pool, self._verify, item.message)
            except Exception as exc:  # noqa: BLE001 - one input a model fails on stops nothing
                self._c["verify_failed"] += 1
                self._failures.warning(
                    "verify-failed",
                    "verification failed on an event of node %s (it goes on unverified): %r",
                    node_hex(item.message.header.node_id),
                    exc,
                )
            else:
                self._c["events_verified"] += 1
                await self._on_result(item, result)
            finally:
                self._queue.task_done()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
