"""Whether each node is online: the pipeline's liveness stage.

A node is online from its first message and offline after 3 heartbeat periods
without one, or when the port it was heard on closes. Each change becomes a
status record, written in order with the node's other records.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from gateway.model import node_hex
from gateway.nodes import LiveNode, NodeRegistry


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A node went online or offline; written to the outbox in order with its events."""

    node_id: int
    online: bool
    reason: str


class Liveness:
    def __init__(self, registry: NodeRegistry, queue: asyncio.Queue[Any]) -> None:
        self._registry = registry
        self._queue = queue
        # offline changes that found the pipeline's queue full: written with the next batch
        self._overflow: list[StatusChange] = []

    def mark_offline(self, node: LiveNode, reason: str) -> None:
        if node.online:
            node.online = False
            node.downlink = None
            # a flood of made-up ids times out at once: rate-limited like "new node"
            self._registry.news.info(
                "offline", "node %s offline: %s", node_hex(node.node_id), reason
            )
            change = StatusChange(node.node_id, False, reason)
            try:
                self._queue.put_nowait(change)
            except asyncio.QueueFull:
                self._overflow.append(change)

    def port_closed(self, port: str, reason: str | None = None) -> None:
        for node in self._registry.on_port(port):
            self.mark_offline(node, reason or f"port {port} closed")

    def take_overflow(self) -> list[StatusChange]:
        """The changes the queue had no room for, oldest first; they are taken once."""
        out, self._overflow = self._overflow, []
        return out

    async def watch(self, period_s: float = 1.0) -> None:
        while True:
            await asyncio.sleep(period_s)
            for node in self._registry.timed_out(time.monotonic()):
                self.mark_offline(node, "no message for 3 heartbeat periods")
