"""Where messages come from. Each source runs until cancelled and never raises for a
device that is missing, vanishes or sends garbage: it counts, logs once, and retries."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from gateway.model import Inbound


class IngestPort(Protocol):
    """What a source hands its messages to (the pipeline's ingest stage)."""

    async def put(self, item: Inbound) -> None: ...

    async def put_all(self, items: Iterable[Inbound]) -> None:
        """``put`` of each item, in order (what one read of a byte stream completed)."""

    def port_closed(self, port: str, reason: str | None = None) -> None: ...


class Source(Protocol):
    name: str

    async def run(self, ingest: IngestPort) -> None: ...

    def health(self) -> dict[str, Any]: ...
