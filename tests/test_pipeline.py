"""End to end on real peers: simulated nodes on ptys -> gateway -> Mosquitto -> a subscriber."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

from gateway.fields import SCHEMA
from gateway.model import node_hex
from gateway.protocol.constants import SCORE_SCALE
from gateway.sim.link import NodeRunner
from gateway.sim.node import LABELS, MODEL_ID, SimulatedNode, expected_event
from tests.peers import Collector, Mosquitto, gateway_config, running


def _busy(health: dict) -> bool:
    """A health message sent after both nodes came online and events were counted."""
    return health["nodes"]["online"] == 2 and health["counters"].get("events", 0) >= 1


async def test_events_arrive_with_every_field_and_nodes_get_acks(
    tmp_path: Path, mosquitto: Mosquitto, pty
) -> None:
    link = pty()
    nodes = [SimulatedNode(0x1000 + i, boot_id=3, window=(i == 0)) for i in range(2)]
    runner = NodeRunner(link, nodes, rate_hz=50, count=40)
    sub = Collector(mosquitto, "tinyml/gw/#")
    await sub.start()
    cfg = gateway_config(
        tmp_path,
        mosquitto,
        [link.path],
        nodes={node_hex(0x1000): {"name": "press-1", "group": "hall"}},
    )
    async with running(cfg) as gw:
        await asyncio.wait_for(runner.run(until_acked=True), 60)  # every event ACKed by the gateway
        await sub.wait_for(lambda: len(sub.where("/event")) >= 80)
        events = [m.json() for m in sub.where("/event")]
        assert {(e["node"], e["seq"]) for e in events} == {
            (node_hex(n.node_id), s) for n in nodes for s in range(1, 41)
        }
        e = next(e for e in events if e["node"] == node_hex(0x1000) and e["seq"] == 7)
        want = expected_event(0x1000, 7, window=True)
        assert e["schema"] == SCHEMA and e["kind"] == "event" and e["gateway"] == "gw"
        assert e["name"] == "press-1" and e["group"] == "hall"
        assert e["boot"] == 3 and e["key"] == f"{node_hex(0x1000)}:3:7"
        assert e["label_index"] == want.label and e["label"] == LABELS[want.label]
        assert e["score_raw"] == want.score and e["score"] == round(want.score / SCORE_SCALE, 6)
        assert e["scores"] == [round(s / SCORE_SCALE, 6) for s in want.scores]
        assert e["model_id"] == f"{MODEL_ID:08x}" and e["inference_us"] == want.inference_us
        assert e["window"]["dims"] == [100, 6] and e["transport"] == "serial"
        assert e["clock_synced"] is True and isinstance(e["ts"], int) and e["uptime_ms"] >= 0
        other = next(e for e in events if e["node"] == node_hex(0x1001))
        assert other["name"] is None and "window" not in other
        # per-node order of arrival follows seq
        for n in nodes:
            seqs = [e["seq"] for e in events if e["node"] == node_hex(n.node_id)]
            assert seqs == sorted(seqs)
        # timestamps follow node uptime; the offset estimate may only improve by transit delay
        ts = [(e["uptime_ms"], e["ts"]) for e in events if e["node"] == node_hex(0x1001)]
        assert all(
            abs((t2 - t1) - (u2 - u1)) <= 100 for (u1, t1), (u2, t2) in itertools.pairwise(ts)
        )
        assert gw.health.counters["events"] == 80
        await sub.wait_for(lambda: len(sub.where("/info")) >= 2)
        # the gateway's health is published every health.interval_s (1 s here)
        await sub.wait_for(lambda: any(_busy(m.json()) for m in sub.where("/gw/status")))
    # (a live subscriber gets retain=0 by the MQTT rules; the late-subscriber test checks retention)
    info = sub.where(f"{node_hex(0x1000)}/info")[0]
    assert info.json()["labels"] == list(LABELS)
    status = sub.where(f"{node_hex(0x1000)}/status")
    assert status[0].json()["online"] is True
    health = next(m.json() for m in sub.where("/gw/status") if _busy(m.json()))
    assert health["online"] is True
    assert health["sinks"]["mqtt"]["connected"] is True
    assert health["sources"][link.path]["open"] is True
    await sub.stop()


async def test_retained_topics_and_last_will_for_late_subscribers(
    tmp_path: Path, mosquitto: Mosquitto, pty
) -> None:
    link = pty()
    node = SimulatedNode(0x2000, boot_id=1)
    runner = NodeRunner(link, [node], rate_hz=20, count=5)
    cfg = gateway_config(tmp_path, mosquitto, [link.path])
    async with running(cfg):
        await asyncio.wait_for(runner.run(until_acked=True), 30)
        late = Collector(mosquitto, "tinyml/gw/#")
        await late.start()
        await late.wait_for(
            lambda: (
                {m.topic for m in late.messages}
                >= {
                    "tinyml/gw/status",
                    f"tinyml/gw/{node_hex(0x2000)}/info",
                    f"tinyml/gw/{node_hex(0x2000)}/status",
                }
            )
        )
        assert all(m.retain for m in late.messages if not m.topic.endswith("/event"))
        await late.stop()
