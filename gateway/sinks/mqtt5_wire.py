"""One MQTT 5 connection on the ``mqtt5`` packet codec.

``mqtt5`` (sans-io, in Rust) encodes and decodes every packet. This module owns only what
a codec leaves to its user: the framing of the byte stream, packet ids, the keepalive
timer, and the window of QoS 1 publishes confirmed in the order they started, which the
sinks' cursors rely on (the same contract as ``publisher.Publisher``). Reconnecting is the
session's job: a lost connection fails everything waiting on it, and the sink re-sends from
its cursor. ``docs/decisions.md`` has the measurements behind the choice.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
import time
from typing import Any, Final

import mqtt5

from gateway.sinks.window import Done, InOrderWindow, Refused, Slot

_FAILURE = 0x80  # reason codes from here on are refusals
PACKET_TOO_LARGE: Final = 0x95


class WireError(Exception):
    """The connection failed or was refused; ``code`` is the MQTT 5 reason code, if any."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class Wire5(asyncio.Protocol):
    """Use ``await Wire5.open(...)``; then ``publish_nowait`` for records (after
    ``await room()``, or through ``records()``), ``await publish`` for single messages,
    ``messages`` for what arrives (``None`` once the connection has ended), and ``closed``
    to learn that it ended.

    What the broker states in its CONNACK is kept to: never more QoS 1 publishes
    unconfirmed than its Receive Maximum, and no packet over its Maximum Packet Size (such
    a publish is not sent; it counts as refused, with 0x95, so the line moves on).
    """

    def __init__(self, window: int, refused: Refused | None = None) -> None:
        loop = asyncio.get_running_loop()
        self._window = InOrderWindow(window)
        self._refused = refused
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = loop.create_future()
        self.messages: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue()
        self.receive_max = 65535  # the broker's, from its CONNACK
        self.max_packet_size: int | None = None  # likewise; None: no limit stated
        self.unknown_acks = 0  # PUBACKs for ids not in flight: counted, otherwise ignored
        self._connack: asyncio.Future[mqtt5.ConnAckPacket] = loop.create_future()
        self._subacks: dict[int, asyncio.Future[list[int]]] = {}
        self._in = bytearray()
        self._out = bytearray()
        # a window publish's slot, or an awaited publish's answer (its reason code)
        self._inflight: dict[int, Slot | asyncio.Future[int]] = {}
        self._next_id = 0
        self._last_rx = time.monotonic()
        self._pinger: asyncio.Task[None] | None = None

    # connection life ------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        connect: mqtt5.ConnectPacket,
        *,
        window: int,
        refused: Refused | None = None,
        ssl: ssl_module.SSLContext | None = None,
        connack_wait_s: float = 30.0,
    ) -> Wire5:
        """Connects and waits for a successful CONNACK; raises WireError otherwise."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(connack_wait_s):
                _, wire = await loop.create_connection(
                    lambda: Wire5(window, refused), host, port, ssl=ssl
                )
                wire._send(connect.write())
                ack = await wire._connack
        except TimeoutError:
            raise WireError(f"no CONNACK from {host}:{port} within {connack_wait_s:g} s") from None
        except OSError as exc:
            # the cause is kept: an ssl.SSLError there is a TLS set-up to fix (doctor)
            raise WireError(f"cannot connect to {host}:{port}: {exc}") from exc
        if int(ack.reason_code) >= _FAILURE:
            wire.close()
            raise WireError(f"connection refused: {ack.reason_code.name}", int(ack.reason_code))
        wire._check_open()  # what came with the CONNACK may have ended it already
        wire.receive_max = ack.receive_max or 65535
        wire.max_packet_size = ack.max_packet_size
        wire._window.size = min(wire._window.size, wire.receive_max)
        keepalive = ack.server_keep_alive or connect.keep_alive
        if keepalive:
            wire._pinger = loop.create_task(wire._keepalive(keepalive))
        return wire

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(WireError(f"connection lost: {exc}" if exc else "connection closed"))

    def close(self, reason: mqtt5.DisconnectReasonCode | None = None) -> None:
        """Ends the connection; with ``reason``, a DISCONNECT goes first (0: no will)."""
        if self.transport is not None and not self.transport.is_closing():
            if reason is not None:
                self._send(mqtt5.DisconnectPacket(reason_code=reason).write())
            self._flush()
            self.transport.close()
        self._fail(WireError("closed by the gateway"))

    def _fail(self, error: WireError) -> None:
        if self._pinger is not None:
            self._pinger.cancel()
        futures: list[asyncio.Future[Any]] = [self._connack, *self._subacks.values(), self.closed]
        for fut in futures:
            if not fut.done():
                fut.set_exception(error)
        for out in self._inflight.values():
            if isinstance(out, asyncio.Future) and not out.done():
                out.set_exception(error)
        self._inflight.clear()
        self.messages.put_nowait(None)
        self._window.wake()  # whoever waits for room learns of the end from ``closed``
        self.closed.exception()  # retrieved: nobody has to await it

    async def _keepalive(self, seconds: int) -> None:
        while True:
            await asyncio.sleep(seconds / 2)
            if time.monotonic() - self._last_rx > 1.5 * seconds:
                self._abort(WireError(f"no packet from the broker for {1.5 * seconds:g} s"))
                return
            self._send(mqtt5.PingReqPacket().write())

    def _abort(self, error: WireError) -> None:
        if self.transport is not None:
            self.transport.abort()
        self._fail(error)

    # what arrives ------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self._last_rx = time.monotonic()
        self._in += data
        used = 0
        try:
            with memoryview(self._in) as view:
                while used < len(view):
                    try:
                        packet, n = mqtt5.read(view[used:])
                    except IndexError:  # "Not enough bytes": the rest comes with the next read
                        break
                    used += n
                    self._packet(packet)
        except ValueError as exc:  # a malformed packet: nothing after it can be trusted
            self._abort(WireError(f"malformed packet from the broker: {exc}"))
            return
        del self._in[:used]
        self._window.advance()

    def _packet(self, packet: mqtt5.Packet) -> None:
        if isinstance(packet, mqtt5.PubAckPacket):
            self._puback(packet.packet_id, int(packet.reason_code))
        elif isinstance(packet, mqtt5.PublishPacket):
            self.messages.put_nowait((packet.topic, packet.payload))
            if packet.qos == mqtt5.QoS.AT_LEAST_ONCE and packet.packet_id is not None:
                self._send(mqtt5.PubAckPacket(packet_id=packet.packet_id).write())
        elif isinstance(packet, mqtt5.ConnAckPacket):
            if not self._connack.done():
                self._connack.set_result(packet)
        elif isinstance(packet, mqtt5.SubAckPacket):
            fut = self._subacks.pop(packet.packet_id, None)
            if fut is not None and not fut.done():
                fut.set_result([int(c) for c in packet.reason_codes])
        elif isinstance(packet, mqtt5.DisconnectPacket):
            code = int(packet.reason_code)
            self._abort(WireError(f"the broker disconnected: {packet.reason_code.name}", code))
        # PINGRESP: its arrival is all the keepalive needs (``_last_rx``)

    def _puback(self, packet_id: int, code: int) -> None:
        out = self._inflight.pop(packet_id, None)
        if out is None:
            self.unknown_acks += 1
        elif isinstance(out, asyncio.Future):
            if not out.done():
                out.set_result(code)
        else:
            out.acked = True
            # refused (e.g. 0x87, not authorised): sending it again would be refused
            # again, so it counts as handled and is reported
            if code >= _FAILURE and self._refused is not None:
                self._refused(out.topic or "", code)

    # what is sent ------------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        # packets of one pass of the event loop go out in one write: a send() per packet
        # would cost more than encoding it
        if not self._out:
            asyncio.get_running_loop().call_soon(self._flush)
        self._out += data

    def _flush(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(bytes(self._out))
        self._out.clear()

    def _packet_id(self) -> int:
        for _ in range(65535):
            self._next_id = self._next_id % 65535 + 1
            if self._next_id not in self._inflight and self._next_id not in self._subacks:
                return self._next_id
        raise WireError("all 65,535 packet ids are in flight")

    def __len__(self) -> int:
        return len(self._window)

    def _check_open(self) -> None:
        """Raises the WireError that ended the connection, if it has ended."""
        if self.closed.done():
            self.closed.result()

    def _busy(self) -> bool:
        return len(self._inflight) >= self.receive_max

    async def room(self) -> None:
        """Returns once the window has room; raises the WireError that ended the connection."""
        while (self._window.full() or self._busy()) and not self.closed.done():
            await self._window.changed()
        self._check_open()

    def records(self, size: int) -> Records:
        """The window as a sink uses it (``mqtt_link.RecordWindow``), ``size`` at most."""
        self._window.size = max(1, min(size, self.receive_max))
        return Records(self)

    def publish_nowait(
        self, topic: str | None, payload: bytes, on_done: Done | None, *, retain: bool = False
    ) -> None:
        """A QoS 1 publish in the window; ``on_done`` runs once it and every earlier one
        are confirmed. ``topic=None`` sends nothing and just keeps its place in line."""
        self._check_open()
        if topic is None:
            self._window.marker(on_done)
            return
        pid = self._packet_id()
        data = mqtt5.PublishPacket(
            topic=topic, payload=payload, qos=mqtt5.QoS.AT_LEAST_ONCE, retain=retain, packet_id=pid
        ).write()
        if self._too_large(topic, data):
            self._window.marker(on_done)
            return
        self._inflight[pid] = self._window.add(topic, on_done)
        self._send(data)

    def _too_large(self, topic: str, data: bytes) -> bool:
        # the broker would drop the connection for it (DISCONNECT 0x95), and the sink
        # would send it again after every reconnect: refused here instead, once
        if self.max_packet_size is None or len(data) <= self.max_packet_size:
            return False
        if self._refused is not None:
            self._refused(topic, PACKET_TOO_LARGE)
        return True

    async def drain(self) -> None:
        """Waits until every window publish started so far is confirmed; raises the
        connection's WireError if it ended first."""
        while self._window and not self.closed.done():
            await self._window.changed()
        if self._window:
            self.closed.result()

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """One QoS 1 publish outside the window; returns at its PUBACK. A refusal goes
        to ``refused``, as for the window's."""
        while self._busy() and not self.closed.done():
            await self._window.changed()
        self._check_open()
        pid = self._packet_id()
        data = mqtt5.PublishPacket(
            topic=topic, payload=payload, qos=mqtt5.QoS.AT_LEAST_ONCE, retain=retain, packet_id=pid
        ).write()
        if self._too_large(topic, data):
            return
        answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._inflight[pid] = answer
        self._send(data)
        code = await answer
        if code >= _FAILURE and self._refused is not None:
            self._refused(topic, code)

    async def subscribe(self, filters: list[mqtt5.TopicFilter]) -> list[int]:
        """Subscribes; returns the SUBACK's reason codes, one per filter."""
        self._check_open()
        pid = self._packet_id()
        fut: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self._subacks[pid] = fut
        self._send(mqtt5.SubscribePacket(pid, filters).write())
        try:
            return await fut
        finally:
            self._subacks.pop(pid, None)


class Records:
    """``mqtt_link.RecordWindow`` on a Wire5: ``room()`` then ``publish_nowait``."""

    def __init__(self, wire: Wire5) -> None:
        self._wire = wire
        self.size = wire._window.size

    def __len__(self) -> int:
        return len(self._wire)

    async def publish(
        self,
        topic: str | None,
        payload: bytes,
        on_done: Done | None = None,
        *,
        retain: bool = False,
    ) -> None:
        await self._wire.room()
        self._wire.publish_nowait(topic, payload, on_done, retain=retain)

    async def drain(self) -> None:
        await self._wire.drain()
