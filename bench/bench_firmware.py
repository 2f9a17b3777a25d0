"""The reference node's Cortex-M4 build in QEMU: instructions per event, and events/s
into the real gateway.

    python bench/bench_firmware.py [--seconds 20]

  instructions  per EVENT on the protocol path (encode, retransmit ring, COBS + CRC-32
                frame, ACK), with and without the 600-value window and HMAC, and per
                window on the core's path without inference: build/qemu/protocol-bench.elf
                under `qemu-system-arm -icount shift=0` (1 ns of virtual time per
                instruction; the image checks this with a 2-instruction loop). QEMU models
                no cycle timing: these are instruction counts, not cycles.
  events/s      the node image (every EVENT with its window, about 660 bytes on the wire)
                at its highest sample rate into the gateway process, counted as distinct
                events at a Mosquitto subscriber over --seconds. The emulated MCU runs as
                fast as this machine's QEMU can (no baud rate is modelled on a pty): a figure
                of QEMU and the gateway on this machine, not of a real board at 115200 baud.
                Then the rate drops to 1 Hz and, once resends settle, the subscriber's
                distinct seqs are compared with the node's count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiomqtt

from gateway.model import node_hex
from tests.peers import Collector, Mosquitto, config_data, toml_text
from tests.qemu_node import FIRMWARE, NODE_ID, QemuNode, build_firmware, qemu_command
from tests.test_no_loss import _spawn

ROOT = Path(__file__).resolve().parent.parent
BENCH_ELF = FIRMWARE / "build" / "qemu" / "protocol-bench.elf"
MAX_RATE_HZ = 100_000  # main.c's max_sample_rate_hz


def instructions() -> dict[str, int]:
    subprocess.run(["make", "-s", "-C", str(FIRMWARE), "qemu-bench"], check=True)
    proc = subprocess.Popen(
        qemu_command(BENCH_ELF, "stdio", "-icount", "shift=0"),
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    out: dict[str, int] = {}
    try:
        for line in proc.stdout:
            if line.startswith("done"):
                break
            name, _, value = line.strip().rpartition(" ")
            if value.isdigit():
                out[name] = int(value)
    finally:
        proc.kill()
        proc.wait()
    if out.get("calibration_loop_of_2") != 2:
        raise SystemExit(f"instruction counting is off: {out}")
    return out


async def events_per_second(seconds: float) -> dict[str, float]:
    elf = build_firmware()
    node = node_hex(NODE_ID)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        broker = Mosquitto(tmp)
        broker.start()
        qemu = QemuNode(elf, tmp / "qemu.log")
        port = qemu.start()
        data = config_data(tmp, broker, [port], log={"level": "warning"})
        (tmp / "gateway.toml").write_text(toml_text(data))
        sub = Collector(broker, f"tinyml/gw/{node}/#", client_id="bench-firmware")
        await sub.start()
        gw = _spawn(tmp / "gateway.toml", tmp / "gateway.log")
        try:
            await sub.wait_for(lambda: bool(sub.where(f"{node}/heartbeat")), timeout=60)
            async with aiomqtt.Client("127.0.0.1", broker.port) as client:
                cmd = {"id": 1, "method": "set_sample_rate", "params": {"hz": MAX_RATE_HZ}}
                await client.publish(f"tinyml/gw/{node}/cmd", json.dumps(cmd), qos=1)
            await sub.wait_for(lambda: len(sub.where(f"{node}/event")) >= 50, timeout=60)
            n0, t0 = len(sub.where(f"{node}/event")), time.monotonic()
            hb0 = sub.where(f"{node}/heartbeat")[-1].json()
            await asyncio.sleep(seconds)
            n1, t1 = len(sub.where(f"{node}/event")), time.monotonic()
            hb1 = sub.where(f"{node}/heartbeat")[-1].json()
            span_ms = hb1["uptime_ms"] - hb0["uptime_ms"]
            async with aiomqtt.Client("127.0.0.1", broker.port) as client:
                cmd = {"id": 2, "method": "set_sample_rate", "params": {"hz": 1}}
                await client.publish(f"tinyml/gw/{node}/cmd", json.dumps(cmd), qos=1)
            await asyncio.sleep(5)  # resends of what is still in the ring settle
            seqs = {m.json()["seq"] for m in sub.where(f"{node}/event")}
            return {
                "events_per_s": (n1 - n0) / (t1 - t0),
                "node_inferences_per_s": (hb1["inferences"] - hb0["inferences"]) / span_ms * 1000
                if span_ms
                else 0.0,
                "ring_overwrites_at_node": hb1["events_dropped"],
                "events_made": max(seqs),
                "events_missing_at_subscriber": max(seqs) - len(seqs),
            }
        finally:
            gw.terminate()
            gw.wait(30)
            qemu.stop()
            await sub.stop()
            broker.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    counts = instructions()
    print("instructions (qemu-system-arm -icount shift=0, mps2-an386, -Os):")
    for name, value in counts.items():
        print(f"  {name:<36}{value:>9}")
    rates = asyncio.run(events_per_second(args.seconds))
    print(f"emulated node into the gateway, {args.seconds:.0f} s:")
    for name, value in rates.items():
        print(f"  {name:<36}{value:>9.1f}")


if __name__ == "__main__":
    main()
