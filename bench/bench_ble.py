"""BLE figures on the emulated BlueZ (gateway/sim/bluez_rig.py). Prints figures; asserts nothing.

    python bench/bench_ble.py [--events 3000]

Processes: the gateway (``python -m gateway run``, its own process), Mosquitto,
bluezoo and dbus-daemon; the emulated nodes and an MQTT subscriber run in this
process.

Figures:
  throughput   events/s from one connected emulated node to the subscriber, sending as
               fast as it can; notifications per event; the gateway's CPU per 1,000
               notifications (/proc/PID/stat, user + system)
  reappear     the node's service goes away and comes back: seconds from its return to
               its next event at the subscriber
  watchdog     an advertising node falls silent: seconds until the gateway restarts
               discovery (threshold 3 s), and from the node's next advert to that event
               at the subscriber

What the emulator does not model: radio timing (connection intervals of 7.5 ms and
more bound a real link to far fewer notifications per second), radio loss, RSSI, an
MTU other than 23. The throughput figure is therefore the gateway's and the D-Bus
path's ceiling, not a radio's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_pipeline import rss_mb, start_gateway  # noqa: E402
from gateway.model import node_hex  # noqa: E402
from gateway.sim.ble_node import BleNodeLink  # noqa: E402
from gateway.sim.bluez_rig import BluezRig  # noqa: E402
from gateway.sim.link import NodeRunner  # noqa: E402
from gateway.sim.node import SimulatedNode  # noqa: E402
from tests.peers import Collector, Mosquitto  # noqa: E402

NODE, ADVERTISER = 0xB1E0, 0xB1E1
SILENCE_S = 3.0


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def seqs(sub: Collector, node: int) -> set[int]:
    return {m.json()["seq"] for m in sub.where(f"{node_hex(node)}/event")}


async def until(predicate, what: str, timeout_s: float = 120) -> float:  # type: ignore[no-untyped-def]
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > timeout_s:
            raise SystemExit(f"bench: timed out waiting for {what}")
        await asyncio.sleep(0.01)
    return time.monotonic()


async def bench(tmp: Path, events: int) -> None:
    broker = Mosquitto(tmp)
    broker.start()
    ble = {"enabled": True, "scanner_silence_s": SILENCE_S, "backoff_max_s": 2.0}
    proc, _ = start_gateway(tmp, broker, [], ble=ble, health={"interval_s": 0.5})
    sub = Collector(broker, "tinyml/bench/#")
    await sub.start()
    # paced well above what the gateway takes, so that the gateway is what the figure measures
    link = BleNodeLink(BluezRig.node_adapter(0), notifications_per_s=5_000)
    await link.start()
    node = SimulatedNode(NODE, heartbeat_period_s=5, ring_size=events)
    runner = NodeRunner(link, [node], rate_hz=1, count=1)
    await asyncio.wait_for(runner.run(until_acked=True), 60)  # connected and acknowledged
    cpu0, sent0, t0 = cpu_s(proc.pid), link.notified, time.monotonic()
    fast = NodeRunner(link, [node], rate_hz=100_000, count=1 + events)
    await asyncio.wait_for(fast.run(until_acked=True), 600)
    t1 = await until(lambda: len(seqs(sub, NODE)) >= 1 + events, "every event")
    cpu, notified = cpu_s(proc.pid) - cpu0, link.notified - sent0
    rss, _ = rss_mb(proc.pid)
    print(f"throughput  {events / (t1 - t0):,.0f} events/s end to end ({events} events, one node)")
    print(
        f"            {notified / events:.1f} notifications per event; gateway CPU "
        f"{cpu / notified * 1000 * 1000:.0f} ms per 1,000 notifications; RSS {rss:.1f} MB"
    )

    slow = NodeRunner(link, [node], rate_hz=5)
    sim = asyncio.create_task(slow.run())
    await until(lambda: len(seqs(sub, NODE)) > 1 + events, "the slow runner's events")
    await link.stop()
    await until(
        lambda: any(not m.json()["online"] for m in sub.where(f"{node_hex(NODE)}/status")),
        "the node offline",
    )
    await asyncio.sleep(1.0)
    last = max(seqs(sub, NODE))
    back = time.monotonic()
    await link.start()
    flowing = await until(lambda: max(seqs(sub, NODE)) > last, "events after the return")
    print(f"reappear    {flowing - back:.2f} s from the node's return to its next event")
    sim.cancel()
    await asyncio.gather(sim, return_exceptions=True)
    await link.stop()

    adv = BleNodeLink(BluezRig.node_adapter(1), advertise_only=True)
    await adv.start()
    quiet_node = SimulatedNode(ADVERTISER, heartbeat_period_s=1000, retx_timeout_ms=10**9)
    adv.write(encode_next(quiet_node))
    await until(lambda: seqs(sub, ADVERTISER) == {1}, "the first advert")

    def restarts() -> int:
        status = [m.json() for m in sub.where("tinyml/bench/status")]
        return int(status[-1]["sources"]["ble:hci0"]["restarts"]) if status else 0

    await asyncio.sleep(1.5)  # three health reports: the count below is the current one
    before = restarts()
    adv.varying = False
    silent = time.monotonic()
    restarted = await until(lambda: restarts() > before, "a discovery restart")
    adv.varying = True
    resumed = time.monotonic()
    adv.write(encode_next(quiet_node))
    heard = await until(lambda: seqs(sub, ADVERTISER) == {1, 2}, "the advert after it")
    print(
        f"watchdog    discovery restarted {restarted - silent:.1f} s after the last advert "
        f"(threshold {SILENCE_S:g} s, health every 0.5 s); the next advert reached the "
        f"subscriber {heard - resumed:.2f} s after it was sent"
    )
    await adv.stop()
    await sub.stop()
    proc.terminate()
    proc.wait(30)
    broker.stop()


def encode_next(node: SimulatedNode) -> bytes:
    from gateway.protocol import encode_frame

    return encode_frame(node.event(0))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=3000)
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; emulated BlueZ")
    with tempfile.TemporaryDirectory() as tmp, BluezRig(nodes=2):
        asyncio.run(bench(Path(tmp), args.events))


if __name__ == "__main__":
    main()
