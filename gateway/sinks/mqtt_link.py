"""What a bridge needs from an MQTT connection, whichever client carries it.

``protocol = "5"`` runs on ``mqtt_v5`` (the mqtt5 codec under ``mqtt5_wire.Wire5``),
``protocol = "3.1.1"`` on ``mqtt_paho`` (aiomqtt and paho); ``docs/decisions.md`` says
why. Both give a bridge the same ``Connection``: QoS 1 publishes that wait for their
PUBACK, a window of record publishes confirmed in start order, subscriptions, and the
messages that arrive. A refusal (an MQTT 5 reason code of 0x80 or more) goes to the
session's ``refused``; a lost connection raises, and the session connects again.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from gateway.sinks.window import Done


@dataclass(frozen=True, slots=True)
class MqttLink:
    """Everything needed to reach one broker."""

    host: str
    port: int
    protocol: str  # "3.1.1" or "5"
    client_id: str
    keepalive_s: int
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    tls_insecure: bool = False
    max_inflight: int = 1000
    reconnect_max_s: float = 60.0

    @property
    def v5(self) -> bool:
        return self.protocol == "5"


@dataclass(frozen=True, slots=True)
class Subscription:
    topic: str
    no_local: bool = False  # MQTT 5: do not deliver our own publishes back to us


@dataclass(frozen=True, slots=True)
class Will:
    """The last will: published by the broker if the connection ends without a DISCONNECT."""

    topic: str
    payload: bytes
    retain: bool = True  # always QoS 1


class RecordWindow(Protocol):
    """Up to ``size`` record publishes unconfirmed; each ``on_done`` runs once its publish
    and every earlier one are confirmed. ``topic=None`` sends nothing and keeps its place
    in line (a record a sink chose not to send)."""

    @property
    def size(self) -> int: ...

    def __len__(self) -> int: ...

    async def publish(
        self,
        topic: str | None,
        payload: bytes,
        on_done: Done | None = None,
        *,
        retain: bool = False,
    ) -> None: ...

    async def drain(self) -> None: ...


class Connection(Protocol):
    async def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """One QoS 1 message outside the window (health, answers); returns at its PUBACK."""

    def records(self, size: int) -> AbstractContextManager[RecordWindow]:
        """The record window, for the life of this connection."""

    async def subscribe(self, subs: Sequence[Subscription]) -> list[int]:
        """Subscribes at QoS 1; returns the broker's code for each filter."""

    def messages(self) -> AsyncIterator[tuple[str, bytes]]:
        """(topic, payload) of each message that arrives, until the connection ends."""


def tls_context(link: MqttLink) -> ssl.SSLContext | None:
    if link.ca_file is None and link.cert_file is None:
        return None
    ctx = ssl.create_default_context(cafile=link.ca_file)
    if link.cert_file is not None:
        ctx.load_cert_chain(link.cert_file, link.key_file)
    if link.tls_insecure:
        ctx.check_hostname = False
    return ctx
