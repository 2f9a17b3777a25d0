"""Publisher against a real Mosquitto: in-order confirmation, a bounded window, aiomqtt's
own publishes unharmed, MQTT 5 refusals counted, a lost connection surfacing as MqttError.

The pins on the aiomqtt and paho internals it uses are in test_conformance.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import aiomqtt
import pytest

from gateway.sinks.mqtt import MqttLink, MqttSession
from gateway.sinks.publisher import Publisher
from tests.peers import Collector, Mosquitto


def _session(broker: Mosquitto, protocol: str = "3.1.1") -> MqttSession:
    link = MqttLink(broker.host, broker.port, protocol, "pub-test", 30)
    return MqttSession("test", link)


async def test_confirms_in_start_order_within_the_window(mosquitto: Mosquitto) -> None:
    broker = mosquitto
    sub = Collector(broker, "t/#")
    await sub.start()
    done: list[int] = []
    most_unconfirmed = 0
    async with _session(broker).client() as client:
        with Publisher(client, 8) as pub:
            for i in range(500):
                topic = None if i % 50 == 49 else f"t/{i % 3}"  # markers between publishes
                await pub.publish(topic, str(i).encode(), lambda i=i: done.append(i))
                most_unconfirmed = max(most_unconfirmed, len(pub))
            await asyncio.wait_for(pub.drain(), 30)
    assert done == list(range(500))
    assert 1 < most_unconfirmed <= 8  # overlapped, and never past the window
    await sub.wait_for(lambda: len(sub.messages) == 490)
    assert [int(m.payload) for m in sub.messages] == [i for i in range(500) if i % 50 != 49]
    await sub.stop()


async def test_aiomqtt_publishes_still_complete_alongside(mosquitto: Mosquitto) -> None:
    broker = mosquitto
    async with _session(broker).client() as client:
        with Publisher(client, 50) as pub:
            started = [pub.publish("a", b"x") for _ in range(100)]
            for p in started:
                await p
            # aiomqtt waits for its own PUBACK: it returns only if the publisher passed it on
            await asyncio.wait_for(client.publish("b", b"y", qos=1), 10)
            await asyncio.wait_for(pub.drain(), 10)
        await asyncio.wait_for(client.publish("b", b"z", qos=1), 10)  # hook removed cleanly


async def test_a_refused_publish_is_counted_and_logged_not_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Mosquitto answers a denied MQTT 5 publish with PUBACK 0x87, then drops the
    # connection: the refusal is counted and confirmed, so a reconnect does not resend it
    acl = tmp_path / "acl"
    acl.write_text("topic write allowed/#\n")
    broker = Mosquitto(tmp_path, extra=f"allow_anonymous true\nacl_file {acl}\n")
    broker.start()
    try:
        session = _session(broker, "5")
        done: list[str] = []
        caplog.set_level(logging.WARNING, "gateway")
        with contextlib.suppress(aiomqtt.MqttError):
            async with session.client() as client:
                with Publisher(client, 10, refused=session.refused) as pub:
                    for topic in ["allowed/1", "denied/1"]:
                        await pub.publish(topic, b"v", lambda t=topic: done.append(t))
                    with contextlib.suppress(asyncio.CancelledError):
                        await asyncio.wait_for(pub.drain(), 10)
        assert done == ["allowed/1", "denied/1"]
        assert session.publish_refused == 1
        lines = [r.getMessage() for r in caplog.records if "refused a message" in r.getMessage()]
        assert len(lines) == 1 and "denied/1" in lines[0] and "0x87" in lines[0]
    finally:
        broker.stop()


async def test_a_lost_connection_raises_and_confirms_nothing_more(mosquitto: Mosquitto) -> None:
    broker = mosquitto
    done: list[int] = []
    with pytest.raises((aiomqtt.MqttError, ExceptionGroup)):
        async with _session(broker).client() as client:
            with Publisher(client, 1000) as pub:
                await pub.publish("t", b"0", lambda: done.append(0))
                await asyncio.wait_for(pub.drain(), 10)
                broker.stop()
                await asyncio.sleep(0.5)  # paho notices the closed socket
                for i in range(1, 100):
                    await pub.publish("t", b"x", lambda i=i: done.append(i))
                    await asyncio.sleep(0.01)
    assert done == [0]


async def test_a_socket_closed_before_its_writer_is_added_is_not_an_error(
    mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    """paho asks for a writer on each publish and gets it on the next pass of the loop;
    a connection that breaks in between must not leave asyncio a closed descriptor."""
    session = MqttSession("writer", MqttLink(mosquitto.host, mosquitto.port, "5", "w1", 30))
    caplog.set_level(logging.WARNING)
    async with session.client() as client:
        paho_client = client._client
        paho_client.publish("t/x", b"x", 1)  # asks for a writer, added on the next pass
        paho_client._sock_close()  # the connection breaks first, as a read error would
        await asyncio.sleep(0.2)
    callbacks = [r for r in caplog.records if r.name == "asyncio"]
    assert callbacks == [], [r.getMessage() for r in callbacks]
