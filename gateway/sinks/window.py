"""Publishes confirmed in the order they started: what a sink's cursor relies on.

Both publish paths (``publisher.Publisher`` on paho, ``mqtt5_wire.Wire5`` on the mqtt5
codec) keep their unconfirmed publishes here. Acknowledgements may arrive in any order;
each ``on_done`` runs only once its publish and every earlier one are acknowledged, so the
cursor only moves over a confirmed prefix.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from dataclasses import dataclass

Done = Callable[[], None]
Refused = Callable[[str, int], None]  # (topic, reason code): a publish the broker refused


@dataclass(slots=True)
class Slot:
    topic: str | None
    on_done: Done | None
    acked: bool = False


class InOrderWindow:
    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._slots: collections.deque[Slot] = collections.deque()
        self._changed = asyncio.Event()

    def __len__(self) -> int:
        return len(self._slots)

    def full(self) -> bool:
        return len(self._slots) >= self.size

    def add(self, topic: str | None, on_done: Done | None) -> Slot:
        slot = Slot(topic, on_done)
        self._slots.append(slot)
        return slot

    def marker(self, on_done: Done | None) -> None:
        """A place in line that sends nothing: ``on_done`` runs after every earlier one
        (a sink confirms records it chose not to send this way)."""
        self.add(None, on_done).acked = True
        self.advance()

    def advance(self) -> None:
        """Runs the ``on_done`` of the acknowledged prefix, in order."""
        q = self._slots
        while q and q[0].acked:
            on_done = q.popleft().on_done
            if on_done is not None:
                on_done()
        if len(q) < self.size:
            self._changed.set()

    async def changed(self) -> None:
        """Returns after the next ``advance`` that leaves room, or ``wake``."""
        self._changed.clear()
        await self._changed.wait()

    def wake(self) -> None:
        """Lets every waiter look again (the connection ended, say)."""
        self._changed.set()
