"""What one QoS 1 publish costs the gateway process, by publish path. Prints; asserts nothing.

    python bench/bench_mqtt_client.py [--messages 100000] [--window 100]

Each path publishes the same 250-byte message to a local Mosquitto with up to
``window`` unacknowledged, and waits for every PUBACK:

  aiomqtt    ``await client.publish(...)`` in a task per message (what the sinks did before)
  publisher  gateway.sinks.publisher.Publisher: paho's publish on aiomqtt's connection
  wire       a bare asyncio protocol writing PUBLISH packets and counting PUBACKs: no
             client library at all, the floor of what Python on this machine can do
  mqtt5      gateway.sinks.mqtt5_wire.Wire5: the mqtt5 packet codec (Rust, sans-io) under
             the project's thin protocol (framing, packet ids, the in-order window, an
             on_done per message as the sinks need; MQTT 5 only)
  session    what the sinks use for ``protocol = "5"``: MqttSession.connect() (Wire5 under
             gateway.sinks.mqtt_v5) and the records() window, awaited per message
  gmqtt      gmqtt's Client.publish (asyncio-native); its PUBACKs counted from its handler
  zmqtt      ``await client.publish(...)`` in a task per message, as for aiomqtt

Reported: messages/s and CPU time of this process per message (user + system).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import struct
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.sinks.mqtt import MqttLink, MqttSession  # noqa: E402
from gateway.sinks.publisher import Publisher  # noqa: E402
from tests.peers import Mosquitto  # noqa: E402

TOPIC = "tinyml/bench/00000000000b0001/event"
PAYLOAD = b'{"v":1,"pad":"' + b"x" * 234 + b'"}'


def _session(port: int, window: int, protocol: str = "3.1.1") -> MqttSession:
    return MqttSession(
        "bench", MqttLink("127.0.0.1", port, protocol, "bench", 60, max_inflight=window)
    )


async def _task_per_message(publish: Callable[[], Awaitable[object]], n: int, window: int) -> None:
    """``n`` awaited publishes, ``window`` of them at once: a client whose publish returns
    only with its PUBACK needs a task per message to keep several in flight."""
    room = asyncio.Semaphore(window)

    async def one() -> None:
        try:
            await publish()
        finally:
            room.release()

    async with asyncio.TaskGroup() as tg:
        for _ in range(n):
            await room.acquire()
            tg.create_task(one())


async def via_aiomqtt(port: int, n: int, window: int) -> None:
    async with _session(port, window).client() as client:
        await _task_per_message(lambda: client.publish(TOPIC, PAYLOAD, qos=1), n, window)


async def via_publisher(port: int, n: int, window: int) -> None:
    async with _session(port, window).client() as client:
        with Publisher(client, window) as pub:
            for _ in range(n):
                await pub.publish(TOPIC, PAYLOAD)
            await pub.drain()


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


class _Wire(asyncio.Protocol):
    """Just enough MQTT 3.1.1 for this measurement: CONNECT, PUBLISH QoS 1, count PUBACKs."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.connected: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.acked = 0
        self.progress = asyncio.Event()
        self._in = bytearray()
        self._out = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._in += data
        i = 0
        while len(self._in) - i >= 2 and len(self._in) - i >= 2 + self._in[i + 1]:
            if self._in[i] == 0x20:
                self.connected.set_result(None)
            elif self._in[i] == 0x40:
                self.acked += 1
            i += 2 + self._in[i + 1]  # CONNACK and PUBACK fit in one length byte
        del self._in[:i]
        self.progress.set()

    def send(self, packet: bytes) -> None:
        if not self._out:
            asyncio.get_running_loop().call_soon(self._flush)
        self._out += packet

    def _flush(self) -> None:
        assert self.transport is not None
        self.transport.write(bytes(self._out))
        self._out.clear()


async def via_wire(port: int, n: int, window: int) -> None:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_connection(_Wire, "127.0.0.1", port)
    header = struct.pack("!H", 4) + b"MQTT" + bytes([4, 2]) + struct.pack("!H", 60)
    client_id = struct.pack("!H", 4) + b"wire"
    body = header + client_id
    proto.send(b"\x10" + _remaining_length(len(body)) + body)
    await proto.connected
    topic = struct.pack("!H", len(TOPIC)) + TOPIC.encode()
    sent = 0
    while proto.acked < n:
        while sent < n and sent - proto.acked < window:
            body = topic + struct.pack("!H", sent % 65535 + 1) + PAYLOAD
            proto.send(b"\x32" + _remaining_length(len(body)) + body)
            sent += 1
        proto.progress.clear()
        await proto.progress.wait()
    transport.close()


async def via_mqtt5(port: int, n: int, window: int) -> None:
    import mqtt5

    from gateway.sinks.mqtt5_wire import Wire5

    connect = mqtt5.ConnectPacket("bench-mqtt5", clean_start=True, keep_alive=60)
    wire = await Wire5.open("127.0.0.1", port, connect, window=window)
    done = 0

    def on_done() -> None:
        nonlocal done
        done += 1

    for _ in range(n):
        await wire.room()
        wire.publish_nowait(TOPIC, PAYLOAD, on_done)
    await wire.drain()
    assert done == n
    wire.close()


async def via_session(port: int, n: int, window: int) -> None:
    done = 0

    def on_done() -> None:
        nonlocal done
        done += 1

    async with _session(port, window, "5").connect() as conn:
        with conn.records(window) as records:
            for _ in range(n):
                await records.publish(TOPIC, PAYLOAD, on_done)
            await records.drain()
    assert done == n


async def via_gmqtt(port: int, n: int, window: int) -> None:
    import gmqtt

    client = gmqtt.Client("bench-gmqtt")
    acked = 0
    progress = asyncio.Event()
    handler = client._package_handler  # instrumentation only: gmqtt reports no PUBACKs
    original = handler._handle_puback_packet

    def counted(cmd: Any, packet: bytes) -> None:
        nonlocal acked
        original(cmd, packet)
        acked += 1
        progress.set()

    handler._handle_puback_packet = counted
    await client.connect("127.0.0.1", port, version=gmqtt.constants.MQTTv50)
    sent = 0
    while acked < n:
        while sent < n and sent - acked < window:
            client.publish(TOPIC, PAYLOAD, qos=1)
            sent += 1
        progress.clear()
        await progress.wait()
    await client.disconnect()


async def via_zmqtt(port: int, n: int, window: int) -> None:
    import zmqtt

    async with zmqtt.create_client("127.0.0.1", port, client_id="bench-zmqtt") as client:
        qos = zmqtt.QoS.AT_LEAST_ONCE
        await _task_per_message(lambda: client.publish(TOPIC, PAYLOAD, qos=qos), n, window)


PATHS: dict[str, Callable[[int, int, int], Awaitable[None]]] = {
    "aiomqtt": via_aiomqtt,
    "publisher": via_publisher,
    "wire": via_wire,
    "mqtt5": via_mqtt5,
    "session": via_session,
    "gmqtt": via_gmqtt,
    "zmqtt": via_zmqtt,
}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--window", type=int, default=100)
    ap.add_argument("--paths", nargs="+", choices=list(PATHS), default=list(PATHS))
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    for name in args.paths:
        path = PATHS[name]
        with tempfile.TemporaryDirectory() as d:
            broker = Mosquitto(Path(d))
            broker.start()
            try:
                r0 = resource.getrusage(resource.RUSAGE_SELF)
                t0 = time.perf_counter()
                asyncio.run(path(broker.port, args.messages, args.window))
                seconds = time.perf_counter() - t0
                r1 = resource.getrusage(resource.RUSAGE_SELF)
            finally:
                broker.stop()
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        print(
            f"{name:10} {args.messages / seconds:9,.0f} messages/s  "
            f"{cpu / args.messages * 1e6:6.1f} µs CPU per message  (window {args.window})"
        )


if __name__ == "__main__":
    main()
