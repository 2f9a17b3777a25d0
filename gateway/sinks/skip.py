"""Records a sink cannot render: counted, logged with their key, and passed over.

A record that a sink cannot turn into a payload (a stored blob the decoder
refuses, a value JSON has no form for, a renderer bug) must never stop the
sink, and sending it again would fail again. The sink confirms it without
sending it, so its cursor moves on; the record stays in the outbox until every
sink has passed it, like any other. The other sink renders for itself and is
not affected.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from gateway.fields import dedup_key
from gateway.health import Health
from gateway.logs import BadInput, RateLimitedLog
from gateway.model import Record

T = TypeVar("T")


class Unrenderable:
    """Runs a sink's renderer on one record; a failure skips that record only."""

    def __init__(self, sink: str, health: Health, bad_input: RateLimitedLog) -> None:
        self._sink = sink
        self._counter = f"{sink}_unrenderable"
        self._bad = BadInput(health.counters, bad_input)

    def render(self, record: Record, renderer: Callable[[Record], T]) -> T | None:
        """``renderer(record)``, or None when it raised (counted and logged)."""
        try:
            return renderer(record)
        # Renderers are pure functions of one record: whatever they raise is about
        # that record, so it is skipped instead of stopping delivery for everyone.
        except Exception as exc:  # noqa: BLE001
            self._bad(
                self._counter,
                f"{self._sink}:unrenderable",
                "%s: record %d (%s %s) cannot be rendered (%s: %s); skipped, not retried",
                self._sink,
                record.id,
                record.kind.value,
                dedup_key(record.node_id, record.boot_id, record.seq, record.epoch),
                type(exc).__name__,
                exc,
            )
            return None
