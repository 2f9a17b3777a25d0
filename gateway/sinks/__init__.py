"""Where records go. Each sink delivers from its own outbox cursor, so a slow or
absent peer holds back only itself (docs/architecture.md, "Sinks")."""

from __future__ import annotations

from typing import Any, Protocol

from gateway.sinks.delivery import Delivery
from gateway.sinks.mqtt import MqttSession


class Sink(Protocol):
    name: str
    session: MqttSession
    delivery: Delivery

    async def run(self) -> None: ...

    async def close(self) -> None: ...

    def health(self) -> dict[str, Any]: ...
