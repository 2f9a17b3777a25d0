"""QoS 1 publishes through the session's paho client, confirmed in the order they started.

A sink keeps up to ``size`` publishes in flight; each one's ``on_done`` runs in
start order once it and every earlier one are acknowledged, so the sink's
cursor only moves over a confirmed prefix, and after a lost connection it
re-sends from the first unconfirmed message.

Why not ``aiomqtt.Client.publish()`` for this: it waits on an event per message
behind a timeout and scans every pending call on each publish; with a task per
message to keep several in flight that costs 90-115 µs of CPU per message on
the reference machine, against 45-50 µs for paho's own ``publish()`` with the
PUBACK taken from paho's ``on_publish`` callback (bench/bench_mqtt_client.py). aiomqtt
still owns the connection, and its own publishes (health, command answers)
keep working: acknowledgements for message ids this publisher did not start
go on to aiomqtt's handler. ``tests/test_conformance.py`` pins the aiomqtt and
paho internals used here.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import aiomqtt
import paho.mqtt.client as paho

from gateway.sinks.window import Done, InOrderWindow, Refused, Slot


class Publisher:
    """Use as ``with Publisher(client, size) as pub:`` for the life of one connection."""

    def __init__(
        self, client: aiomqtt.Client, size: int, *, refused: Refused | None = None
    ) -> None:
        self._paho: paho.Client = client._client  # pinned in tests/test_conformance.py
        self._window = InOrderWindow(size)
        self.size = self._window.size
        self._refused = refused
        self._pending: dict[int, Slot] = {}
        self._prior: Any = None

    def __enter__(self) -> Publisher:
        self._prior = self._paho.on_publish
        self._paho.on_publish = self._on_publish
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._paho.on_publish = self._prior

    def __len__(self) -> int:
        return len(self._window)

    async def publish(
        self,
        topic: str | None,
        payload: bytes,
        on_done: Done | None = None,
        *,
        retain: bool = False,
    ) -> None:
        """Starts a publish once fewer than ``size`` are unconfirmed.

        ``topic=None`` publishes nothing: its ``on_done`` just runs after every
        earlier one (a sink uses it to confirm records it chose not to send).
        """
        while self._window.full():
            await self._window.changed()
        if topic is None:
            self._window.marker(on_done)
            return
        info = self._paho.publish(topic, payload, 1, retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise aiomqtt.MqttCodeError(info.rc, f"could not publish to {topic}")
        self._pending[info.mid] = self._window.add(topic, on_done)

    async def drain(self) -> None:
        """Waits until everything started so far is confirmed."""
        while self._window:
            await self._window.changed()

    def _on_publish(
        self, client: paho.Client, userdata: Any, mid: int, reason: Any, properties: Any
    ) -> None:
        slot = self._pending.pop(mid, None)
        if slot is None:  # one of aiomqtt's own publishes
            if self._prior is not None:
                self._prior(client, userdata, mid, reason, properties)
            return
        # MQTT 5: the broker took the message but refused it (e.g. 0x87, not authorised).
        # Sending it again would be refused again, so it counts as handled and is reported.
        if getattr(reason, "is_failure", False) and self._refused is not None:
            self._refused(slot.topic or "", int(reason.value))
        slot.acked = True
        self._window.advance()
