"""Counters, gauges and the gateway health payload (docs/topics.md, "Gateway status").

Components register a section provider; the payload is built on demand, so a
counter costs one dict increment on the hot path and nothing else.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Final

from gateway import __version__
from gateway.fields import SCHEMA

Section = Callable[[], Any]

# Counters in every payload, at 0 too: ThingsBoard keeps a key's last value until a report
# carries it again, and the shipped gateway rule chain compares each of these with the last
# report (thingsboard_rules/build.py GATEWAY_COUNTERS); left out at 0 after a restart, the
# pre-restart total would stand in for it.
REPORTED_AT_ZERO: Final = (
    "events_lost_at_node",
    "events_refused_disk_full",
    "rejected_unauthenticated",
)


class Health:
    def __init__(self, gateway_id: str) -> None:
        self.gateway_id = gateway_id
        self.counters: Counter[str] = Counter(dict.fromkeys(REPORTED_AT_ZERO, 0))
        self.started = time.monotonic()
        self.started_ms = time.time_ns() // 1_000_000
        self._sections: dict[str, Section] = {}

    def section(self, name: str, provider: Section) -> Callable[[], None]:
        """Adds a section to the payload; returns the function that removes it."""
        self._sections[name] = provider

        def remove() -> None:
            self._sections.pop(name, None)

        return remove

    def read(self, name: str) -> Any:
        """One section as the payload would carry it; None when it is not registered."""
        provider = self._sections.get(name)
        return None if provider is None else provider()

    def payload(self, *, online: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schema": SCHEMA,
            "kind": "gateway",
            "gateway": self.gateway_id,
            "version": __version__,
            "online": online,
            "ts": time.time_ns() // 1_000_000,
            "started": self.started_ms,
            "uptime_s": round(time.monotonic() - self.started, 1),
            "counters": dict(sorted(self.counters.items())),
        }
        for name, provider in self._sections.items():
            out[name] = provider()
        return out

    def offline_payload(self) -> dict[str, Any]:
        """The retained last will: what subscribers see after the gateway vanished."""
        return {"schema": SCHEMA, "kind": "gateway", "gateway": self.gateway_id, "online": False}
