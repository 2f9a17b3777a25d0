"""Wire5, the MQTT 5 connection on the mqtt5 codec, against a real Mosquitto: the
in-order window, refusals by reason code, a broker that vanishes with the window full, a
server-initiated DISCONNECT, a refused login, No Local. Two inputs no real broker sends (a
PUBACK for an id not in flight, a malformed packet) come from a scripted peer.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import mqtt5
import pytest

from gateway.sinks.mqtt5_wire import Wire5, WireError
from tests.peers import Collector, Mosquitto


def _connect(client_id: str = "wire5-test", **kw: object) -> mqtt5.ConnectPacket:
    return mqtt5.ConnectPacket(client_id, clean_start=True, keep_alive=30, **kw)  # type: ignore[arg-type]


async def _open(broker: Mosquitto, window: int = 16, **kw: object) -> Wire5:
    return await Wire5.open(broker.host, broker.port, _connect(), window=window, **kw)  # type: ignore[arg-type]


async def test_confirms_in_start_order_within_the_window(mosquitto: Mosquitto) -> None:
    sub = Collector(mosquitto, "t/#")
    await sub.start()
    refused: list[tuple[str, int]] = []
    wire = await _open(mosquitto, window=8, refused=lambda t, c: refused.append((t, c)))
    done: list[int] = []
    most = 0
    for i in range(2000):
        await wire.room()
        topic = None if i % 100 == 99 else f"t/{i % 3}"  # markers keep their place in line
        wire.publish_nowait(topic, str(i).encode(), lambda i=i: done.append(i))
        most = max(most, len(wire))
    await asyncio.wait_for(wire.drain(), 30)
    assert done == list(range(2000))
    assert 1 < most <= 8
    await sub.wait_for(lambda: len(sub.messages) == 1980)
    assert [int(m.payload) for m in sub.messages] == [i for i in range(2000) if i % 100 != 99]
    await wire.publish("t/single", b"x", retain=False)  # returns at its PUBACK
    await sub.wait_for(lambda: len(sub.messages) == 1981)
    assert refused == []
    assert wire.unknown_acks == 0
    wire.close(mqtt5.DisconnectReasonCode.NORMAL_DISCONNECTION)
    await sub.stop()


async def test_a_refused_publish_is_reported_and_counts_as_handled(tmp_path: Path) -> None:
    # Mosquitto answers a denied MQTT 5 publish with PUBACK 0x87, then drops the
    # connection: the refusal is reported and confirmed, so a reconnect does not resend it
    acl = tmp_path / "acl"
    acl.write_text("topic write allowed/#\n")
    broker = Mosquitto(tmp_path, extra=f"allow_anonymous true\nacl_file {acl}\n")
    broker.start()
    refused: list[tuple[str, int]] = []
    done: list[int] = []
    try:
        wire = await _open(broker, refused=lambda t, c: refused.append((t, c)))
        for i, topic in enumerate(["allowed/a", "denied/b"]):
            await wire.room()
            wire.publish_nowait(topic, b"x", lambda i=i: done.append(i))
        await asyncio.wait_for(wire.drain(), 10)  # both confirmed, whatever came after
        with pytest.raises(WireError):
            await asyncio.wait_for(wire.closed, 10)
    finally:
        broker.stop()
    assert done == [0, 1]
    assert refused == [("denied/b", 0x87)]


async def test_a_broker_gone_with_the_window_full_fails_the_waiters(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path)
    broker.start()
    assert broker.proc is not None
    wire = await _open(broker, window=100)
    done: list[int] = []
    broker.proc.send_signal(signal.SIGSTOP)  # it takes no more, and confirms nothing
    for _ in range(100):
        await wire.room()
        wire.publish_nowait("t", b"x", lambda: done.append(1))
    assert len(wire) == 100
    waiting = asyncio.create_task(wire.room())  # the window is full: this one waits
    await asyncio.sleep(0.1)
    assert not waiting.done()
    broker.proc.kill()  # gone, with 100 unconfirmed
    with pytest.raises(WireError):
        await asyncio.wait_for(waiting, 30)
    with pytest.raises(WireError):
        await wire.drain()
    with pytest.raises(WireError):
        wire.publish_nowait("t", b"y", None)
    with pytest.raises(WireError):
        await wire.publish("t", b"y")
    assert done == []  # nothing unconfirmed ran its on_done: the sink re-sends all 100
    broker.stop()


async def test_a_server_disconnect_carries_its_reason_code(tmp_path: Path) -> None:
    # a broker without retained messages drops an MQTT 5 client that sends one, and says why
    broker = Mosquitto(tmp_path, extra="retain_available false\n")
    broker.start()
    try:
        wire = await _open(broker)
        wire.publish_nowait("t", b"x", None, retain=True)
        with pytest.raises(WireError) as info:
            await asyncio.wait_for(wire.closed, 30)
    finally:
        broker.stop()
    assert info.value.code == 0x9A
    assert "RETAIN_NOT_SUPPORTED" in str(info.value)
    with pytest.raises(WireError, match="RETAIN_NOT_SUPPORTED"):
        await wire.room()


async def test_a_publish_over_the_brokers_packet_size_is_refused_here(tmp_path: Path) -> None:
    # Mosquitto states its limit in CONNACK and drops a client that goes over it
    # (DISCONNECT 0x95): such a publish is not sent but refused in line, and the
    # connection carries on
    broker = Mosquitto(tmp_path, extra="max_packet_size 1000\n")
    broker.start()
    refused: list[tuple[str, int]] = []
    done: list[int] = []
    try:
        sub = Collector(broker, "t/#")
        await sub.start()
        wire = await _open(broker, refused=lambda t, c: refused.append((t, c)))
        assert wire.max_packet_size == 1000
        for i, size in enumerate([10, 5000, 10]):
            await wire.room()
            wire.publish_nowait(f"t/{i}", b"x" * size, lambda i=i: done.append(i))
        await wire.publish("t/big", b"y" * 2000)
        await asyncio.wait_for(wire.drain(), 10)
        await wire.publish("t/last", b"z")
        await sub.wait_for(lambda: len(sub.messages) == 3)
        assert [m.topic for m in sub.messages] == ["t/0", "t/2", "t/last"]
        assert not wire.closed.done()
        wire.close()
        await sub.stop()
    finally:
        broker.stop()
    assert done == [0, 1, 2]
    assert refused == [("t/1", 0x95), ("t/big", 0x95)]


async def test_never_more_unconfirmed_than_the_brokers_receive_maximum(tmp_path: Path) -> None:
    # Mosquitto states max_inflight_messages as its Receive Maximum; a client may not
    # have more QoS 1 publishes unconfirmed, window and single publishes together
    broker = Mosquitto(tmp_path, extra="max_inflight_messages 5\n")
    broker.start()
    try:
        wire = await _open(broker, window=100)
        assert wire.receive_max == 5
        records = wire.records(100)
        assert records.size == 5
        most = 0
        original = wire._send

        def send(data: bytes) -> None:
            nonlocal most
            most = max(most, len(wire._inflight))
            original(data)

        wire._send = send  # type: ignore[method-assign]
        done: list[int] = []

        async def singles() -> None:
            for _ in range(50):
                await wire.publish("t/single", b"s")

        side = asyncio.create_task(singles())
        for i in range(500):
            await records.publish("t/r", b"x", lambda i=i: done.append(i))
        await asyncio.wait_for(asyncio.gather(records.drain(), side), 30)
        wire.close()
    finally:
        broker.stop()
    assert done == list(range(500))
    assert most == 5


async def test_a_refused_login_names_its_reason(tmp_path: Path) -> None:
    pw = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(pw), "gw", "right"], check=True)
    broker = Mosquitto(tmp_path, extra=f"allow_anonymous false\npassword_file {pw}\n")
    broker.start()
    try:
        with pytest.raises(WireError) as info:
            await Wire5.open(
                broker.host, broker.port, _connect(username="gw", password=b"wrong"), window=4
            )
        # Mosquitto 2.0 says "not authorised"; the spec allows "bad user name or password"
        assert info.value.code in (0x86, 0x87)
        wire = await Wire5.open(
            broker.host, broker.port, _connect(username="gw", password=b"right"), window=4
        )
        wire.close()
    finally:
        broker.stop()


async def test_no_local_subscriptions_skip_our_own_publishes(mosquitto: Mosquitto) -> None:
    wire = await _open(mosquitto)
    codes = await wire.subscribe(
        [mqtt5.TopicFilter("cmd/#", max_qos=mqtt5.QoS.AT_LEAST_ONCE, no_local=True)]
    )
    assert codes == [1]  # granted QoS 1
    await wire.publish("cmd/own", b"mine")
    other = await Wire5.open(mosquitto.host, mosquitto.port, _connect("other"), window=4)
    await other.publish("cmd/x", b"theirs")
    topic, payload = await asyncio.wait_for(wire.messages.get(), 10)
    assert (topic, payload) == ("cmd/x", b"theirs")
    assert wire.messages.empty()
    other.close()
    wire.close()


class _Scripted:
    """A peer that answers CONNECT with CONNACK, and the first PUBLISH with ``reply``."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1024)  # the CONNECT
            writer.write(mqtt5.ConnAckPacket().write())
            await reader.read(1024)  # the first PUBLISH
            writer.write(self.reply)
            await writer.drain()
            while await reader.read(65536):
                pass

        self.server = await asyncio.start_server(serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


async def test_a_puback_for_an_id_not_in_flight_is_counted_and_ignored() -> None:
    peer = _Scripted(mqtt5.PubAckPacket(packet_id=777).write())
    port = await peer.start()
    wire = await Wire5.open("127.0.0.1", port, _connect(), window=4)
    done: list[int] = []
    wire.publish_nowait("t", b"x", lambda: done.append(1))
    while wire.unknown_acks == 0:  # hang guard: the test's own timeout
        await asyncio.sleep(0.01)
    assert done == [] and len(wire) == 1 and not wire.closed.done()
    # then its own ack, split across two reads as TCP may deliver it
    ack = mqtt5.PubAckPacket(packet_id=1).write()
    wire.data_received(ack[:1])
    assert done == []
    wire.data_received(ack[1:])
    assert done == [1] and len(wire) == 0
    wire.close()
    peer.close()


async def test_a_malformed_packet_ends_the_connection_with_a_clear_error() -> None:
    peer = _Scripted(b"\xf0\x00\xff\xff\xff\xff")
    port = await peer.start()
    wire = await Wire5.open("127.0.0.1", port, _connect(), window=4)
    wire.publish_nowait("t", b"x", None)
    with pytest.raises(WireError, match="malformed"):
        await asyncio.wait_for(wire.closed, 10)
    with pytest.raises(WireError, match="malformed"):
        await wire.room()
    peer.close()
