"""Power cuts, for real: QEMU is killed (not the guest's processes) while a node sends.

The guest's disk is opened with cache=directsync: every write the guest makes reaches the
image before QEMU says it is done, and QEMU keeps nothing of its own. So the image after a
kill holds exactly what the guest's kernel had written, as a card holds what reached it
before the power went; what the guest had only in its page cache is gone. (writethrough
would do the same for writes but read through the host's cache; writeback, QEMU's default,
would keep writes the guest had flushed in the host's page cache, which survives a killed
QEMU and so hides exactly what this test looks for.)

The broker and the subscriber run on this side (the guest reaches them as 10.0.2.2), so a
cut loses nothing there: what the subscriber lacks, the gateway lost.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.model import node_hex
from gateway.sim.link import NodeRunner, open_device
from gateway.sim.node import SimulatedNode
from tests.peers import Collector, Mosquitto
from tests.vm.rig import Guest, RigError

NODE = 0xA1B2C3D4E5F60200
UNIT = "tinyml-gateway"
CUTS = 3
# the first module's setup may build the guest's root filesystem (minutes, once a machine)
pytestmark = pytest.mark.timeout(1500)


def config(port: int) -> str:
    return f"""[gateway]
id = "cut"
clock_check = "assume-synced"

[[serial]]
path = "/dev/ttyS1"

[mqtt]
host = "10.0.2.2"
port = {port}
reconnect_max_s = 2.0

[outbox]
sync = "full"
"""


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path)
    b.start()
    yield b
    b.stop()


# The guest's calls block: in a thread, so that the subscriber goes on reading meanwhile
async def boot(vm: Guest) -> None:
    try:
        await asyncio.to_thread(vm.boot)
    except RigError as exc:
        pytest.fail(f"the guest did not boot: {exc}")


def acknowledged(node: SimulatedNode) -> set[int]:
    """The events the node has been acknowledged for: it has forgotten them (its ring
    never overflowed: checked with each call)."""
    assert node.dropped == 0, "the node's ring overflowed: the test lost events itself"
    return set(range(1, node.seq + 1)) - {p.seq for p in node.ring}


async def test_every_acknowledged_event_survives_power_cuts(
    new_guest: Callable[..., Guest], broker: Mosquitto
) -> None:
    vm = new_guest()
    await boot(vm)
    await asyncio.to_thread(vm.write, "/etc/tinyml-gateway/config.toml", config(broker.port))
    await vm.must_async(f"systemctl enable --now {UNIT} </dev/null", timeout_s=150)
    # a persistent session: a reconnect of the subscriber loses nothing either
    events = Collector(broker, f"tinyml/cut/{node_hex(NODE)}/event", client_id="power-cut")
    await events.start()
    node = SimulatedNode(NODE, heartbeat_period_s=1)
    # one runner throughout, moved to each boot's pseudo-terminal: the node's uptime goes
    # on across the gateway's reboots, as a real node's does
    runner = NodeRunner(open_device(vm.serial), [node], rate_hz=50)
    rng = random.Random(20261207)
    forgotten: set[int] = set()
    try:
        for cut in range(CUTS):
            link = runner.link = open_device(vm.serial) if cut else runner.link
            sending = asyncio.create_task(runner.run())
            # the cut lands at a different moment each time: early, mid-commit, later
            await events.wait_for(lambda: len(events.messages) >= 1, 120)
            await asyncio.sleep(rng.uniform(0.5, 4.0))
            vm.cut_power()
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)
            link.close()
            forgotten |= acknowledged(node)
            assert node.seq > 0 and forgotten, f"cut {cut}: nothing was acknowledged"
            await boot(vm)
            await asyncio.to_thread(vm.until, f"systemctl is-active -q {UNIT}")
            # the outbox opens as it was left: SQLite finds nothing to repair
            check = await vm.must_async("/opt/tinyml-gateway/bin/python -c \"import sqlite3; print(sqlite3.connect('/var/lib/tinyml-gateway/outbox.sqlite3').execute('pragma integrity_check').fetchone()[0])\"")  # fmt: skip
            assert check.strip().endswith("ok"), check
        # the node resends what it still holds; nothing new
        link = runner.link = open_device(vm.serial)
        runner.count = node.seq
        await asyncio.wait_for(runner.run(until_acked=True), 300)
        link.close()
        want = set(range(1, node.seq + 1))
        try:
            await events.wait_for(lambda: {m.json()["seq"] for m in events.messages} >= want, 120)
        except AssertionError:
            got = {m.json()["seq"] for m in events.messages}
            missing = sorted(want - got)
            pytest.fail(
                f"missing {len(missing)} of {len(want)}: {missing[:30]}; acknowledged before a "
                f"cut: {sorted(forgotten & set(missing))[:30]}\n"
                + await vm.must_async(
                    f"journalctl -u {UNIT} --no-pager -o short-monotonic | tail -n 60"
                )
            )
    finally:
        await events.stop()
        vm.shutdown()
    got = {m.json()["seq"] for m in events.messages}
    assert forgotten <= got, (
        f"acknowledged, then lost in a power cut: {sorted(forgotten - got)[:20]}"
    )
    assert got == set(range(1, node.seq + 1))
    acknowledged(node)  # the ring never overflowed
