"""BLE nodes through bleak's real BlueZ backend, over a real D-Bus, to an emulated BlueZ.

The rig (gateway/sim/bluez_rig.py): a private dbus-daemon and bluezoo with the
gateway's adapter hci0 and one adapter per emulated node. Each emulated node is
a simulated node (its retransmit ring included) behind the node side of a BLE
link (gateway/sim/ble_node.py). The gateway runs in this process with a real
Mosquitto; a subscriber counts what arrives.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from gateway.model import node_hex
from gateway.protocol import Advert, MsgType, encode_advert, encode_frame, fragment
from gateway.sim.ble_node import BleNodeLink
from gateway.sim.bluez_rig import BluezRig
from gateway.sim.link import NodeRunner
from gateway.sim.node import SimulatedNode
from tests.peers import Collector, Mosquitto, config_data, gateway_config, running, toml_text

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
async def sub(mosquitto: Mosquitto) -> AsyncIterator[Collector]:
    """A subscriber on everything the gateway publishes, as a Node-RED flow would be."""
    collector = Collector(mosquitto, "tinyml/gw/#")
    await collector.start()
    yield collector
    await collector.stop()


@pytest.fixture
async def emulated() -> AsyncIterator[list[Emulated]]:
    made: list[Emulated] = []
    yield made
    for e in made:
        await e.stop()


def _seqs(sub: Collector, node: int) -> list[int]:
    return sorted({m.json()["seq"] for m in sub.where(f"{node_hex(node)}/event")})


async def test_a_connected_node_s_events_reach_the_subscriber_and_are_acknowledged(
    tmp_path: Path, mosquitto: Mosquitto, sub: Collector, rig: BluezRig, emulated: list[Emulated]
) -> None:
    node = Emulated(0, SimulatedNode(A, heartbeat_period_s=1))
    emulated.append(node)
    cfg = gateway_config(tmp_path, mosquitto, [], ble=ble_section())
    async with running(cfg) as gw:
        await node.start(rate_hz=10, count=30)
        assert node.task is not None
        await asyncio.wait_for(node.task, 60)  # every event acknowledged over BLE
        await sub.wait_for(lambda: len(_seqs(sub, A)) >= 30)
        health = gw.health.payload()
    assert _seqs(sub, A) == list(range(1, 31))
    events = [m.json() for m in sub.where(f"{node_hex(A)}/event")]
    assert {e["transport"] for e in events} == {"ble"}
    info = [m.json() for m in sub.where(f"{node_hex(A)}/info")]
    assert info and info[0]["model_name"]
    link = health["sources"]["ble:hci0"]["links"][BluezRig.node_address(0)]
    assert link["node"] == node_hex(A) and link["connects"] == 1
    assert not node.node.ring


def _advertiser(node_id: int) -> SimulatedNode:
    """A node that only advertises: nothing acknowledges it, so it never resends."""
    return SimulatedNode(node_id, heartbeat_period_s=1000, retx_timeout_ms=10**9)


def _statuses(sub: Collector, node: int) -> list[bool]:
    return [m.json()["online"] for m in sub.where(f"{node_hex(node)}/status")]


async def test_a_node_that_drops_and_returns_goes_offline_then_online_and_loses_nothing(
    tmp_path: Path, mosquitto: Mosquitto, sub: Collector, rig: BluezRig, emulated: list[Emulated]
) -> None:
    node = Emulated(0, SimulatedNode(A, heartbeat_period_s=1))
    emulated.append(node)
    cfg = gateway_config(tmp_path, mosquitto, [], ble=ble_section())
    async with running(cfg) as gw:
        await node.start(rate_hz=10, count=60)
        await sub.wait_for(lambda: len(_seqs(sub, A)) >= 10)
        await node.link.stop()  # the node goes away; it keeps detecting events meanwhile
        await sub.wait_for(lambda: _statuses(sub, A)[-1:] == [False])
        await asyncio.sleep(1.0)
        await node.link.start()
        assert node.task is not None
        await asyncio.wait_for(node.task, 90)  # everything acknowledged after the return
        await sub.wait_for(lambda: len(_seqs(sub, A)) >= 60)
        link = gw.health.payload()["sources"]["ble:hci0"]["links"][BluezRig.node_address(0)]
    keys = [m.json()["key"] for m in sub.where(f"{node_hex(A)}/event")]
    assert sorted(int(k.split(":")[2]) for k in keys) == list(range(1, 61))  # none twice
    assert _statuses(sub, A) == [True, False, True]
    offline = [m.json() for m in sub.where(f"{node_hex(A)}/status") if not m.json()["online"]]
    assert offline[0]["reason"] == "BLE link lost"
    assert link["connects"] == 2 and link["drops"] == 1
    # the INFO read at the second connection is the node's INFO of that moment
    infos = [m.json()["uptime_ms"] for m in sub.where(f"{node_hex(A)}/info")]
    assert len(infos) >= 2 and infos == sorted(set(infos)), infos


async def test_a_fragmented_window_is_reassembled_and_a_lost_fragment_is_counted(
    tmp_path: Path, mosquitto: Mosquitto, sub: Collector, rig: BluezRig, emulated: list[Emulated]
) -> None:
    node = Emulated(0, SimulatedNode(A, heartbeat_period_s=5, window=True))
    emulated.append(node)
    cfg = gateway_config(tmp_path, mosquitto, [], ble=ble_section())
    async with running(cfg) as gw:
        node.link.drop_fragment = 3  # of the first message: its INFO or first EVENT
        await node.start(rate_hz=5, count=10)
        await sub.wait_for(lambda: len(_seqs(sub, A)) >= 1)
        node.link.drop_fragment = 2  # of the next one
        assert node.task is not None
        await asyncio.wait_for(node.task, 60)
        await sub.wait_for(lambda: len(_seqs(sub, A)) >= 10)
        counters = dict(gw.health.counters)
    events = [m.json() for m in sub.where(f"{node_hex(A)}/event")]
    assert sorted(e["seq"] for e in events) == list(range(1, 11))
    assert all(e["window"]["dims"] for e in events)
    assert counters["ble_bad_fragment"] >= 1
    assert node.link.notified > 10 * 5  # every window took several notifications


async def test_commands_from_both_bridges_reach_a_ble_node(
    tmp_path: Path, bridges, rig: BluezRig, emulated: list[Emulated]
) -> None:
    from tests.test_thingsboard import tb_section

    nodered, tb, checker, sub = bridges
    node = Emulated(0, SimulatedNode(A, heartbeat_period_s=1))
    emulated.append(node)
    cfg = gateway_config(
        tmp_path,
        nodered,
        [],
        ble=ble_section(),
        thingsboard=tb_section(tb, commands=["ping", "set_threshold"]),
    )
    async with running(cfg), aiomqtt.Client("127.0.0.1", nodered.port) as client:
        await node.start(rate_hz=5, count=None)
        await sub.wait_for(lambda: len(_seqs(sub, A)) >= 3)
        await client.publish(
            f"tinyml/gw/{node_hex(A)}/cmd", json.dumps({"id": 7, "method": "ping"}), qos=1
        )
        await sub.wait_for(lambda: bool(sub.where(f"{node_hex(A)}/cmd/ack")))
        answer = await checker.rpc(node_hex(A), "set_threshold", {"threshold": 0.25})
        await checker.wait_for(lambda: len(checker.telemetry_of(node_hex(A))) >= 3)
    assert sub.where(f"{node_hex(A)}/cmd/ack")[0].json() == {"id": 7, "ok": True, "status": "ok"}
    assert answer["ok"] is True
    assert node.node.threshold == round(0.25 * 65535)
    assert checker.violations == []


async def test_an_advertising_node_s_events_are_decoded_once_and_its_gaps_counted(
    tmp_path: Path, mosquitto: Mosquitto, sub: Collector, rig: BluezRig, emulated: list[Emulated]
) -> None:
    """The emulator reports the advertisement once a second; the node changes it every
    2.5 s, and in between the scanner hears the same advert again and again."""
    node = Emulated(0, _advertiser(A), advertise_only=True)
    emulated.append(node)
    cfg = gateway_config(tmp_path, mosquitto, [], ble=ble_section())
    async with running(cfg) as gw:
        await node.start(rate_hz=0.4, count=4)
        await sub.wait_for(lambda: len(_seqs(sub, A)) >= 4)
        counters = dict(gw.health.counters)
        # an advert missed by the scanner (seq 5 never heard) is lost at once, and the
        # set of seqs above the gap does not grow
        node.link.write(encode_frame(SimulatedNode(A, seq=5).event(0)))  # seq 6
        await sub.wait_for(lambda: 6 in _seqs(sub, A))
        lost = gw.health.counters["events_lost_unheard"]
        state = gw.registry.get(A).state.seq  # type: ignore[union-attr]
    events = [m.json() for m in sub.where(f"{node_hex(A)}/event")]
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 6]  # each once
    assert {e["transport"] for e in events} == {"ble-adv"}
    assert all(e["uptime_ms"] is None and e["label"] is None for e in events)  # no INFO
    assert counters["ble_advert_repeats"] >= 4
    assert lost == 1 and state.contiguous == 6 and not state.above


async def test_bad_notifications_and_adverts_are_counted_and_good_nodes_go_on(
    tmp_path: Path,
    mosquitto: Mosquitto,
    sub: Collector,
    rig: BluezRig,
    emulated: list[Emulated],
    caplog,
) -> None:
    good = Emulated(0, SimulatedNode(A, heartbeat_period_s=1))
    bad = Emulated(1, SimulatedNode(B, heartbeat_period_s=1))
    emulated.extend([good, bad])
    cfg = gateway_config(tmp_path, mosquitto, [], ble=ble_section())
    async with running(cfg) as gw:
        await good.start(rate_hz=10, count=40)
        await bad.start(rate_hz=10, count=40)
        await sub.wait_for(lambda: len(_seqs(sub, B)) >= 5)
        bad.link.inject = [
            b"\x01",  # shorter than a fragment header
            b"\x09\x03out of order",  # fragment 3 of a message never started
            b"\x0a\x80" + b"\xff" * 30,  # a whole message that is not one
            b"\x0b\x80" + bytes(range(40)),
        ]
        await sub.wait_for(lambda: not bad.link.inject)
        assert good.task is not None and bad.task is not None
        await asyncio.wait_for(asyncio.gather(good.task, bad.task), 90)
        await sub.wait_for(lambda: len(_seqs(sub, A)) >= 40 and len(_seqs(sub, B)) >= 40)
        counters = dict(gw.health.counters)
        bad_link = gw.health.payload()["sources"]["ble:hci0"]["links"][BluezRig.node_address(1)]
    assert _seqs(sub, A) == list(range(1, 41)) and _seqs(sub, B) == list(range(1, 41))
    assert sum(bad_link["bad"].values()) == 4
    assert counters["ble_bad_fragment"] >= 2
    assert not [r for r in caplog.records if r.exc_info]  # no traceback anywhere


async def test_adverts_of_wrong_length_or_another_company_are_refused_quietly(
    tmp_path: Path, mosquitto: Mosquitto, sub: Collector, rig: BluezRig, emulated: list[Emulated]
) -> None:
    node = Emulated(0, _advertiser(A), advertise_only=True)
    emulated.append(node)
    cfg = gateway_config(tmp_path, mosquitto, [], ble=ble_section())
    async with running(cfg) as gw:
        await node.link.start()
        good = encode_advert(Advert(MsgType.EVENT, A, 1, 1, 2, 40000))
        for data, company in ((good[:-1], 0xFFFF), (good + b"\0", 0xFFFF), (good, 0x004C)):
            node.link.advertise_raw(data, company)
            await asyncio.sleep(1.5)  # heard by at least one report of the emulator
        node.link.advertise_raw(good)
        await sub.wait_for(lambda: _seqs(sub, A) == [1])
        counters = dict(gw.health.counters)
    assert counters["ble_adverts_bad"] >= 2
    assert counters["ble_adverts"] == 1


async def test_nodes_beyond_the_connection_slots_wait_their_turn(
    tmp_path: Path, mosquitto: Mosquitto, sub: Collector, rig: BluezRig, emulated: list[Emulated]
) -> None:
    """One slot, two nodes: the second waits (its events stay in its ring) until the
    first goes away, then all of its events arrive."""
    first = Emulated(0, SimulatedNode(A, heartbeat_period_s=1))
    second = Emulated(1, SimulatedNode(B, heartbeat_period_s=1, ring_size=200))
    emulated.extend([first, second])
    cfg = gateway_config(tmp_path, mosquitto, [], ble=ble_section(max_connections=1))
    async with running(cfg) as gw:
        await first.start(rate_hz=10, count=None)
        await sub.wait_for(lambda: len(_seqs(sub, A)) >= 3)
        await second.start(rate_hz=10, count=30)

        def ble() -> dict[str, Any]:
            return gw.health.payload()["sources"]["ble:hci0"]  # type: ignore[no-any-return]

        await sub.wait_for(lambda: ble()["waiting_for_slot"] == [BluezRig.node_address(1)])
        assert _seqs(sub, B) == []
        await first.stop()
        assert second.task is not None
        await asyncio.wait_for(second.task, 90)
        await sub.wait_for(lambda: len(_seqs(sub, B)) >= 30)
    assert _seqs(sub, B) == list(range(1, 31))


async def test_a_node_that_never_answers_its_info_read_is_retried_not_fatal(
    tmp_path: Path, mosquitto: Mosquitto, sub: Collector, rig: BluezRig, emulated: list[Emulated]
) -> None:
    mute = Emulated(0, SimulatedNode(A, heartbeat_period_s=1))
    good = Emulated(1, SimulatedNode(B, heartbeat_period_s=1))
    emulated.extend([mute, good])
    mute.link.info_delay_s = 3600
    cfg = gateway_config(tmp_path, mosquitto, [], ble=ble_section(call_timeout_s=1.0))
    async with running(cfg) as gw:
        await mute.start(rate_hz=5, count=None)
        await good.start(rate_hz=10, count=20)
        assert good.task is not None
        await asyncio.wait_for(good.task, 60)
        await sub.wait_for(lambda: gw.health.counters["ble_connect_failures"] >= 2)
        link = gw.health.payload()["sources"]["ble:hci0"]["links"][BluezRig.node_address(0)]
    assert _seqs(sub, B) == list(range(1, 21))
    assert _seqs(sub, A) == []
    assert "INFO read did not answer" in link["last_error"]


async def test_a_keyed_ble_node_s_forged_frames_are_refused(
    tmp_path: Path, mosquitto: Mosquitto, sub: Collector, rig: BluezRig, emulated: list[Emulated]
) -> None:
    key = bytes(range(32))
    node = Emulated(0, SimulatedNode(A, heartbeat_period_s=1, key=key))
    emulated.append(node)
    nodes = {node_hex(A): {"key": key.hex()}}
    cfg = gateway_config(tmp_path, mosquitto, [], ble=ble_section(), nodes=nodes)
    async with running(cfg) as gw:
        await node.start(rate_hz=10, count=20)
        await sub.wait_for(lambda: len(_seqs(sub, A)) >= 3)
        forger = SimulatedNode(A, seq=100, key=key[::-1])
        node.link.inject = fragment(forger.event(5), 200, 23)
        assert node.task is not None
        await asyncio.wait_for(node.task, 60)
        await sub.wait_for(lambda: len(_seqs(sub, A)) >= 20)
        counters = dict(gw.health.counters)
    assert _seqs(sub, A) == list(range(1, 21))
    assert counters["rejected_unauthenticated"] == 1


async def test_a_silent_scanner_is_restarted_and_hears_again(
    tmp_path: Path, mosquitto: Mosquitto, sub: Collector, rig: BluezRig, emulated: list[Emulated]
) -> None:
    node = Emulated(0, _advertiser(A), advertise_only=True)
    emulated.append(node)
    cfg = gateway_config(tmp_path, mosquitto, [], ble=ble_section(scanner_silence_s=1.5))
    async with running(cfg) as gw:
        await node.start(rate_hz=0.5, count=1)
        await sub.wait_for(lambda: _seqs(sub, A) == [1])
        node.link.varying = False  # nothing on the air changes: the scanner hears nothing

        def scanner() -> dict[str, Any]:
            return gw.health.payload()["sources"]["ble:hci0"]  # type: ignore[no-any-return]

        await sub.wait_for(lambda: scanner()["restarts"] >= 1)
        node.link.varying = True
        node.link.write(encode_frame(SimulatedNode(A, seq=1).event(0)))  # seq 2
        await sub.wait_for(lambda: _seqs(sub, A) == [1, 2])
        assert scanner()["scanning"]


async def test_discovery_that_cannot_start_is_retried_and_the_adapter_reset(
    tmp_path: Path, mosquitto: Mosquitto, rig: BluezRig, caplog
) -> None:
    """Passive scanning on the emulated BlueZ, which has no advertisement monitor: every
    start fails for real (bleak over D-Bus), on an adapter that is there."""
    section = ble_section(scanning="passive", adapter_reset_after=2, backoff_max_s=0.2)
    cfg = gateway_config(tmp_path, mosquitto, [], ble=section)
    async with running(cfg) as gw:

        def scanner() -> dict[str, Any]:
            return gw.health.payload()["sources"]["ble:hci0"]  # type: ignore[no-any-return]

        while scanner()["adapter_resets"] < 2:
            await asyncio.sleep(0.1)
        assert scanner()["failures"] >= 4 and not scanner()["scanning"]
        assert gw.health.payload()["online"]
    assert not [r for r in caplog.records if r.exc_info]


async def test_an_adapter_reset_powers_it_off_and_on(rig: BluezRig) -> None:
    from dbus_fast import BusType, Message
    from dbus_fast.aio import MessageBus

    from gateway.config import BleSection
    from gateway.sources.ble.scan import Scanner

    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    powered: list[bool] = []

    def changed(msg: Message) -> None:
        if msg.member == "PropertiesChanged" and msg.path == "/org/bluez/hci0":
            value = msg.body[1].get("Powered")
            if value is not None:
                powered.append(value.value)

    bus.add_message_handler(changed)
    await bus.call(
        Message(
            destination="org.freedesktop.DBus",
            path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus",
            member="AddMatch",
            signature="s",
            body=["type='signal',path='/org/bluez/hci0'"],
        )
    )
    scanner = Scanner(BleSection(enabled=True), lambda d, a: None)
    await scanner._reset_adapter()
    deadline = asyncio.get_running_loop().time() + 10
    while powered != [False, True] and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    bus.disconnect()
    assert powered == [False, True]
    assert scanner.adapter_resets == 1 and scanner.last_error is None


async def test_sigkill_while_a_ble_node_sends_loses_nothing(
    tmp_path: Path, mosquitto: Mosquitto, rig: BluezRig, emulated: list[Emulated]
) -> None:
    from tests.test_no_loss import _spawn, distinct

    node = Emulated(0, SimulatedNode(A, heartbeat_period_s=1, ring_size=2000, retx_timeout_ms=1000))
    emulated.append(node)
    data = config_data(tmp_path, mosquitto, [], ble=ble_section(), log={"level": "warning"})
    config = tmp_path / "gateway.toml"
    config.write_text(toml_text(data))
    log = tmp_path / "gateway.log"
    sub = Collector(mosquitto, "tinyml/gw/#", client_id="ble-kill-subscriber")
    await sub.start()
    proc = _spawn(config, log)  # the rig's bus is in this process's environment
    try:
        await node.start(rate_hz=40, count=400)
        for _ in range(4):
            before = len(distinct(sub.messages))
            await sub.wait_for(lambda: len(distinct(sub.messages)) > before + 20)  # noqa: B023
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc = _spawn(config, log)
        assert node.task is not None
        await asyncio.wait_for(node.task, 180)
        await sub.wait_for(lambda: len(distinct(sub.messages)) >= 400, timeout=120)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()[-3000:]
        await sub.stop()
    got = distinct(sub.messages)
    assert sorted(seq for (_, _, seq) in got) == list(range(1, 401))
    assert node.node.dropped == 0 and not node.node.ring
    assert "Traceback" not in log.read_text()


async def test_rssi_of_real_advertisement_data_reaches_both_payloads(
    tmp_path: Path, bridges, rig: BluezRig
) -> None:
    """The emulator reports RSSI 0; bleak's own AdvertisementData objects carry real values
    into the source's callback, as BlueZ's would."""
    from bleak.backends.device import BLEDevice
    from bleak.backends.scanner import AdvertisementData

    from gateway.sources.ble import BleSource
    from tests.test_thingsboard import tb_section

    nodered, tb, checker, sub = bridges
    cfg = gateway_config(
        tmp_path,
        nodered,
        [],
        ble=ble_section(),
        thingsboard=tb_section(tb, telemetry_fields=["rssi", "battery_mv"]),
    )
    async with running(cfg) as gw:
        source = next(s for s in gw.sources if isinstance(s, BleSource))
        for rssi, battery in ((-71, 2900), (-64, 2800)):
            hb = encode_advert(
                Advert(MsgType.HEARTBEAT, A, 1, 0, battery_mv=battery, temperature_c=21)
            )
            adv = AdvertisementData("n", {0xFFFF: hb}, {}, [], None, rssi, ())
            source._seen(BLEDevice("00:AA:77:00:00:01", "n", {}), adv)
            await sub.wait_for(
                lambda b=battery: any(
                    m.json().get("battery_mv") == b for m in sub.where("/heartbeat")
                )
            )
        await checker.wait_for(lambda: len(checker.telemetry_of(node_hex(A))) >= 2)
    beats = [m.json() for m in sub.where(f"{node_hex(A)}/heartbeat")]
    assert [(b["rssi"], b["battery_mv"], b["temperature_c"]) for b in beats] == [
        (-71, 2900, 21.0),
        (-64, 2800, 21.0),
    ]
    assert [v["rssi"] for _, v in checker.telemetry_of(node_hex(A))] == [-71, -64]
    assert checker.violations == []


def test_passive_scanning_gives_bleak_the_patterns_bluez_needs() -> None:
    """BlueZ scans passively only through an advertisement monitor; bleak refuses passive
    mode without patterns. (The emulator has no monitor: this stops at bleak.)"""
    from bleak import BleakScanner

    from gateway.config import BleSection
    from gateway.sources.ble.scan import Scanner

    args = Scanner(BleSection(enabled=True, scanning="passive"), lambda d, a: True)._bluez_args()
    BleakScanner(lambda d, a: None, scanning_mode="passive", bluez=args)  # raises without them
    assert {p.ad_data_type for p in args["or_patterns"]} == {0xFF, 0x06, 0x07}


async def test_a_missing_adapter_is_waited_for_quietly_and_serial_goes_on(
    tmp_path: Path,
    mosquitto: Mosquitto,
    sub: Collector,
    rig: BluezRig,
    pty,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The configured adapter is not there (a dongle unplugged): one line, no failed
    discovery starts, no adapter resets, and the serial nodes' events flow meanwhile."""
    link = pty()
    node = SimulatedNode(0xB1E5)
    cfg = gateway_config(tmp_path, mosquitto, [link.path], ble=ble_section(adapter="hci7"))
    caplog.set_level(logging.INFO)
    async with running(cfg) as gw:
        runner = NodeRunner(link, [node], rate_hz=20, count=40)
        await asyncio.wait_for(runner.run(until_acked=True), 60)
        await sub.wait_for(lambda: len(_seqs(sub, node.node_id)) >= 40)
        await asyncio.sleep(5)  # long enough for a start that fails to be tried again
        scan = gw.health.payload()["sources"]["ble:hci7"]
    lines = [r.getMessage() for r in caplog.records if "hci7" in r.getMessage()]
    assert len(lines) == 1 and "not found" in lines[0], lines
    assert scan["failures"] == 0 and scan["adapter_resets"] == 0, scan
    assert scan["adapter_present"] is False
    assert _seqs(sub, node.node_id) == list(range(1, 41))
