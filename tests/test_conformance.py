"""Pins the third-party internals the gateway relies on, so an upgrade that changes them
fails here first instead of in the field.

gateway/sinks/publisher.py (the ``protocol = "3.1.1"`` path) publishes through aiomqtt's
paho client and shares paho's ``on_publish`` callback with aiomqtt.
gateway/sinks/mqtt5_wire.py (the ``protocol = "5"`` path) frames the byte stream for the
mqtt5 codec, relying on how its ``read`` says "not enough bytes" and "malformed", and on
what a CONNACK without properties means.
gateway/verify/runtime.py finds a model's logits through both runtimes' op list.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import subprocess
import sys
from pathlib import Path

import aiomqtt
import mqtt5
import paho.mqtt.client as paho
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from gateway.sinks.mqtt import MqttLink, MqttSession, client_log
from tests.peers import Mosquitto

ROOT = Path(__file__).resolve().parent.parent


def test_mqtt5_read_tells_a_short_buffer_from_a_malformed_one() -> None:
    packet = mqtt5.PublishPacket(
        topic="a/b", payload=b"xyz", qos=mqtt5.QoS.AT_LEAST_ONCE, packet_id=7
    ).write()
    for cut in range(len(packet)):  # any prefix: wait for more bytes
        with pytest.raises(IndexError):
            mqtt5.read(memoryview(packet)[:cut])
    # one packet from a buffer that holds more: the rest is left for the next read
    got, used = mqtt5.read(memoryview(packet + b"\x40\x02"))
    assert used == len(packet)
    assert isinstance(got, mqtt5.PublishPacket) and got.packet_id == 7 and got.payload == b"xyz"
    with pytest.raises(ValueError):  # an AUTH packet cut short: malformed, not short
        mqtt5.read(b"\xf0\x00")


def test_mqtt5_connack_defaults_are_the_specs() -> None:
    ack = mqtt5.ConnAckPacket()
    assert ack.receive_max == 65535 and ack.max_packet_size is None
    assert int(ack.reason_code) == 0 and ack.server_keep_alive is None
    got, _ = mqtt5.read(
        mqtt5.PubAckPacket(packet_id=9, reason_code=mqtt5.PubAckReasonCode.NOT_AUTHORIZED).write()
    )
    assert isinstance(got, mqtt5.PubAckPacket) and (got.packet_id, int(got.reason_code)) == (
        9,
        0x87,
    )


async def test_aiomqtt_keeps_its_paho_client_in_underscore_client() -> None:
    client = aiomqtt.Client("127.0.0.1", 1, max_inflight_messages=0)
    assert isinstance(client._client, paho.Client)
    # the publisher chains to aiomqtt's handler for the ids it did not start
    assert client._client.on_publish == client._on_publish
    assert list(inspect.signature(client._on_publish).parameters) == [
        "client",
        "userdata",
        "mid",
        "reason_code",
        "properties",
    ]
    # aiomqtt speaks to paho through the version-2 callback API (five-argument on_publish)
    assert client._client._callback_api_version == paho.CallbackAPIVersion.VERSION2


def test_paho_publish_returns_rc_and_mid() -> None:
    c = paho.Client(paho.CallbackAPIVersion.VERSION2)
    info = c.publish("t", b"x", 1, False)
    assert isinstance(info, paho.MQTTMessageInfo)
    assert isinstance(info.rc, int) and isinstance(info.mid, int)
    assert info.rc == paho.MQTT_ERR_NO_CONN  # not connected: a failure code, never an exception


def test_paho_has_no_inflight_cap_at_zero() -> None:
    # MqttSession passes 0 so paho never walks its outgoing table per PUBACK
    c = paho.Client(paho.CallbackAPIVersion.VERSION2)
    c.max_inflight_messages_set(0)
    assert c._max_inflight_messages == 0
    src = inspect.getsource(paho.Client._do_on_publish)
    assert "if self._max_inflight_messages > 0:" in src


def test_reason_codes_say_failure_from_0x80() -> None:
    assert ReasonCode(PacketTypes.PUBACK, identifier=0x87).is_failure
    assert not ReasonCode(PacketTypes.PUBACK, identifier=0x10).is_failure  # no subscribers
    assert not ReasonCode(PacketTypes.PUBACK, identifier=0).is_failure


async def test_aiomqtt_adds_socket_writers_on_a_later_loop_pass() -> None:
    """gateway/sinks/mqtt.py replaces aiomqtt's on_socket_register_write with the same
    handler plus a check that the socket is still open; it relies on these."""
    client = aiomqtt.Client("127.0.0.1", 1)
    assert client._client.on_socket_register_write == client._on_socket_register_write
    src = inspect.getsource(aiomqtt.Client._on_socket_register_write)
    assert "call_soon_threadsafe(self._loop.add_writer" in src
    assert "client.loop_write()" in src and "self._disconnected.set_exception(exc)" in src
    assert isinstance(client._disconnected, asyncio.Future)
    assert paho.Client(paho.CallbackAPIVersion.VERSION2).socket() is None


async def test_a_late_suback_of_a_cancelled_subscribe_logs_no_traceback(
    mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    """The gateway stopping while it subscribes: aiomqtt forgets the call, then the broker's
    SUBACK comes and aiomqtt logs "Unexpected message ID" with a KeyError traceback. The
    session's client logs through a logger that drops that record."""
    link = MqttLink("127.0.0.1", mosquitto.port, "3.1.1", "late-suback", 30)
    caplog.set_level(logging.DEBUG, logger="mqtt")
    async with MqttSession("mqtt", link).client() as client:
        call = asyncio.create_task(client.subscribe("a/#", qos=1))
        await asyncio.sleep(0)  # SUBSCRIBE is on its way; aiomqtt waits for its SUBACK
        call.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await call
        # SUBACKs come in order: once the second is in, the first has been handled
        await client.subscribe("b/#", qos=1)
    seen = [r for r in caplog.records if r.name == "mqtt" and r.levelno >= logging.WARNING]
    assert seen == [], [r.getMessage() for r in seen]
    assert client_log is client._logger


_OPS_CHECK = (
    "import json, sys\n"
    "from {module}.interpreter import Interpreter\n"
    "i = Interpreter(model_path=sys.argv[1])\n"
    "i.allocate_tensors()\n"
    "ops = i._get_ops_details()\n"
    "print(json.dumps([[o['op_name'], [int(t) for t in o['inputs']],"
    " [int(t) for t in o['outputs']]] for o in ops]))\n"
)


@pytest.mark.parametrize("runtime", ["ai-edge-litert", "tflite-runtime"])
def test_both_runtimes_list_ops_with_their_tensors(runtime: str) -> None:
    """The verdict reads the logits the model's final SOFTMAX takes; it finds them
    through ``Interpreter._get_ops_details``, a private method of both runtimes."""
    from gateway.verify.specs import RUNTIMES
    from tests.verify_hard import MODEL

    python = Path(sys.executable)
    if runtime == "tflite-runtime":
        if sys.version_info >= (3, 12):
            pytest.skip("tflite-runtime has wheels up to Python 3.11 only: not testable here")
        python = ROOT / ".venv-tflite" / "bin" / "python"
    code = _OPS_CHECK.format(module=RUNTIMES[runtime])
    done = subprocess.run(
        [str(python), "-c", code, str(MODEL)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    ops = json.loads(done.stdout.strip().splitlines()[-1])
    # the op that makes the output (with the default kernels a DELEGATE node stands for
    # the layers XNNPACK took, and it need not come first or last)
    assert [op for op in ops if 16 in op[2]] == [["SOFTMAX", [15], [16]]]
    assert any(15 in op[2] for op in ops if op[0] != "SOFTMAX")
