"""BLE nodes through bleak's real BlueZ backend, over a real D-Bus, to an emulated BlueZ.

The rig (gateway/sim/bluez_rig.py): a private dbus-daemon and bluezoo with the
gateway's adapter hci0 and one adapter per emulated node. Each emulated node is
a simulated node (its retransmit ring included) behind the node side of a BLE
link (gateway/sim/ble_node.py). The gateway runs in this process with a real
Mosquitto; a subscriber counts what arrives.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.model import node_hex
from gateway.sim.ble_node import BleNodeLink
from gateway.sim.bluez_rig import BluezRig
from gateway.sim.link import NodeRunner
from gateway.sim.node import SimulatedNode
from tests.peers import Collector, Mosquitto, gateway_config, running

A, B = 0xB1E0, 0xB1E1


@pytest.fixture
def rig() -> Iterator[BluezRig]:
    with BluezRig(nodes=2) as r:
        yield r


def ble_section(**extra: Any) -> dict[str, Any]:
    return {
        "enabled": True,
        "adapter": "hci0",
        "connect_timeout_s": 10.0,
        "call_timeout_s": 5.0,
        "backoff_max_s": 2.0,
        **extra,
    }


class Emulated:
    """One emulated node: its BLE link on adapter ``i`` and the runner that drives it."""

    def __init__(self, i: int, node: SimulatedNode, **link: Any) -> None:
        self.node = node
        self.link = BleNodeLink(BluezRig.node_adapter(i), name=f"node-{i}", **link)
        self.runner: NodeRunner | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self, *, rate_hz: float, count: int | None) -> None:
        await self.link.start()
        self.runner = NodeRunner(self.link, [self.node], rate_hz=rate_hz, count=count)
        self.task = asyncio.create_task(self.runner.run(until_acked=count is not None))

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        await self.link.stop()


@pytest.fixture
async def emulated() -> AsyncIterator[list[Emulated]]:
    made: list[Emulated] = []
    yield made
    for e in made:
        await e.stop()


def _seqs(sub: Collector, node: int) -> list[int]:
    return sorted({m.json()["seq"] for m in sub.where(f"{node_hex(node)}/event")})


async def test_a_connected_node_s_events_reach_the_subscriber_and_are_acknowledged(
    tmp_path: Path, mosquitto: Mosquitto, rig: BluezRig, emulated: list[Emulated]
) -> None:
    node = Emulated(0, SimulatedNode(A, heartbeat_period_s=1))
    emulated.append(node)
    sub = Collector(mosquitto, "tinyml/gw/#")
    await sub.start()
    cfg = gateway_config(tmp_path, mosquitto, [], ble=ble_section())
    async with running(cfg) as gw:
        await node.start(rate_hz=10, count=30)
        assert node.task is not None
        await asyncio.wait_for(node.task, 60)  # every event acknowledged over BLE
        await sub.wait_for(lambda: len(_seqs(sub, A)) >= 30)
        health = gw.health.payload()
    await sub.stop()
    assert _seqs(sub, A) == list(range(1, 31))
    events = [m.json() for m in sub.where(f"{node_hex(A)}/event")]
    assert {e["transport"] for e in events} == {"ble"}
    info = [m.json() for m in sub.where(f"{node_hex(A)}/info")]
    assert info and info[0]["model_name"]
    link = health["sources"]["ble:hci0"]["links"][BluezRig.node_address(0)]
    assert link["node"] == node_hex(A) and link["connects"] == 1
    assert not node.node.ring
