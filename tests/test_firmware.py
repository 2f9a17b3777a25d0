"""The reference node's ARM build, in QEMU, against the real gateway process.

The Cortex-M4 image of mcu_firmware/ (the portable core, the protocol library, the
replay backend and the data set as its sensor) runs in qemu-system-arm with UART0 on a
pseudo-terminal; the gateway reads it as a serial port and publishes to a real
Mosquitto. Commands go in through MQTT and round-trip to the emulated MCU; the gateway
is SIGKILLed and restarted, and the node's retransmissions make the count whole.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from gateway.model import node_hex
from tests.peers import Collector, Mosquitto, Received, config_data, toml_text
from tests.qemu_node import NODE_ID, QemuNode, build_firmware, expected_labels
from tests.test_no_loss import _spawn
from tests.test_verify import verify_section

NODE = node_hex(NODE_ID)
RATE_HZ = 300  # 3 windows of 100 samples a second: the ring (64) holds 21 s of them


@pytest.fixture(scope="module")
def firmware() -> Path:
    return build_firmware()


def events(sub: Collector, boot: int = 1) -> dict[int, dict[str, Any]]:
    """First arrival of each seq of the node's boot."""
    out: dict[int, dict[str, Any]] = {}
    for m in sub.where(f"{NODE}/event"):
        e = m.json()
        if e["boot"] == boot:
            out.setdefault(e["seq"], e)
    return out


def last(sub: Collector, suffix: str) -> dict[str, Any]:
    got: list[Received] = sub.where(f"{NODE}/{suffix}")
    return got[-1].json() if got else {}


async def ask(client: aiomqtt.Client, sub: Collector, method: str, **params: Any) -> dict:
    before = len(sub.where(f"{NODE}/cmd/ack"))
    body = {"id": f"{method}-{before}", "method": method, "params": params}
    await client.publish(f"tinyml/gw/{NODE}/cmd", json.dumps(body), qos=1)
    await sub.wait_for(lambda: len(sub.where(f"{NODE}/cmd/ack")) > before, timeout=90)
    ack = sub.where(f"{NODE}/cmd/ack")[-1].json()
    assert ack["id"] == body["id"], ack
    return ack


async def answered(client: aiomqtt.Client, sub: Collector, method: str, **params: Any) -> dict:
    """The node's answer to a command, which must be OK (the failing answer says why).

    A command that timed out is sent once more, as an operator would: commands are sent
    once (docs/protocol.md), and the emulated node has, rarely, not answered one within
    the gateway's timeout. The reboot is not idempotent, so it is sent again only once a
    later heartbeat shows the node still in the boot it was asked to leave. What the retry
    hides is kept in the message of a second failure."""
    boot = last(sub, "heartbeat").get("boot")
    ack = await ask(client, sub, method, **params)
    if not ack["ok"] and ack["status"] == "timeout":
        first = (ack, diagnosis(sub))
        if method == "reboot":
            beats = len(sub.where(f"{NODE}/heartbeat"))
            await sub.wait_for(lambda: len(sub.where(f"{NODE}/heartbeat")) > beats, timeout=60)
            assert last(sub, "heartbeat")["boot"] == boot, ("rebooted unanswered", first)
        ack = await ask(client, sub, method, **params)
        assert ack["ok"], (ack, diagnosis(sub), first)
    assert ack["ok"], (ack, diagnosis(sub))
    return ack


def diagnosis(sub: Collector) -> dict[str, Any]:
    """What a failed command's message shows: the node's boots and link as both sides saw them."""
    health = sub.where("gw/status")
    counters = health[-1].json().get("counters", {}) if health else {}
    return {
        "boots": sorted({m.json()["boot"] for m in sub.where(f"{NODE}/event")}),
        "status": [m.payload.decode()[:80] for m in sub.where(f"{NODE}/status")],
        "heartbeat": last(sub, "heartbeat"),
        "gateway": {
            k: v
            for k, v in counters.items()
            if "command" in k or "ack" in k or "crc" in k or "frame" in k or "bad" in k
        },
    }


async def test_emulated_node_through_the_gateway_commands_and_a_sigkill(
    tmp_path: Path, mosquitto: Mosquitto, firmware: Path
) -> None:
    node = QemuNode(firmware, tmp_path / "qemu.log")
    port = node.start()
    data = config_data(
        tmp_path,
        mosquitto,
        [port],
        log={"level": "warning"},
        verify=verify_section(),
        commands={"timeout_s": 30},  # a hang guard on a loaded machine
    )
    data["mqtt"]["commands"] = [*data["mqtt"]["commands"], "reboot"]
    config = tmp_path / "gateway.toml"
    config.write_text(toml_text(data))
    log = tmp_path / "gateway.log"
    sub = Collector(mosquitto, "tinyml/gw/#", client_id="firmware-subscriber")
    await sub.start()
    proc = _spawn(config, log)
    try:
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
            # the node's first heartbeat (every 5 s) makes it known to the gateway
            await sub.wait_for(lambda: bool(sub.where(f"{NODE}/heartbeat")), timeout=60)
            await answered(client, sub, "ping")
            ack = await answered(client, sub, "set_sample_rate", hz=RATE_HZ)
            assert ack["status"] == "ok", ack
            await answered(client, sub, "set_heartbeat_period", seconds=2)
            infos = len(sub.where(f"{NODE}/info"))
            await answered(client, sub, "get_info")
            await sub.wait_for(lambda: len(sub.where(f"{NODE}/info")) > infos, timeout=60)
            info = last(sub, "info")
            assert info["sample_rate_hz"] == RATE_HZ and info["heartbeat_period_s"] == 2
            assert info["model_name"] == "basicmotions-cnn" and info["boot"] == 1

            await sub.wait_for(lambda: len(events(sub)) >= 15, timeout=60)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed_at = max(events(sub))
            t0 = time.monotonic()
            while time.monotonic() - t0 < 3:  # the node goes on making events meanwhile
                await asyncio.sleep(0.25)
            proc = _spawn(config, log)

            def whole() -> bool:
                got = events(sub)
                return bool(got) and max(got) >= killed_at + 20 and len(got) == max(got)

            await sub.wait_for(whole, timeout=120)
            got = events(sub)
            # every seq from 1 up, each the data set's next window above the threshold,
            # and the gateway's re-run of the shipped model agrees with the node on each
            labels = expected_labels()
            for seq, e in got.items():
                assert e["label_index"] == labels[(seq - 1) % len(labels)], (seq, e)
                assert e["verified"] is True and e["agreement"] is True, (seq, e)
            assert last(sub, "heartbeat")["events_dropped"] == 0

            # reboot: answered, then the next boot (its id kept in retained RAM) with
            # the settings the commands stored
            await answered(client, sub, "reboot")
            await sub.wait_for(lambda: len(events(sub, boot=2)) >= 3, timeout=60)
            assert sorted(events(sub, boot=2))[:3] == [1, 2, 3]
            await sub.wait_for(lambda: last(sub, "info").get("boot") == 2, timeout=60)
            assert last(sub, "info")["sample_rate_hz"] == RATE_HZ
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        node.stop()
        await sub.stop()
    assert code == 0, log.read_text()[-3000:]
    assert "Traceback" not in log.read_text()
