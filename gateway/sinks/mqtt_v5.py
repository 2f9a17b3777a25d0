"""The ``protocol = "5"`` connection: ``mqtt5_wire.Wire5`` under the session.

Everything the session and the bridges use runs on it: the connect with credentials,
TLS and the last will, subscriptions with No Local, control publishes and the record
window. The client starts clean each time (the sinks re-send from their cursors, so
there is no broker-side session to keep), and a gateway that stops sends DISCONNECT 0,
so the broker does not publish the will.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

import mqtt5

from gateway.sinks.mqtt5_wire import Records, Wire5
from gateway.sinks.mqtt_link import MqttLink, Subscription, Will, tls_context
from gateway.sinks.window import Refused

CONNACK_WAIT_S = 30.0


class V5Connection:
    """``mqtt_link.Connection`` on one open Wire5."""

    def __init__(self, wire: Wire5) -> None:
        self.wire = wire

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        await self.wire.publish(topic, payload, retain=retain)

    def records(self, size: int) -> contextlib.nullcontext[Records]:
        return contextlib.nullcontext(self.wire.records(size))  # nothing to undo at its end

    async def subscribe(self, subs: Sequence[Subscription]) -> list[int]:
        filters = [
            mqtt5.TopicFilter(s.topic, max_qos=mqtt5.QoS.AT_LEAST_ONCE, no_local=s.no_local)
            for s in subs
        ]
        return await self.wire.subscribe(filters) if filters else []

    async def messages(self) -> AsyncIterator[tuple[str, bytes]]:
        while (message := await self.wire.messages.get()) is not None:
            yield message
        self.wire.closed.result()  # raises the WireError that ended the connection


def connect_packet(link: MqttLink, will: Will | None) -> mqtt5.ConnectPacket:
    return mqtt5.ConnectPacket(
        link.client_id,
        username=link.username,
        password=link.password.encode() if link.password is not None else None,
        clean_start=True,
        keep_alive=link.keepalive_s,
        will=mqtt5.Will(
            will.topic, payload=will.payload, qos=mqtt5.QoS.AT_LEAST_ONCE, retain=will.retain
        )
        if will
        else None,
    )


@contextlib.asynccontextmanager
async def connect(
    link: MqttLink, will: Will | None, refused: Refused
) -> AsyncIterator[V5Connection]:
    wire = await Wire5.open(
        link.host,
        link.port,
        connect_packet(link, will),
        window=link.max_inflight,
        refused=refused,
        ssl=tls_context(link),
        connack_wait_s=CONNACK_WAIT_S,
    )
    try:
        yield V5Connection(wire)
    finally:
        wire.close(mqtt5.DisconnectReasonCode.NORMAL_DISCONNECTION)
