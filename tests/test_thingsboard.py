"""The ThingsBoard bridge end to end: simulated serial nodes -> gateway -> a real Mosquitto
-> the checker, which plays the server by its documented rules (tests/tb_checker.py).

The broker's ACL gives the gateway's token exactly the topics a ThingsBoard server
lets a gateway use, so a subscription the server would refuse is refused here too.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
from pathlib import Path
from typing import Any

import pytest

from gateway.model import node_hex
from gateway.protocol import Command, Message
from gateway.protocol.constants import SCORE_SCALE
from gateway.sim.link import NodeRunner
from gateway.sim.node import SimulatedNode
from tests.peers import Collector, Mosquitto, gateway_config, running
from tests.tb_checker import DEFAULT_LIMITS, ThingsBoardChecker

TOKEN = "A1_TEST_TOKEN"
A, B, MUTE, ABSENT = 0x4000, 0x4001, 0x4002, 0x4003

ACL = f"""
user checker
topic readwrite v1/#

user {TOKEN}
topic write v1/gateway/telemetry
topic write v1/gateway/connect
topic write v1/gateway/disconnect
topic write v1/gateway/attributes/request
topic readwrite v1/gateway/attributes
topic readwrite v1/gateway/rpc
topic read v1/gateway/attributes/response
topic write v1/devices/me/telemetry
topic readwrite v1/devices/me/attributes
topic readwrite v1/devices/me/rpc/request/+
topic readwrite v1/devices/me/rpc/response/+
topic read v1/devices/me/attributes/response/+
"""


class MuteNode(SimulatedNode):
    """Takes ACKs but never answers commands."""

    def on_downlink(self, msg: Message, uptime_ms: int) -> list[bytes]:
        if isinstance(msg.body, Command):
            return []
        return SimulatedNode.on_downlink(self, msg, uptime_ms)


def tb_broker(workdir: Path, extra: str = "", anonymous_acl: str = "") -> Mosquitto:
    workdir.mkdir(parents=True, exist_ok=True)
    acl = workdir / "acl"
    acl.write_text(anonymous_acl + ACL)
    # persistent: the checker's session and subscription outlive a broker restart, so
    # what the gateway sends on reconnecting reaches it even when the gateway is back first
    broker = Mosquitto(
        workdir, extra=f"allow_anonymous true\nacl_file {acl}\n{extra}", persistent=True
    )
    broker.start()
    return broker


@pytest.fixture
async def tb(tmp_path: Path):  # type: ignore[no-untyped-def]
    broker = tb_broker(tmp_path / "tb")
    checker = ThingsBoardChecker(broker.host, broker.port)
    await checker.start()
    yield broker, checker
    await checker.stop()
    broker.stop()


def tb_section(broker: Mosquitto, **over: Any) -> dict[str, Any]:
    return {
        "enabled": True,
        "host": "127.0.0.1",
        "port": broker.port,
        "access_token": TOKEN,
        "reconnect_max_s": 1.0,
        "session_limits_wait_s": 2.0,
        "commands": [
            "ping",
            "get_info",
            "set_threshold",
            "set_sample_rate",
            "set_heartbeat_period",
        ],
        **over,
    }


def _config(tmp: Path, ports: list[str], tb: dict[str, Any], **sections: Any) -> Any:
    sections.setdefault("mqtt", {"enabled": False})
    return gateway_config(tmp, None, ports, thingsboard=tb, **sections)


def _seqs(checker: ThingsBoardChecker, device: str) -> list[int]:
    return [v["seq"] for _, v in checker.telemetry_of(device) if "label" in v]


async def test_devices_attributes_and_telemetry(tmp_path: Path, tb, pty) -> None:  # type: ignore[no-untyped-def]
    broker, checker = tb
    link = pty()
    runner = NodeRunner(link, [SimulatedNode(A), SimulatedNode(B)], rate_hz=50, count=200)
    cfg = _config(
        tmp_path, [link.path], tb_section(broker), nodes={node_hex(A): {"name": "press-1"}}
    )
    async with running(cfg):
        sim = asyncio.create_task(runner.run(until_acked=True))
        await checker.wait_for(
            lambda: (
                len(_seqs(checker, "press-1")) >= 200 and len(_seqs(checker, node_hex(B))) >= 200
            )
        )
        await checker.wait_for(lambda: bool(checker.me_telemetry))
        online = {d: dev.attributes.get("online") for d, dev in checker.devices.items()}
    await sim
    assert online == {"press-1": True, node_hex(B): True}
    assert checker.violations == []
    for device in ("press-1", node_hex(B)):
        dev = checker.devices[device]
        assert dev.type == "tinyml-node"
        attrs = dev.attributes
        assert attrs["firmware_version"] == "sim-1.0.0"
        assert attrs["transport"] == "serial"
        assert attrs["gateway"] == "gw"
        assert attrs["protocol_version"] == 1
        assert attrs["labels"] and attrs["model_name"] and attrs["model_sha256"]
        assert _seqs(checker, device) == list(range(1, 201))
        stamps = [ts for ts, _ in dev.telemetry]
        assert stamps == sorted(stamps)
        assert len(set(stamps)) == len(stamps)
        events = [v for _, v in dev.telemetry if "label" in v]
        assert events[-1]["label"] in attrs["labels"]  # named once the INFO is in
        assert isinstance(events[0]["score"], float)
        assert events[0]["model_id"].startswith("0x")
        assert any("battery_mv" in v for _, v in dev.telemetry)  # heartbeats
    assert checker.me_attributes["gateway"] == "gw"
    assert "uptime_s" in checker.me_telemetry[-1]
    assert checker.sessions == 1


async def test_a_burst_in_one_millisecond_keeps_every_event(tmp_path: Path, tb, pty) -> None:  # type: ignore[no-untyped-def]
    broker, checker = tb
    link = pty()
    # every event of the first tick carries the same uptime, so the same stored ts
    node = SimulatedNode(A, ring_size=1000, retx_timeout_ms=1000)
    runner = NodeRunner(link, [node], rate_hz=1e7, count=500, tick_s=0.05)
    cfg = _config(tmp_path, [link.path], tb_section(broker))
    async with running(cfg):
        sim = asyncio.create_task(runner.run(until_acked=True))
        await checker.wait_for(lambda: len(_seqs(checker, node_hex(A))) >= 500)
    await sim
    assert checker.violations == []
    dev = checker.devices[node_hex(A)]
    events = [(ts, v["seq"]) for ts, v in dev.telemetry if "label" in v]
    assert [s for _, s in events] == list(range(1, 501))
    stamps = [ts for ts, _ in events]
    assert len(set(stamps)) == 500
    assert stamps == sorted(stamps)
    assert stamps[-1] - stamps[0] >= 499  # bumped one millisecond apart


async def test_rpc_to_nodes_every_outcome(tmp_path: Path, tb, pty) -> None:  # type: ignore[no-untyped-def]
    broker, checker = tb
    link = pty()
    runner = NodeRunner(link, [SimulatedNode(A), MuteNode(MUTE)], rate_hz=5)
    cfg = _config(
        tmp_path,
        [link.path],
        tb_section(broker),
        nodes={node_hex(ABSENT): {"name": "absent"}},
        commands={"timeout_s": 1},
    )
    sim = asyncio.create_task(runner.run())
    try:
        async with running(cfg):
            await checker.wait_for(
                lambda: all(
                    d in checker.devices and checker.devices[d].connected
                    for d in (node_hex(A), node_hex(MUTE))
                )
            )
            ok = await checker.rpc(node_hex(A), "ping")
            assert ok["ok"] is True and ok["status"] == "ok"
            assert (await checker.rpc(node_hex(A), "set_threshold", {"threshold": 0.25}))["ok"]
            assert (await checker.rpc(node_hex(MUTE), "ping"))["status"] == "timeout"
            assert (await checker.rpc("absent", "ping"))["status"] == "offline"
            assert (await checker.rpc("no-such-device", "ping"))["status"] == "unknown_node"
            assert (await checker.rpc(node_hex(A), "reboot"))["status"] == "refused"
            assert (await checker.rpc(node_hex(A), "self_destruct"))["status"] == "unknown_method"
            bad = await checker.rpc(node_hex(A), "set_threshold", {"threshold": 7})
            assert bad["status"] == "bad_params"
    finally:
        sim.cancel()
    assert runner.nodes[A].threshold == round(0.25 * SCORE_SCALE)  # type: ignore[attr-defined]
    assert runner.nodes[A].reboots == 0  # type: ignore[attr-defined]
    assert checker.violations == []


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_shared_attributes_reach_the_node(tmp_path: Path, tb, pty, protocol: str) -> None:  # type: ignore[no-untyped-def]
    broker, checker = tb
    link = pty()
    node = SimulatedNode(A)
    runner = NodeRunner(link, [node], rate_hz=5)
    device = node_hex(A)
    # set while the node was away: the gateway asks for it when the device connects
    checker.shared[device] = {"sample_rate_hz": 50}
    cfg = _config(tmp_path, [link.path], tb_section(broker, protocol=protocol))
    sim = asyncio.create_task(runner.run())
    try:
        async with running(cfg) as gw:
            await checker.wait_for(lambda: node.sample_rate_hz == 50)
            await checker.set_shared(device, threshold=0.5)
            await checker.wait_for(lambda: node.threshold == round(0.5 * SCORE_SCALE))
            # keys the gateway does not map are left alone; a bad value is refused, not crashing
            await checker.set_shared(device, colour="red", heartbeat_period_s="soon")
            await checker.wait_for(lambda: gw.health.counters["thingsboard_shared_failed"] >= 1)
            assert node.heartbeat_period_s == 10
            # the gateway's own publishes on the shared topics never come back as commands
            assert gw.health.counters["command_errors_bad_params"] == 1
    finally:
        sim.cancel()
    assert any(r.get("key") == "sample_rate_hz" for r in checker.attribute_requests)
    assert checker.violations == []


async def test_rpc_to_the_gateway(tmp_path: Path, tb, pty) -> None:  # type: ignore[no-untyped-def]
    broker, checker = tb
    link = pty()
    runner = NodeRunner(link, [SimulatedNode(A)], rate_hz=5)
    cfg = _config(tmp_path, [link.path], tb_section(broker))
    sim = asyncio.create_task(runner.run())
    try:
        async with running(cfg) as gw:
            await checker.wait_for(
                lambda: node_hex(A) in checker.devices and checker.devices[node_hex(A)].connected
            )
            status = await checker.gateway_rpc("getStatus")
            assert status["gateway"] == "gw" and status["sinks"]["thingsboard"]["connected"]
            nodes = await checker.gateway_rpc("listNodes")
            assert nodes == [
                {"node": node_hex(A), "device": node_hex(A), "online": True, "transport": "serial"}
            ]
            connects = checker.devices[node_hex(A)].connects
            assert await checker.gateway_rpc("reconnectNode", {"device": node_hex(A)}) == {
                "ok": True
            }
            assert checker.devices[node_hex(A)].connects == connects + 1
            missing = await checker.gateway_rpc("reconnectNode", {"device": "nope"})
            assert missing["ok"] is False
            epoch = gw.registry.get(A).state.seq.epoch  # type: ignore[union-attr]
            forgot = await checker.gateway_rpc("forgetNode", {"device": node_hex(A)})
            assert forgot == {"ok": True, "status": "ok"}
            assert gw.registry.get(A).state.seq.epoch == epoch + 1  # type: ignore[union-attr]
            assert (await checker.gateway_rpc("forgetNode", "nope"))["ok"] is False
            assert "unknown method" in (await checker.gateway_rpc("format_disk"))["error"]
    finally:
        sim.cancel()
    assert checker.violations == []


async def test_server_limits_are_honoured(tmp_path: Path, tb, pty) -> None:  # type: ignore[no-untyped-def]
    broker, checker = tb
    checker.limits = {
        **DEFAULT_LIMITS,
        "maxPayloadSize": 2048,
        "maxInflightMessages": 5,
        "gatewayRateLimits": {
            "messages": "20:1,300:60",
            "telemetryMessages": "10:1",
            "telemetryDataPoints": "400:1",
        },
        "rateLimits": {"telemetryDataPoints": "300:1"},
    }
    link = pty()
    # rings that hold every event: what is tested is delivery under the limits, so no
    # event may be lost at a node whose ACKs come late
    nodes = [SimulatedNode(n, ring_size=300) for n in (A, B)]
    runner = NodeRunner(link, nodes, rate_hz=200, count=300)
    cfg = _config(tmp_path, [link.path], tb_section(broker, publish_budget=""))
    async with running(cfg) as gw:
        sim = asyncio.create_task(runner.run(until_acked=True))
        await checker.wait_for(
            lambda: (
                len(_seqs(checker, node_hex(A))) >= 300 and len(_seqs(checker, node_hex(B))) >= 300
            ),
            timeout=180,
        )
        health = gw.sinks[0].health()
    await sim
    assert checker.violations == []
    assert health["max_payload_bytes"] <= 2048
    assert _seqs(checker, node_hex(A)) == list(range(1, 301))


async def test_backlog_during_an_outage_drains_in_order(tmp_path: Path, bridges, pty) -> None:  # type: ignore[no-untyped-def]
    nodered, broker, checker, sub = bridges
    nodes = [SimulatedNode(0x5000 + i, ring_size=10_000, retx_timeout_ms=1000) for i in range(4)]
    links = [pty(), pty()]
    runners = [
        NodeRunner(links[0], nodes[:2], rate_hz=500, count=5000),
        NodeRunner(links[1], nodes[2:], rate_hz=500, count=5000),
    ]
    cfg = gateway_config(
        tmp_path,
        nodered,
        [lk.path for lk in links],
        thingsboard=tb_section(broker),
    )
    async with running(cfg):
        await checker.wait_for(lambda: checker.sessions >= 1 and checker.me_attributes)
        broker.stop()  # ThingsBoard unreachable
        sims = [asyncio.create_task(r.run(until_acked=True)) for r in runners]
        await asyncio.gather(*sims)
        events = lambda: {  # noqa: E731
            (m.json()["node"], m.json()["seq"]) for m in sub.where("/event")
        }
        # the Node-RED sink kept flowing while ThingsBoard was away
        await sub.wait_for(lambda: len(events()) >= 20_000, timeout=120)
        broker.start()
        await checker.wait_for(
            lambda: all(len(_seqs(checker, node_hex(n.node_id))) >= 5000 for n in nodes),
            timeout=180,
        )
    assert checker.violations == []
    for n in nodes:
        assert _seqs(checker, node_hex(n.node_id)) == list(range(1, 5001))
    assert checker.sessions >= 2


async def test_both_bridges_on_one_broker_keep_their_sessions(tmp_path: Path, pty) -> None:  # type: ignore[no-untyped-def]
    # one Mosquitto serves Node-RED (anonymous) and ThingsBoard (the token): with one
    # client id for both, each connect would take the other's session over
    broker = tb_broker(tmp_path / "tb", anonymous_acl="topic readwrite tinyml/#\n")
    checker = ThingsBoardChecker(broker.host, broker.port)
    sub = Collector(broker, "tinyml/gw/#")
    await checker.start()
    await sub.start()
    link = pty()
    runner = NodeRunner(link, [SimulatedNode(A)], rate_hz=100, count=300)
    cfg = gateway_config(tmp_path, broker, [link.path], thingsboard=tb_section(broker))
    try:
        async with running(cfg) as gw:
            sim = asyncio.create_task(runner.run(until_acked=True))
            await sub.wait_for(lambda: len(sub.where("/event")) >= 300)
            await checker.wait_for(lambda: len(_seqs(checker, node_hex(A))) >= 300)
            await sim
            connects = {s.name: s.health()["connects"] for s in gw.sinks}
    finally:
        await sub.stop()
        await checker.stop()
        broker.stop()
    assert connects == {"mqtt": 1, "thingsboard": 1}
    assert checker.sessions == 1
    assert _seqs(checker, node_hex(A)) == list(range(1, 301))
    assert sorted(m.json()["seq"] for m in sub.where("/event")) == list(range(1, 301))


def _tls_files(tmp: Path) -> tuple[Path, Path, Path]:
    ca_key, ca, key, csr, crt = (
        tmp / n for n in ("ca.key", "ca.crt", "srv.key", "srv.csr", "srv.crt")
    )
    ext = tmp / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca),
        "-days", "2", "-subj", "/CN=tinyml test CA")  # fmt: skip
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
        "-subj", "/CN=127.0.0.1")  # fmt: skip
    ssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(crt), "-days", "2", "-extfile", str(ext))  # fmt: skip
    return ca, crt, key


async def test_tls_with_a_self_signed_ca(tmp_path: Path, pty) -> None:
    ca, crt, key = _tls_files(tmp_path)
    from tests.peers import free_port

    tls_port = free_port()
    broker = tb_broker(
        tmp_path / "tb",
        extra=f"listener {tls_port} 127.0.0.1\ncafile {ca}\ncertfile {crt}\nkeyfile {key}\n",
    )
    checker = ThingsBoardChecker(broker.host, broker.port)  # the plain listener
    await checker.start()
    link = pty()
    runner = NodeRunner(link, [SimulatedNode(A)], rate_hz=50, count=100)
    cfg = _config(
        tmp_path, [link.path], tb_section(broker, port=tls_port, tls={"ca_file": str(ca)})
    )
    try:
        async with running(cfg):
            sim = asyncio.create_task(runner.run(until_acked=True))  # once the port is read
            await checker.wait_for(lambda: len(_seqs(checker, node_hex(A))) >= 100)
        await sim
    finally:
        await checker.stop()
        broker.stop()
    assert checker.violations == []


async def test_a_wrong_token_is_refused_and_other_sinks_keep_working(
    tmp_path: Path, mosquitto: Mosquitto, pty, caplog: pytest.LogCaptureFixture
) -> None:
    workdir = tmp_path / "tb"
    workdir.mkdir()
    pwfile = workdir / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(pwfile), TOKEN, "x"], check=True)
    broker = Mosquitto(workdir, extra=f"allow_anonymous false\npassword_file {pwfile}\n")
    broker.start()
    sub = Collector(mosquitto, "tinyml/gw/#")
    await sub.start()
    link = pty()
    runner = NodeRunner(link, [SimulatedNode(A)], rate_hz=50, count=100)
    cfg = gateway_config(
        tmp_path, mosquitto, [link.path], thingsboard=tb_section(broker, access_token="WRONG")
    )
    caplog.set_level(logging.INFO)
    try:
        async with running(cfg) as gw:
            # the node starts once the gateway reads its port: what a UART carries before
            # that is lost, and a node whose ring overflows meanwhile drops its oldest events
            sim = asyncio.create_task(runner.run(until_acked=True))
            await sub.wait_for(lambda: len(sub.where("/event")) >= 100)
            await asyncio.sleep(2.5)  # a few reconnect attempts at the 1 s ceiling
            tb_sink = next(s for s in gw.sinks if s.name == "thingsboard")
            assert not tb_sink.session.connected
            assert tb_sink.session.connects == 0
        await sim
    finally:
        await sub.stop()
        broker.stop()
    refused = [r for r in caplog.records if "refused the credentials" in r.getMessage()]
    assert len(refused) == 1 and refused[0].levelno == logging.WARNING
    assert not [r for r in caplog.records if r.exc_info]
