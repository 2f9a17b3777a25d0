"""Commands through the Node-RED cmd topic to simulated nodes: every outcome gets an answer."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiomqtt
import pytest

from gateway.model import node_hex
from gateway.protocol import Command, Message
from gateway.sim.link import NodeRunner
from gateway.sim.node import SimulatedNode
from tests.peers import Collector, Mosquitto, gateway_config, running

A, B, MUTE = 0x3000, 0x3001, 0x3002


class MuteNode(SimulatedNode):
    """Takes ACKs but never answers commands: the gateway must time out, not hang."""

    def on_downlink(self, msg: Message, uptime_ms: int) -> list[bytes]:
        if isinstance(msg.body, Command):
            return []
        return SimulatedNode.on_downlink(self, msg, uptime_ms)


async def _ask(client: aiomqtt.Client, sub: Collector, node: str, payload: str | bytes) -> dict:
    before = len(sub.where(f"{node}/cmd/ack"))
    await client.publish(f"tinyml/gw/{node}/cmd", payload, qos=1)
    await sub.wait_for(lambda: len(sub.where(f"{node}/cmd/ack")) > before, timeout=30)
    return sub.where(f"{node}/cmd/ack")[-1].json()


async def test_every_command_outcome(tmp_path: Path, mosquitto: Mosquitto, pty) -> None:
    link = pty()
    a, mute = SimulatedNode(A), MuteNode(MUTE)
    runner = NodeRunner(link, [a, mute], rate_hz=5)
    sub = Collector(mosquitto, "tinyml/gw/+/cmd/ack")
    await sub.start()
    cfg = gateway_config(
        tmp_path,
        mosquitto,
        [link.path],
        nodes={node_hex(A): {"commands": ["ping", "set_threshold", "get_info"]}, node_hex(B): {}},
    )
    sim = asyncio.create_task(runner.run())
    try:
        async with running(cfg) as gw, aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
            while not (
                gw.registry.get(A)
                and gw.registry.get(A).online
                and gw.registry.get(MUTE)
                and gw.registry.get(MUTE).online
            ):
                await asyncio.sleep(0.05)
            na, nb, nm = node_hex(A), node_hex(B), node_hex(MUTE)

            r = await _ask(client, sub, na, json.dumps({"id": 1, "method": "ping"}))
            assert r == {"id": 1, "ok": True, "status": "ok"}

            r = await _ask(
                client,
                sub,
                na,
                json.dumps({"id": "t", "method": "set_threshold", "params": {"threshold": 0.5}}),
            )
            assert r["ok"] is True
            assert a.threshold == 32768  # the node applied it

            r = await _ask(
                client,
                sub,
                na,
                json.dumps({"id": 2, "method": "set_threshold", "params": {"threshold": 7}}),
            )
            assert r["status"] == "bad_params" and "between 0 and 1" in r["error"]

            # allowed by the sink, not by this node's own list
            r = await _ask(
                client,
                sub,
                na,
                json.dumps({"id": 3, "method": "set_sample_rate", "params": {"hz": 50}}),
            )
            assert r["status"] == "refused"

            # not allowed by the sink ([mqtt] commands has no reboot)
            r = await _ask(client, sub, nm, json.dumps({"id": 4, "method": "reboot"}))
            assert r["status"] == "refused"

            r = await _ask(client, sub, na, json.dumps({"id": 5, "method": "fly"}))
            assert r["status"] == "unknown_method"

            r = await _ask(client, sub, "00000000000000ff", json.dumps({"id": 6, "method": "ping"}))
            assert r["status"] == "unknown_node"

            r = await _ask(client, sub, nb, json.dumps({"id": 7, "method": "ping"}))
            assert r["status"] == "offline"  # configured, never seen

            r = await _ask(client, sub, nm, json.dumps({"id": 8, "method": "ping"}))
            assert r["status"] == "timeout" and r["ok"] is False

            r = await _ask(client, sub, na, b"{not json")
            assert r["status"] == "bad_request" and r["id"] is None

            # an id beyond 64 bits could not be rendered back in the answer: refused
            # as bad JSON up front, not a task that dies before answering
            r = await _ask(client, sub, na, f'{{"id": {1 << 70}, "method": "ping"}}')
            assert r["status"] == "bad_request" and r["id"] is None

            r = await _ask(client, sub, na, json.dumps([1, 2]))
            assert r["status"] == "bad_request"

            r = await _ask(client, sub, "not-a-node", json.dumps({"id": 9, "method": "ping"}))
            assert r["status"] == "bad_request"

            # the gateway kept working through all of it
            r = await _ask(client, sub, na, json.dumps({"id": 10, "method": "ping"}))
            assert r["ok"] is True
            assert gw.health.counters["commands_bad_json"] == 2
    finally:
        sim.cancel()
        await asyncio.gather(sim, return_exceptions=True)
        await sub.stop()


def test_the_command_table_covers_every_code_and_round_trips_its_arguments() -> None:
    from gateway.protocol import CommandCode
    from gateway.protocol.commands import BY_NAME, COMMANDS, SAFE_NAMES

    assert sorted(c.code for c in COMMANDS) == sorted(CommandCode)
    assert set(SAFE_NAMES) == {"ping", "get_info"}
    assert BY_NAME["set_threshold"].decode(BY_NAME["set_threshold"].encode(0.5)) == 32768
    assert BY_NAME["set_sample_rate"].decode(BY_NAME["set_sample_rate"].encode({"hz": 50})) == 50
    period = BY_NAME["set_heartbeat_period"]
    assert period.decode(period.encode({"seconds": 65535})) == 65535
    assert period.decode(b"\x00\x00") is None  # 0 s is out of range on the node too
    assert BY_NAME["ping"].decode(b"") == 0 and BY_NAME["ping"].decode(b"\x01") is None
    for spec, bad in [
        (BY_NAME["set_threshold"], 1.5),
        (BY_NAME["set_sample_rate"], 0),
        (BY_NAME["set_sample_rate"], True),
        (BY_NAME["set_heartbeat_period"], 70000),
        (BY_NAME["set_heartbeat_period"], {}),
    ]:
        with pytest.raises((ValueError, TypeError)) as info:
            spec.encode(bad)
        assert spec.param is not None and spec.param in str(info.value)
