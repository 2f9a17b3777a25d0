"""No single frame or stored record stops the gateway (docs/protocol.md, "Value ranges";
docs/architecture.md, "Records a sink cannot render").

Both bridges run against real peers: Mosquitto for Node-RED, and the ThingsBoard
checker on its own Mosquitto with the gateway token's ACL. Every payload either
bridge publishes must be strict JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from gateway.model import RecordKind, node_hex
from gateway.outbox import NewRecord
from gateway.protocol import Event, FeatureWindow, Heartbeat, encode
from gateway.sim.link import NodeRunner
from gateway.sim.node import SimulatedNode, expected_event
from gateway.sinks.mqtt import MqttLink, MqttSession
from tests.peers import Collector, Mosquitto, gateway_config, running
from tests.tb_checker import ThingsBoardChecker
from tests.test_thingsboard import tb_section

GOOD, ALSO_GOOD, LIAR = 0x9000, 0x9001, 0x9002
COUNT = 40
BAD_SCALES = (float("nan"), float("inf"), float("-inf"), 0.0, -0.5)


@dataclass(slots=True)
class LyingNode(SimulatedNode):
    """Valid frames with values the specification rules out: every window's scale is
    NaN, infinite, zero or negative, and its temperature is below absolute zero."""

    def event(self, uptime_ms: int) -> bytes:
        raw = SimulatedNode.event(self, uptime_ms)
        e = expected_event(self.node_id, self.seq)
        bad = FeatureWindow((2, 2), BAD_SCALES[self.seq % len(BAD_SCALES)], 0, bytes(4))
        raw = self._encode(Event(e.model_id, e.label, e.score, e.inference_us, e.scores, bad),
                           uptime_ms, self.seq)  # fmt: skip
        self.ring[-1].raw = raw
        return raw

    def heartbeat(self, uptime_ms: int) -> bytes:
        floor = self.ring[0].seq if self.ring else self.seq + 1
        return self._encode(Heartbeat(3000, -30000, self.inferences, 0, floor, 0), uptime_ms,
                            self.seq)  # fmt: skip


def strict(payload: bytes) -> Any:
    def refuse(name: str) -> Any:
        raise AssertionError(f"{name} in a published payload: {payload[:200]!r}")

    return json.loads(payload, parse_constant=refuse)


def _events(sub: Collector, node: int) -> dict[int, dict[str, Any]]:
    out = {}
    for m in sub.where(f"{node_hex(node)}/event"):
        body = strict(m.payload)
        out[body["seq"]] = body
    return out


def _tb_events(checker: ThingsBoardChecker, node: int) -> dict[int, dict[str, Any]]:
    return {v["seq"]: v for _, v in checker.telemetry_of(node_hex(node)) if "label" in v}


def _cfg(tmp: Path, nodered: Mosquitto, tb: Mosquitto, ports: list[str]) -> Any:
    fields = ["label", "score", "seq", "window", "battery_mv", "temperature_c"]
    return gateway_config(tmp, nodered, ports, thingsboard=tb_section(tb, telemetry_fields=fields))


async def test_ruled_out_values_never_stop_a_bridge_and_survive_a_restart(
    tmp_path: Path,
    bridges,
    pty,
) -> None:
    nodered, tb, checker, sub = bridges
    link = pty()
    nodes = [
        SimulatedNode(GOOD, window=True, heartbeat_period_s=1),
        SimulatedNode(ALSO_GOOD, heartbeat_period_s=1),
        LyingNode(LIAR, window=True, heartbeat_period_s=1),
    ]
    cfg = _cfg(tmp_path, nodered, tb, [link.path])
    # first run: ThingsBoard is away, so its copy of every record waits in the outbox
    tb.stop()
    async with running(cfg) as gw:
        runner = NodeRunner(link, nodes, rate_hz=20, count=COUNT)
        sim = asyncio.create_task(runner.run(until_acked=True))
        await sub.wait_for(
            lambda: all(len(_events(sub, n)) >= COUNT for n in (GOOD, ALSO_GOOD, LIAR))
        )
        await sub.wait_for(lambda: bool(sub.where(f"{node_hex(LIAR)}/heartbeat")))
        await asyncio.wait_for(sim, 60)
        sanitised = gw.health.counters["values_sanitised"]
    assert sanitised >= COUNT  # every lying window, and the heartbeats
    for m in sub.messages:
        strict(m.payload)
    liar = _events(sub, LIAR)
    assert sorted(liar) == list(range(1, COUNT + 1))
    assert all("window" not in e and e["label"] for e in liar.values())  # the result is kept
    assert all("window" in e for e in _events(sub, GOOD).values())
    hb = strict(sub.where(f"{node_hex(LIAR)}/heartbeat")[-1].payload)
    assert hb["temperature_c"] is None and hb["battery_mv"] == 3000

    # second run on the same outbox: ThingsBoard is back and gets the stored records
    tb.start()
    async with running(cfg) as gw:
        await checker.wait_for(
            lambda: all(len(_tb_events(checker, n)) >= COUNT for n in (GOOD, ALSO_GOOD, LIAR))
        )
        assert gw.health.counters["thingsboard_unrenderable"] == 0
        assert all(s.session.failures == 0 for s in gw.sinks)
    assert checker.violations == []
    assert all("window" not in v for v in _tb_events(checker, LIAR).values())
    assert all(isinstance(v["window"], dict) for v in _tb_events(checker, GOOD).values())


async def test_a_record_no_sink_can_render_is_counted_and_skipped_by_each(
    tmp_path: Path,
    bridges,
    pty,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Not a NaN: a stored EVENT the decoder refuses, and a STATUS whose JSON is broken."""
    nodered, tb, checker, sub = bridges
    link = pty()
    caplog.set_level(logging.WARNING)
    cfg = _cfg(tmp_path, nodered, tb, [link.path])
    async with running(cfg) as gw:
        runner = NodeRunner(link, [SimulatedNode(GOOD)], rate_hz=20, count=2 * COUNT)
        sim = asyncio.create_task(runner.run(until_acked=True))
        await sub.wait_for(lambda: len(_events(sub, GOOD)) >= 5)
        cut = encode(Event(1, 0, 1, 1), node_id=GOOD, boot_id=9, seq=1, uptime_ms=1)[:30]
        ts = 1_700_000_000_000
        bad = [
            NewRecord(RecordKind.EVENT, GOOD, 9, 1, 1, ts, None, "serial", cut),
            NewRecord(RecordKind.STATUS, GOOD, 9, 1, 1, ts + 1, None, "serial", b"{not json"),
        ]
        await gw.outbox.commit(bad, {})
        await asyncio.wait_for(sim, 60)
        await sub.wait_for(lambda: len(_events(sub, GOOD)) >= 2 * COUNT)
        await checker.wait_for(lambda: len(_tb_events(checker, GOOD)) >= 2 * COUNT)
        for _ in range(100):  # positions are written every 250 ms
            if all([await gw.outbox.pending(s.name) == 0 for s in gw.sinks]):
                break
            await asyncio.sleep(0.1)
        counters = dict(gw.health.counters)
        pending = {s.name: await gw.outbox.pending(s.name) for s in gw.sinks}
        failures = [s.session.failures for s in gw.sinks]
    assert counters["mqtt_unrenderable"] == 2
    assert counters["thingsboard_unrenderable"] == 2
    assert pending == {"mqtt": 0, "thingsboard": 0}  # passed over, not retried
    assert failures == [0, 0]
    assert sorted(_events(sub, GOOD)) == list(range(1, 2 * COUNT + 1))
    assert sorted(_tb_events(checker, GOOD)) == list(range(1, 2 * COUNT + 1))
    assert checker.violations == []
    skipped = [r.getMessage() for r in caplog.records if "cannot be rendered" in r.getMessage()]
    assert any(s.startswith("mqtt:") for s in skipped)
    assert any(s.startswith("thingsboard:") for s in skipped)
    assert all(f"{node_hex(GOOD)}:9:1" in s for s in skipped)
    assert not [r for r in caplog.records if r.exc_info]


async def test_an_unexpected_exception_in_a_bridge_costs_one_reconnect(
    mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in one bridge's connected code drops that connection, not the process."""
    link = MqttLink(mosquitto.host, mosquitto.port, "5", "bridge-under-test", 30,
                    reconnect_max_s=0.2)  # fmt: skip
    session = MqttSession("bridge", link)
    connections: list[aiomqtt.Client] = []

    async def on_connect(client: aiomqtt.Client) -> None:
        connections.append(client)
        if len(connections) == 1:
            raise RuntimeError("a renderer bug")
        await asyncio.Event().wait()

    async def on_message(client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        pass

    caplog.set_level(logging.INFO)
    task = asyncio.create_task(session.run([], on_connect, on_message))
    try:
        for _ in range(300):
            if len(connections) >= 2 and session.connected:
                break
            await asyncio.sleep(0.05)
        assert len(connections) == 2 and session.connected
        assert session.failures == 1 and session.health()["failures"] == 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None
    assert "unexpected RuntimeError" in errors[0].getMessage()


async def test_a_record_over_the_brokers_packet_size_is_passed_over_and_counted(
    tmp_path: Path, pty, caplog: pytest.LogCaptureFixture
) -> None:
    """Mosquitto states its max_packet_size in CONNACK and drops an MQTT 5 client that
    sends a larger packet: sent, such a record would be sent again after every reconnect
    and hold back every record behind it."""
    (tmp_path / "b").mkdir()
    broker = Mosquitto(tmp_path / "b", extra="max_packet_size 1000\n")
    broker.start()
    sub = Collector(broker, "tinyml/gw/#")
    await sub.start()
    link = pty()
    windowed, plain = SimulatedNode(GOOD, window=True), SimulatedNode(ALSO_GOOD)
    caplog.set_level(logging.WARNING)
    try:
        async with running(gateway_config(tmp_path, broker, [link.path])) as gw:
            runner = NodeRunner(link, [windowed, plain], rate_hz=20, count=COUNT)
            await asyncio.wait_for(runner.run(until_acked=True), 60)
            await sub.wait_for(lambda: len(_events(sub, ALSO_GOOD)) >= COUNT)
            sink = gw.sinks[0]
            while await gw.outbox.pending(sink.name):  # hang guard: the test's timeout
                await asyncio.sleep(0.05)
            health = sink.health()
    finally:
        await sub.stop()
        broker.stop()
    assert sorted(_events(sub, ALSO_GOOD)) == list(range(1, COUNT + 1))
    assert _events(sub, GOOD) == {}  # each of its events carries a window of 1.5 kB
    assert health["publish_refused"] == COUNT
    assert health["connects"] == 1  # the broker never had to drop the gateway
    said = [r.getMessage() for r in caplog.records if "maximum packet size" in r.getMessage()]
    assert len(said) == 1 and f"{node_hex(GOOD)}/event" in said[0]
