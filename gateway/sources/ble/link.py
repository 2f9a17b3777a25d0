"""One connected BLE node: connect, read INFO, subscribe, reassemble, and the downlink.

A session lasts from connect to disconnect. Every BlueZ call runs under an outer
timeout (``call_timeout_s``), because a D-Bus call that never returns is how
BLE gateways on BlueZ go silent. Notifications arrive in a callback; their
messages go through a bounded queue to one task that hands them to the
pipeline in order. Everything sent to the node (ACKs, commands) goes through
another queue and one writer task, so the pipeline never waits for a radio
round trip; a newer ACK replaces one not yet written, since ACKs are
cumulative.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

from bleak import BleakClient
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.device import BLEDevice
from bleak_retry_connector import close_stale_connections, establish_connection

from gateway.clock import Clock
from gateway.logs import BadInput
from gateway.model import Inbound, node_hex
from gateway.protocol import Info, Message, ProtocolError, Reassembler, decode, fragment
from gateway.protocol.constants import (
    BLE_COMMAND_CHAR_UUID,
    BLE_EVENT_CHAR_UUID,
    BLE_INFO_CHAR_UUID,
    BLE_MIN_ATT_MTU,
    MsgType,
)
from gateway.sources import IngestPort

log = logging.getLogger(__name__)

TRANSPORT: Final = "ble"
# messages from notifications waiting for the pipeline; past this the link drops them
# (the node resends what is not acknowledged)
_INBOX: Final = 1024
_ACK: Final = int(MsgType.ACK)
_SETTLE_S: Final = 2.0


class LinkLost(Exception):
    """The session ended; ``reason`` says why, for the node's offline status."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class LinkStats:
    connects: int = 0
    drops: int = 0
    notifications: int = 0
    messages: int = 0
    bad: Counter[str] = field(default_factory=Counter)
    writes: int = 0
    write_errors: int = 0
    last_error: str | None = None


class NodeLink:
    def __init__(
        self,
        device: BLEDevice,
        *,
        adapter: str,
        ingest: IngestPort,
        bad: BadInput,
        connect_timeout_s: float,
        call_timeout_s: float,
        rssi: int | None,
    ) -> None:
        self.device = device
        self.adapter = adapter
        self.port = f"{adapter}/{device.address}"
        self._ingest = ingest
        self._bad = bad
        self._connect_timeout_s = connect_timeout_s
        self._call_timeout_s = call_timeout_s
        self.rssi = rssi
        self.stats = LinkStats()
        self.node_id: int | None = None
        self.connected = False
        self._in_session = False
        self._quiet_after = 0.0  # monotonic s: BlueZ reports the session's end until then
        self._client: BleakClient | None = None
        self._lost: asyncio.Event = asyncio.Event()
        self._inbox: asyncio.Queue[Inbound] = asyncio.Queue(_INBOX)
        self._outbox: list[bytes] = []
        self._out_ready = asyncio.Event()
        self._tags = itertools.cycle(range(256))
        self._reassembler = Reassembler()

    def health(self) -> dict[str, Any]:
        s = self.stats
        return {
            "node": node_hex(self.node_id) if self.node_id is not None else None,
            "connected": self.connected,
            "connects": s.connects,
            "drops": s.drops,
            "notifications": s.notifications,
            "messages": s.messages,
            "bad": dict(s.bad),
            "writes": s.writes,
            "write_errors": s.write_errors,
            "rssi": self.rssi,
            "last_error": s.last_error,
        }

    # ---- one session -------------------------------------------------------------

    async def session(self, allowed: Any) -> None:
        """Connects and runs until the link is lost (raises LinkLost) or cancelled.

        ``allowed(node_id)`` says whether the node, once its INFO names it, may stay.
        """
        self._lost.clear()
        self._reassembler = Reassembler()
        self._in_session = True
        try:
            await self._session(allowed)
        finally:
            self._in_session = False
            self._quiet_after = time.monotonic() + _SETTLE_S

    @property
    def busy(self) -> bool:
        """A session or an attempt is under way, or has just ended: what BlueZ reports of
        the device now is our own doing, not the node's advertising."""
        return self._in_session or time.monotonic() < self._quiet_after

    async def _session(self, allowed: Any) -> None:
        client = await self._connect()
        tasks: list[asyncio.Task[None]] = []
        try:
            info = await self._call(client.read_gatt_char(BLE_INFO_CHAR_UUID), "INFO read")
            msg = self._decode(bytes(info))
            if msg is None or not isinstance(msg.body, Info):
                raise LinkLost("its info characteristic holds no INFO message")
            if not allowed(msg.header.node_id):
                raise LinkLost(f"node {node_hex(msg.header.node_id)} is not in [ble] allow")
            self.node_id = msg.header.node_id
            self.connected = True
            self.stats.connects += 1
            tasks = [
                asyncio.create_task(self._pump(), name=f"ble in {self.port}"),
                asyncio.create_task(self._writer(client), name=f"ble out {self.port}"),
            ]
            self._deliver(msg)
            await self._call(client.start_notify(BLE_EVENT_CHAR_UUID, self._notified), "subscribe")
            log.info("ble: node %s connected on %s", node_hex(self.node_id), self.port)
            await self._lost.wait()
            raise LinkLost("BLE link lost")
        finally:
            if self.connected:
                self.stats.drops += 1
            self.connected = False
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._outbox.clear()
            with contextlib.suppress(Exception):
                # a link that is already gone may fail or hang here: either is fine
                async with asyncio.timeout(self._call_timeout_s):
                    await client.disconnect()

    async def _connect(self) -> BleakClient:
        def on_disconnect(_: BleakClient) -> None:
            self._lost.set()

        # A link BlueZ still holds with no session of ours on it (the gateway was killed,
        # say) is stale: BlueZ keeps links across its clients' lives, but not their
        # notification sessions. Closing it first gives the node a clean session.
        await self._call(close_stale_connections(self.device), "closing a stale link")
        async with asyncio.timeout(self._connect_timeout_s * 4):  # establish retries
            client: BleakClient = await establish_connection(
                BleakClient,
                self.device,
                self.device.name or self.device.address,
                disconnected_callback=on_disconnect,
                max_attempts=3,
                timeout=self._connect_timeout_s,
                bluez={"adapter": self.adapter},
            )
        self._client = client
        return client

    async def _call(self, call: Any, what: str) -> Any:
        try:
            async with asyncio.timeout(self._call_timeout_s):
                return await call
        except TimeoutError:
            raise LinkLost(f"{what} did not answer within {self._call_timeout_s:g} s") from None

    # ---- uplink ------------------------------------------------------------------

    def _notified(self, _: BleakGATTCharacteristic, data: bytearray) -> None:
        self.stats.notifications += 1
        try:
            raw = self._reassembler.push(bytes(data))
        except ProtocolError as exc:
            self._refused(exc)
            return
        if raw is None:
            return
        msg = self._decode(raw)
        if msg is not None:
            self._deliver(msg)

    def _decode(self, raw: bytes) -> Message | None:
        try:
            return decode(raw)
        except ProtocolError as exc:
            self._refused(exc)
            return None

    def _refused(self, exc: ProtocolError) -> None:
        self.stats.bad[exc.reason.value] += 1
        self._bad(
            f"ble_{exc.reason.value}",
            f"ble:{self.port}:{exc.reason.value}",
            "ble: %s sent a frame refused as %s (%s)",
            self.port,
            exc.reason.value,
            exc.detail,
        )

    def _deliver(self, msg: Message) -> None:
        if self.node_id is not None and msg.header.node_id != self.node_id:
            self._bad(
                "ble_wrong_node",
                f"ble:{self.port}:node",
                "ble: %s, the link of node %s, sent a message of node %s: dropped",
                self.port,
                node_hex(self.node_id),
                node_hex(msg.header.node_id),
            )
            return
        item = Inbound(msg, TRANSPORT, self.port, Clock.now_ms(), self._send, rssi=self.rssi)
        try:
            self._inbox.put_nowait(item)
        except asyncio.QueueFull:
            self._bad.counters["ble_inbox_full"] += 1  # the node resends it
            return
        self.stats.messages += 1

    async def _pump(self) -> None:
        while True:
            item = await self._inbox.get()
            await self._ingest.put(item)

    # ---- downlink ----------------------------------------------------------------

    async def _send(self, message: bytes) -> None:
        """The downlink the pipeline sees: queued, written by the writer task."""
        if not self.connected:
            raise ConnectionError(f"{self.port} is not connected")
        if len(message) > 1 and message[1] == _ACK:
            # cumulative: a newer ACK makes any ACK not yet written redundant
            self._outbox = [m for m in self._outbox if not (len(m) > 1 and m[1] == _ACK)]
        self._outbox.append(message)
        self._out_ready.set()

    async def _writer(self, client: BleakClient) -> None:
        # Downlink messages are small (an ACK, a command: tens of bytes), so they
        # go at the minimum ATT MTU: bleak learns the real one only by acquiring a
        # characteristic's socket, which would take the notifications away from D-Bus.
        mtu = BLE_MIN_ATT_MTU
        while True:
            await self._out_ready.wait()
            self._out_ready.clear()
            while self._outbox:
                message = self._outbox.pop(0)
                try:
                    for piece in fragment(message, next(self._tags), mtu):
                        async with asyncio.timeout(self._call_timeout_s):
                            await client.write_gatt_char(
                                BLE_COMMAND_CHAR_UUID, piece, response=True
                            )
                    self.stats.writes += 1
                except Exception as exc:  # noqa: BLE001 - any failure of a write is the link's
                    self.stats.write_errors += 1
                    self.stats.last_error = f"write: {exc!r}"
                    log.info("ble: write to %s failed: %r", self.port, exc)
                    self._lost.set()
                    return
