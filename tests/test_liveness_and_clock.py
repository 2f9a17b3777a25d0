"""Node liveness and the wall clock, end to end on real peers."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.model import node_hex
from gateway.sim.link import NodeRunner
from gateway.sim.node import SimulatedNode
from tests.peers import Collector, Mosquitto, gateway_config, running


class QuietNode(SimulatedNode):
    """A node whose INFO states no heartbeat period, so the gateway's default applies."""

    def info(self, uptime_ms: int) -> bytes:
        self.heartbeat_period_s = 0
        try:
            return SimulatedNode.info(self, uptime_ms)
        finally:
            self.heartbeat_period_s = 3600


async def test_a_silent_node_goes_offline_after_three_periods(
    tmp_path: Path, mosquitto: Mosquitto, pty
) -> None:
    link = pty()
    node = QuietNode(0x9000, heartbeat_period_s=3600)
    cfg = gateway_config(
        tmp_path, mosquitto, [link.path], nodes={"default_heartbeat_period_s": 0.3}
    )
    sub = Collector(mosquitto, f"tinyml/gw/{node_hex(0x9000)}/status")
    await sub.start()
    async with running(cfg) as gw:
        await asyncio.wait_for(
            NodeRunner(link, [node], rate_hz=20, count=3).run(until_acked=True), 30
        )
        # then silence, with the port still open
        await sub.wait_for(
            lambda: any(m.json()["online"] is False for m in sub.messages), timeout=30
        )
        off = next(m.json() for m in sub.messages if m.json()["online"] is False)
        assert "3 heartbeat periods" in off["reason"]
        assert gw.registry.get(0x9000).online is False
        # and back online with its next message
        await asyncio.wait_for(
            NodeRunner(link, [node], rate_hz=20, count=4).run(until_acked=True), 30
        )
        await sub.wait_for(lambda: sub.messages[-1].json()["online"] is True)
    await sub.stop()


async def test_records_stamped_before_the_clock_syncs_are_restamped(tmp_path: Path, pty) -> None:
    flag = tmp_path / "synchronized"  # clock_check: synced once this file exists
    link = pty()
    node = SimulatedNode(0x9100, ring_size=1000)
    # no sink: records stay in the outbox, where the test can read them
    cfg = gateway_config(
        tmp_path, None, [link.path], gateway={"clock_check": str(flag)}, mqtt={"enabled": False}
    )
    async with running(cfg) as gw:
        gw.ingest._clock._recheck_s = 0  # look at the flag on every batch
        await asyncio.wait_for(
            NodeRunner(link, [node], rate_hz=50, count=10).run(until_acked=True), 30
        )
        before = [r for r in await gw.outbox.fetch(0, 1000) if r.kind.value == "event"]
        assert [r.seq for r in before] == list(range(1, 11))
        assert not any(r.clock_synced for r in before)
        flag.touch()
        await asyncio.wait_for(
            NodeRunner(link, [node], rate_hz=50, count=20).run(until_acked=True), 30
        )
        after = [r for r in await gw.outbox.fetch(0, 1000) if r.kind.value == "event"]
        assert [r.seq for r in after] == list(range(1, 21))
        assert all(r.clock_synced for r in after)  # the old ones were re-stamped
        # this clock did not really step, so the stamps barely move
        assert all(abs(a.ts_ms - b.ts_ms) < 1000 for a, b in zip(after, before, strict=False))
