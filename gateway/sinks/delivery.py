"""A sink's position in the outbox: what it has confirmed, and what to send next.

The confirmed position lives in memory across reconnections and is written to
the outbox every ``persist_s``: after a crash, a sink re-sends at most what it
had confirmed in that window (duplicates with the same dedup key, never loss).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

from gateway.errors import OutboxError
from gateway.logs import RateLimitedLog
from gateway.model import Record
from gateway.outbox import Outbox

log = logging.getLogger(__name__)
# while the disk is full every flush fails: one line, then one a quarter hour with a count
_failures = RateLimitedLog(log, 900)


class Delivery:
    def __init__(
        self, name: str, outbox: Outbox, *, batch_size: int = 1000, persist_s: float = 0.25
    ) -> None:
        self.name = name
        self._outbox = outbox
        self.batch_size = batch_size
        self._persist_s = persist_s
        self.wake = asyncio.Event()
        self.confirmed = 0
        self._persisted = 0
        self.delivered = 0
        # the sink's own values as of ``confirmed`` (e.g. last ts per device), stored with it
        self.state: dict[str, int] = {}
        self._dirty: dict[str, int] = {}
        self._failing = False  # the last flush failed (a full or failing disk)

    async def start(self) -> None:
        self.confirmed = self._persisted = await self._outbox.cursor(self.name)
        self.state = await self._outbox.sink_state(self.name)

    async def next_batch(self, after: int | None = None) -> list[Record]:
        """Records after ``after`` (default: the confirmed position); waits for some."""
        while True:
            self.wake.clear()  # before the read: a commit during it sets it again
            records = await self._outbox.fetch(
                self.confirmed if after is None else after, self.batch_size
            )
            if records:
                return records
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), 1.0)

    def confirm(self, upto_id: int, count: int, state: Mapping[str, int] | None = None) -> None:
        if state:
            self.state.update(state)
            self._dirty.update(state)
        if upto_id > self.confirmed:
            self.confirmed = upto_id
            self.delivered += count

    async def persist_forever(self) -> None:
        while True:
            await asyncio.sleep(self._persist_s)
            await self.flush()

    async def flush(self) -> None:
        if self.confirmed <= self._persisted and not self._dirty:
            return
        upto, dirty = self.confirmed, self._dirty
        self._dirty = {}
        try:
            await self._outbox.ack(self.name, upto, dirty)
        except OutboxError as exc:
            self._failing = True
            _failures.warning(
                self.name,
                "%s: could not record delivery up to %d: %s (after a restart the sink may "
                "send again what it sent since)",
                self.name,
                upto,
                exc,
            )
            self._dirty = {**dirty, **self._dirty}
            return
        if self._failing:
            self._failing = False
            log.info("%s: delivery is recorded again (up to %d)", self.name, upto)
        self._persisted = upto
