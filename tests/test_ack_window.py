"""The ACK never covers an event the node still holds (docs/protocol.md 8), however long
a gap stays open and however many events arrive above it: the real gateway, a real
Mosquitto, nodes on pseudo-terminals.

(a) one EVENT lost on the link while its node holds back resends: far more than the
    window arrives above the gap, no ACK passes it, and once the node resends, every
    event arrives;
(b) the same under load: four nodes at 1,500 events/s each beside two CPU burners, the
    gateway in its own process; one frame in 400 is corrupted on its first sending, and
    nodes resend only after 3 s (4,500 events later); every event still arrives, none
    is counted lost.
"""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from gateway.model import node_hex
from gateway.protocol import Ack, Message
from gateway.protocol.sequence import WINDOW
from gateway.sim.link import NodeRunner
from gateway.sim.node import SimulatedNode
from tests.peers import Collector, Mosquitto, config_data, gateway_config, running, toml_text
from tests.test_no_loss import _spawn, distinct

GAP = 5
COUNT = WINDOW + 600


@dataclass(slots=True)
class GapNode(SimulatedNode):
    """An honest node whose EVENT ``GAP`` is lost on the link the first time, and that
    resends nothing while ``holding``; it remembers the highest ACK it was sent."""

    holding: bool = True
    acked: int = 0

    def event(self, uptime_ms: int) -> bytes:
        raw = SimulatedNode.event(self, uptime_ms)
        return b"\xff" if self.seq == GAP else raw  # a frame the gateway counts as bad

    def due(self, uptime_ms: int) -> list[bytes]:
        return [] if self.holding else SimulatedNode.due(self, uptime_ms)

    def on_downlink(self, msg: Message, uptime_ms: int) -> list[bytes]:
        if isinstance(msg.body, Ack) and msg.header.node_id == self.node_id:
            self.acked = max(self.acked, msg.body.seq)
        return SimulatedNode.on_downlink(self, msg, uptime_ms)


async def test_no_ack_passes_a_gap_however_many_events_arrive_above_it(
    tmp_path: Path, mosquitto: Mosquitto, pty
) -> None:
    link = pty()
    node = GapNode(0xA900, ring_size=COUNT + 10, retx_timeout_ms=500, heartbeat_period_s=1)
    sub = Collector(mosquitto, "tinyml/gw/#")
    await sub.start()
    async with running(gateway_config(tmp_path, mosquitto, [link.path])) as gw:
        runner = NodeRunner(link, [node], rate_hz=2000, count=COUNT)
        sim = asyncio.create_task(runner.run(until_acked=True))
        # everything sent, and the window above the gap full (or, wrongly, the gap passed)
        while node.seq < COUNT or not (
            gw.health.counters["events_deferred_gap"] or node.acked >= GAP
        ):
            await asyncio.sleep(0.05)
        assert node.acked < GAP, f"ACK {node.acked} passed the gap at {GAP}"
        for _ in range(3):  # heartbeats go on (floor = GAP): nothing is given up
            await asyncio.sleep(1.1)
            assert node.acked < GAP, f"ACK {node.acked} passed the gap at {GAP}"
            assert node.ring[0].seq == GAP
        deferred = gw.health.counters["events_deferred_gap"]
        node.holding = False
        await asyncio.wait_for(sim, 120)
        await sub.wait_for(lambda: len(_seqs(sub, node.node_id)) >= COUNT, timeout=120)
        counters = dict(gw.health.counters)
    await sub.stop()
    assert _seqs(sub, node.node_id) == set(range(1, COUNT + 1))
    assert deferred > 0  # the window was reached: memory stayed bounded
    assert counters.get("events_lost_at_node", 0) == 0 and node.dropped == 0


@dataclass(slots=True)
class NoisyNode(SimulatedNode):
    """An honest node on a noisy line: the first sending of each seq in ``lose`` arrives
    corrupted (the gateway counts a bad frame); its ring holds the good bytes."""

    lose: frozenset[int] = frozenset()

    def event(self, uptime_ms: int) -> bytes:
        raw = SimulatedNode.event(self, uptime_ms)
        return b"\xff" if self.seq in self.lose else raw


def _seqs(sub: Collector, node_id: int) -> set[int]:
    return {m.json()["seq"] for m in sub.where(f"{node_hex(node_id)}/event")}


def _burner() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


async def test_every_event_arrives_under_cpu_contention_with_slow_resends(
    tmp_path: Path, mosquitto: Mosquitto, pty
) -> None:
    per_node = 6000
    rng = random.Random(30)
    links = [pty(), pty()]
    nodes = [
        NoisyNode(
            0xAA00 + i,
            ring_size=per_node + 10,
            retx_timeout_ms=3000,
            lose=frozenset(rng.sample(range(1, per_node), per_node // 400)),
        )
        for i in range(4)
    ]
    runners = [
        NodeRunner(links[0], nodes[:2], rate_hz=1500, count=per_node),
        NodeRunner(links[1], nodes[2:], rate_hz=1500, count=per_node),
    ]
    data = config_data(tmp_path, mosquitto, [link.path for link in links], log={"level": "warning"})
    config = tmp_path / "gateway.toml"
    config.write_text(toml_text(data))
    log = tmp_path / "gateway.log"
    sub = Collector(mosquitto, "tinyml/gw/#", client_id="load-subscriber")
    await sub.start()
    burners = [_burner(), _burner()]
    proc = _spawn(config, log)
    try:
        await sub.wait_for(lambda: bool(sub.where("gw/status")), timeout=60)
        sims = [asyncio.create_task(r.run(until_acked=True)) for r in runners]
        await asyncio.wait_for(asyncio.gather(*sims), 300)
        total = per_node * len(nodes)
        await sub.wait_for(lambda: len(distinct(sub.messages)) >= total, timeout=180)
    finally:
        for b in burners:
            b.kill()
            b.wait()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()[-3000:]
        await sub.stop()
    got = distinct(sub.messages)
    assert len(got) == total
    assert all(n.dropped == 0 and not n.ring for n in nodes)
    assert "Traceback" not in log.read_text()
