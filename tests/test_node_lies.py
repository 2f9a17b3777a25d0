"""One frame from one node must not lose that node's later data (docs/protocol.md,
"Reliable uplink"): the real gateway, a real Mosquitto, nodes on a pseudo-terminal.

Each lying node sends one bad frame in the middle of an honest stream while a good
node keeps sending; every event of both must reach the subscriber.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import pytest

from gateway.model import node_hex
from gateway.operator import request_forget
from gateway.protocol import Heartbeat, Log, LogLevel, encode, encode_frame
from gateway.sim.link import NodeRunner
from gateway.sim.node import SimulatedNode
from tests.peers import Collector, Mosquitto, gateway_config, running

GOOD, LIAR = 0xB000, 0xB001
COUNT = 120


@dataclass(slots=True)
class FloorLiar(SimulatedNode):
    """An honest node, except for one heartbeat whose retx_floor is 0xFFFFFFFF; with
    ``claim`` that heartbeat also claims EVENT seq 0xFFFFFFFE, so that floor = seq + 1."""

    claim: bool = False
    lied: bool = False

    def heartbeat(self, uptime_ms: int) -> bytes:
        if self.lied or self.seq < COUNT // 3:
            return SimulatedNode.heartbeat(self, uptime_ms)
        self.lied = True
        body = Heartbeat(3000, 2100, self.inferences, 0, 0xFFFFFFFF, 0)
        return self._encode(body, uptime_ms, 0xFFFFFFFE if self.claim else self.seq)


def _seqs(sub: Collector, node: int) -> list[int]:
    return sorted({m.json()["seq"] for m in sub.where(f"{node_hex(node)}/event")})


def _keys(sub: Collector, node: int) -> list[str]:
    return [m.json()["key"] for m in sub.where(f"{node_hex(node)}/event")]


@pytest.mark.parametrize("claim", [False, True], ids=["floor-above-seq", "consistent-lie"])
async def test_a_bogus_retx_floor_loses_nothing(
    tmp_path: Path, mosquitto: Mosquitto, pty, claim: bool, caplog: pytest.LogCaptureFixture
) -> None:
    link = pty()
    liar = FloorLiar(LIAR, heartbeat_period_s=1, claim=claim)
    nodes = [SimulatedNode(GOOD, heartbeat_period_s=1), liar]
    sub = Collector(mosquitto, "tinyml/gw/#")
    await sub.start()
    caplog.set_level(logging.WARNING)
    cfg = gateway_config(tmp_path, mosquitto, [link.path])
    async with running(cfg) as gw:
        runner = NodeRunner(link, nodes, rate_hz=20, count=COUNT)
        await asyncio.wait_for(runner.run(until_acked=True), 120)
        await sub.wait_for(lambda: all(len(_seqs(sub, n)) >= COUNT for n in (GOOD, LIAR)))
        counters = dict(gw.health.counters)
    await sub.stop()
    assert liar.lied
    assert _seqs(sub, LIAR) == list(range(1, COUNT + 1))
    assert _seqs(sub, GOOD) == list(range(1, COUNT + 1))
    assert counters.get("events_lost_at_node", 0) == 0
    assert counters.get("duplicates", 0) < COUNT  # later events were not taken as duplicates
    if not claim:
        assert counters["rejected_retx_floor"] == 1
        assert any("retx_floor 4294967295" in r.getMessage() for r in caplog.records)


async def test_an_honest_ring_overflow_is_given_up_and_the_stream_goes_on(
    tmp_path: Path, mosquitto: Mosquitto, pty
) -> None:
    """The node sends while nobody reads its port; its small ring overflows. Its
    heartbeats' floor lets the gateway give up exactly what the node dropped."""
    link = pty()
    node = SimulatedNode(GOOD, ring_size=8, heartbeat_period_s=1, retx_timeout_ms=500)
    runner = NodeRunner(link, [node], rate_hz=50, count=40)
    sim = asyncio.create_task(runner.run(until_acked=True))
    while node.seq < 40:  # all sent before the gateway opens the port
        await asyncio.sleep(0.05)
    sub = Collector(mosquitto, "tinyml/gw/#")
    await sub.start()
    async with running(gateway_config(tmp_path, mosquitto, [link.path])) as gw:
        await asyncio.wait_for(sim, 60)
        await sub.wait_for(lambda: len(_seqs(sub, GOOD)) >= 8)
        lost = gw.health.counters["events_lost_at_node"]
    await sub.stop()
    assert node.dropped == 32
    assert lost == 32
    assert _seqs(sub, GOOD) == list(range(33, 41))


@dataclass(slots=True)
class UptimeLiar(SimulatedNode):
    """An honest node, except that one EVENT claims an uptime of 10^9 ms (11.6 days)."""

    def event(self, uptime_ms: int) -> bytes:
        return SimulatedNode.event(self, 10**9 if self.seq + 1 == COUNT // 3 else uptime_ms)


async def test_one_frame_far_ahead_in_uptime_leaves_the_node_clock_alone(
    tmp_path: Path, mosquitto: Mosquitto, pty
) -> None:
    link = pty()
    nodes = [SimulatedNode(GOOD, heartbeat_period_s=1), UptimeLiar(LIAR, heartbeat_period_s=1)]
    sub = Collector(mosquitto, "tinyml/gw/#")
    await sub.start()
    started = time.time() * 1000
    async with running(gateway_config(tmp_path, mosquitto, [link.path])) as gw:
        runner = NodeRunner(link, nodes, rate_hz=20, count=COUNT)
        await asyncio.wait_for(runner.run(until_acked=True), 120)
        await sub.wait_for(lambda: all(len(_seqs(sub, n)) >= COUNT for n in (GOOD, LIAR)))
        counters = dict(gw.health.counters)
    ended = time.time() * 1000
    await sub.stop()
    assert counters["uptime_ahead"] == 1
    for m in sub.where("/event"):
        e = m.json()
        # every event, the lying one included, is stamped within the run
        assert started - 2000 <= e["ts"] <= ended + 2000, e


def _spoofs(node: SimulatedNode) -> bytes:
    """A HEARTBEAT, an INFO and a LOG that claim ``node``, each with an uptime of 10^9 ms
    (11.6 days): valid frames, as anyone on the line can send for an unkeyed node."""
    far = 10**9
    log_ = encode(
        Log(int(LogLevel.INFO), "spoof"),
        node_id=node.node_id,
        boot_id=node.boot_id,
        seq=node.seq,
        uptime_ms=far,
    )
    return b"".join(encode_frame(raw) for raw in (node.heartbeat(far), node.info(far), log_))


def _uptimes(sub: Collector, node: int, kind: str) -> list[int]:
    return [m.json()["uptime_ms"] for m in sub.where(f"{node_hex(node)}/{kind}")]


async def test_one_spoofed_heartbeat_does_not_silence_the_nodes_real_ones(
    tmp_path: Path, mosquitto: Mosquitto, pty
) -> None:
    """After one HEARTBEAT, INFO and LOG claiming the node with a far-ahead uptime, the
    node's honest heartbeats, INFO and LOG still go through, and after a restart too."""
    link = pty()
    liar = SimulatedNode(LIAR, heartbeat_period_s=1)
    sub = Collector(mosquitto, "tinyml/gw/#")
    await sub.start()
    cfg = gateway_config(tmp_path, mosquitto, [link.path])
    booted = time.monotonic()

    def runner_to(count: int) -> NodeRunner:  # one node boot across the runners
        ago = time.monotonic() - booted
        return NodeRunner(link, [liar], rate_hz=10, count=count, booted_s_ago=ago)

    async with running(cfg):
        runner = runner_to(10)
        await asyncio.wait_for(runner.run(until_acked=True), 60)
        link.write(_spoofs(liar))
        await sub.wait_for(lambda: 10**9 in _uptimes(sub, LIAR, "heartbeat"))
        runner = runner_to(30)
        await asyncio.wait_for(runner.run(until_acked=True), 60)
        await sub.wait_for(lambda: len(_uptimes(sub, LIAR, "info")) >= 3)
    before_restart = len(_uptimes(sub, LIAR, "heartbeat"))
    async with running(cfg):
        runner = runner_to(50)
        await asyncio.wait_for(runner.run(until_acked=True), 60)
        up = runner.uptime_ms(liar)
        link.write(
            encode_frame(
                encode(
                    Log(int(LogLevel.INFO), "honest"),
                    node_id=LIAR,
                    boot_id=liar.boot_id,
                    seq=liar.seq,
                    uptime_ms=up,
                )
            )
        )
        await sub.wait_for(lambda: len(_uptimes(sub, LIAR, "info")) >= 4)
        await sub.wait_for(lambda: len(_uptimes(sub, LIAR, "log")) >= 2)
    await sub.stop()
    beats = _uptimes(sub, LIAR, "heartbeat")
    spoof = beats.index(10**9)
    assert len(beats[spoof + 1 : before_restart]) >= 1  # honest ones after the spoof
    assert len(beats) > before_restart  # and after the restart
    assert all(u < 10**9 for u in beats[spoof + 1 :])
    assert _seqs(sub, LIAR) == list(range(1, 51))


def _flood(first_id: int, count: int) -> bytes:
    """One valid HEARTBEAT from each of ``count`` made-up node ids."""
    return b"".join(
        encode_frame(SimulatedNode(first_id + i).heartbeat(1000 + i)) for i in range(count)
    )


async def test_a_flood_of_node_ids_keeps_no_new_node_out(
    tmp_path: Path, mosquitto: Mosquitto, pty, caplog: pytest.LogCaptureFixture
) -> None:
    """One-frame ids fill ``max_nodes`` on port A, twice. A new node on port B and one on
    port A get in at their first message and stay (the flood's unconfirmed ids make room
    first); a configured node is never forgotten; 40 nodes going offline at once, and 40
    new ids, cost a line or two each; the room made survives a restart."""
    flooded, other = pty(), pty()
    configured = 0xC0FF
    on_a, on_b = SimulatedNode(0xBEEA, heartbeat_period_s=1), SimulatedNode(0xBEEB)
    sub = Collector(mosquitto, "tinyml/gw/#")
    await sub.start()
    caplog.set_level(logging.INFO)
    cfg = gateway_config(
        tmp_path,
        mosquitto,
        [flooded.path, other.path],
        nodes={"max_nodes": 20, node_hex(configured): {"name": "kept"}},
        log={"bad_input_interval_s": 60},
    )
    async with running(cfg) as gw:
        flooded.write(_flood(0xF000, 40))
        while gw.health.counters["nodes_forgotten"] < 20:  # 19 admitted, 21 made room
            await asyncio.sleep(0.05)
        runners = [
            NodeRunner(other, [on_b], rate_hz=20, count=20),
            NodeRunner(flooded, [on_a], rate_hz=20, count=20),
        ]
        await asyncio.wait_for(asyncio.gather(*(r.run(until_acked=True) for r in runners)), 60)
        flooded.write(_flood(0xF100, 40))  # the flood again, with new ids
        while gw.health.counters["nodes_forgotten"] < 62:
            await asyncio.sleep(0.05)
        runners = [
            NodeRunner(other, [on_b], rate_hz=20, count=40),
            NodeRunner(flooded, [on_a], rate_hz=20, count=40),
        ]
        await asyncio.wait_for(asyncio.gather(*(r.run(until_acked=True) for r in runners)), 60)
        await sub.wait_for(lambda: all(len(_seqs(sub, n.node_id)) >= 40 for n in (on_a, on_b)))
        known = {n.node_id for n in gw.registry.all()}
        counters = dict(gw.health.counters)
        flooded.close()  # port A goes away: every node on it goes offline at once
        while any(n.online for n in gw.registry.all() if n.node_id != on_b.node_id):
            await asyncio.sleep(0.05)
    async with running(cfg) as gw:
        after_restart = {n.node_id for n in gw.registry.all()}
    await sub.stop()
    for node in (on_a, on_b):
        assert _seqs(sub, node.node_id) == list(range(1, 41))
    assert counters.get("rejected_unknown_node", 0) == 0
    assert {configured, on_a.node_id, on_b.node_id} <= known and len(known) == 20
    assert after_restart == known
    lines = [r.getMessage() for r in caplog.records]
    assert sum("new node" in line for line in lines) <= 3  # 82 new nodes
    assert sum(" offline: " in line for line in lines) <= 2  # 18 at once
    assert sum("max_nodes (20) reached: forgot" in line for line in lines) <= 3


async def test_one_frame_with_a_bogus_boot_id_does_not_lock_the_node_out(
    tmp_path: Path, mosquitto: Mosquitto, pty
) -> None:
    """One EVENT claims boot 0xFFFFFFFF (erased flash, a firmware bug) in the middle of
    an honest stream: it is held as unconfirmed, and the node's real boot goes on."""
    link = pty()
    liar = SimulatedNode(LIAR, heartbeat_period_s=1)
    nodes = [SimulatedNode(GOOD, heartbeat_period_s=1), liar]
    sub = Collector(mosquitto, "tinyml/gw/#")
    await sub.start()
    async with running(gateway_config(tmp_path, mosquitto, [link.path])) as gw:
        runner = NodeRunner(link, nodes, rate_hz=20, count=COUNT)
        sim = asyncio.create_task(runner.run(until_acked=True))
        while liar.seq < COUNT // 3:
            await asyncio.sleep(0.01)
        bogus = SimulatedNode(LIAR, boot_id=0xFFFFFFFF, seq=liar.seq)
        link.write(encode_frame(bogus.event(runner.uptime_ms(liar))))
        await asyncio.wait_for(sim, 120)
        await sub.wait_for(lambda: all(len(_seqs(sub, n)) >= COUNT for n in (GOOD, LIAR)))
        counters = dict(gw.health.counters)
        boot = gw.registry.get(LIAR).state.seq.boot_id  # type: ignore[union-attr]
    await sub.stop()
    assert _seqs(sub, LIAR) == list(range(1, COUNT + 1))
    assert _seqs(sub, GOOD) == list(range(1, COUNT + 1))
    assert {m.json()["boot"] for m in sub.where("/event")} == {1}
    assert counters["boot_unconfirmed"] == 1
    assert counters.get("rejected_stale", 0) == 0
    assert boot == 1


def _reboot(node: SimulatedNode, boot_id: int) -> None:
    node.boot_id, node.seq = boot_id, 0
    node.ring.clear()


async def test_a_reset_boot_counter_is_accepted_and_its_keys_never_repeat(
    tmp_path: Path, mosquitto: Mosquitto, pty, caplog: pytest.LogCaptureFixture
) -> None:
    """Boot 1, boot 2, then the node is reflashed and counts from 1 again: every event
    of all three boots arrives, under 30 distinct dedup keys."""
    link = pty()
    node = SimulatedNode(GOOD, heartbeat_period_s=1)
    sub = Collector(mosquitto, "tinyml/gw/#")
    await sub.start()
    caplog.set_level(logging.WARNING)
    async with running(gateway_config(tmp_path, mosquitto, [link.path])) as gw:
        for boot in (1, 2, 1):
            _reboot(node, boot)
            await asyncio.wait_for(
                NodeRunner(link, [node], rate_hz=20, count=10).run(until_acked=True), 60
            )
        await sub.wait_for(lambda: len(_keys(sub, GOOD)) >= 30)
        counters = dict(gw.health.counters)
    await sub.stop()
    keys = _keys(sub, GOOD)
    assert len(keys) == 30
    assert len(set(keys)) == 30
    assert [k for k in keys if k.count(":") == 3] == [
        f"{node_hex(GOOD)}:1:{s}:1" for s in range(1, 11)
    ]
    assert counters["boot_resets"] == 1
    assert any("went back from boot 2 to boot 1" in r.getMessage() for r in caplog.records)


async def test_an_operator_forget_lets_in_a_lower_boot_that_shows_no_fresh_start(
    tmp_path: Path, mosquitto: Mosquitto, pty, caplog: pytest.LogCaptureFixture
) -> None:
    """The node's counter went back while the gateway was away: its uptime is an hour,
    so nothing shows a fresh start. Its events wait (refused, one line naming the fix)
    until the operator runs ``tinyml-gateway node forget``; then all of them arrive."""
    link = pty()
    node = SimulatedNode(GOOD, boot_id=5, heartbeat_period_s=1)
    sub = Collector(mosquitto, "tinyml/gw/#")
    await sub.start()
    caplog.set_level(logging.WARNING)
    cfg = gateway_config(tmp_path, mosquitto, [link.path])
    async with running(cfg) as gw:
        await asyncio.wait_for(
            NodeRunner(link, [node], rate_hz=20, count=10).run(until_acked=True), 60
        )
        _reboot(node, 3)
        late = NodeRunner(link, [node], rate_hz=20, count=10, booted_s_ago=3600)
        sim = asyncio.create_task(late.run(until_acked=True))
        while gw.health.counters["rejected_stale"] < 10:
            await asyncio.sleep(0.05)
        assert not sim.done()
        ok, text = await asyncio.to_thread(request_forget, cfg.outbox_path, GOOD)
        assert ok, text
        assert "forgot" in text
        await asyncio.wait_for(sim, 60)
        await sub.wait_for(lambda: len(_keys(sub, GOOD)) >= 20)
    await sub.stop()
    boot3 = [m.json() for m in sub.where("/event") if m.json()["boot"] == 3]
    assert sorted(e["seq"] for e in boot3) == list(range(1, 11))
    assert all(e["key"] == f"{node_hex(GOOD)}:3:{e['seq']}:1" for e in boot3)
    assert any("node forget 000000000000b000" in r.getMessage() for r in caplog.records)


async def test_forget_over_the_command_topic_is_refused_unless_allowed(
    tmp_path: Path, mosquitto: Mosquitto, pty
) -> None:
    link = pty()
    node = SimulatedNode(GOOD, boot_id=5, heartbeat_period_s=1)
    sub = Collector(mosquitto, "tinyml/gw/+/cmd/ack")
    await sub.start()
    base = gateway_config(tmp_path, mosquitto, [link.path]).mqtt.commands
    for allowed in (False, True):
        commands = [*base, "forget"] if allowed else base
        cfg = gateway_config(tmp_path, mosquitto, [link.path], mqtt={"commands": commands})
        async with (
            running(cfg) as gw,
            aiomqtt.Client("127.0.0.1", mosquitto.port) as client,
        ):
            await asyncio.wait_for(
                NodeRunner(link, [node], rate_hz=20, count=3).run(until_acked=True), 60
            )
            before = gw.registry.get(GOOD).state.seq.epoch  # type: ignore[union-attr]
            for target in (GOOD, 0xDEAD):
                await client.publish(
                    f"tinyml/gw/{node_hex(target)}/cmd",
                    json.dumps({"id": f"{allowed}-{target}", "method": "forget"}),
                    qos=1,
                )
            expected = 4 if allowed else 2
            await sub.wait_for(lambda: len(sub.messages) >= expected)  # noqa: B023
            after = gw.registry.get(GOOD).state.seq.epoch  # type: ignore[union-attr]
        assert after == before + (1 if allowed else 0)
    answers = {m.json()["id"]: m.json()["status"] for m in sub.messages}
    await sub.stop()
    assert answers == {
        f"False-{GOOD}": "refused",
        f"False-{0xDEAD}": "refused",
        f"True-{GOOD}": "ok",
        f"True-{0xDEAD}": "unknown_node",
    }
