"""Where records go. Each sink delivers from its own outbox cursor, so a slow or
absent peer holds back only itself (docs/architecture.md, "Sinks")."""

from __future__ import annotations

from typing import Any, Protocol


class Sink(Protocol):
    """What the service needs of a sink: it builds one, runs it, and stops it."""

    name: str

    async def run(self) -> None:
        """Delivers from its own outbox cursor until cancelled; never raises for its peer."""

    async def started(self) -> None:
        """Returns once the sink has made its first attempt to reach its peer (for READY)."""

    async def close(self) -> None:
        """Records how far it got (called once it is cancelled)."""

    def health(self) -> dict[str, Any]: ...

    def set_allowed_commands(self, names: list[str]) -> None:
        """The bridge's command allow-list from a reloaded configuration (SIGHUP)."""
