"""The shipped Node-RED flows (nodered_flows/), in a real Node-RED 5 against a real
Mosquitto and the real gateway process with simulated nodes, and the dashboard in
headless Chromium.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from gateway.model import node_hex
from gateway.protocol.constants import SCORE_SCALE
from gateway.sim.link import NodeRunner
from gateway.sim.node import LABELS, SimulatedNode, expected_event, fault_of
from tests.nodered import (
    FLOWS,
    MODULES,
    NodeRed,
    Webhook,
    node_binary,
    shipped_flows,
    until,
    used_types,
)
from tests.peers import Collector, Mosquitto, config_data, toml_text
from tests.test_verify import model, verify_section

ROOT = Path(__file__).resolve().parent.parent
TOPICS = (ROOT / "docs" / "topics.md").read_text()


def _node_tests() -> subprocess.CompletedProcess[str]:
    tests = sorted(str(p) for p in (FLOWS / "test").glob("*.test.js"))
    return subprocess.run(
        [str(node_binary()), "--test", *tests], capture_output=True, text=True, timeout=300
    )


def test_every_function_node_passes_its_unit_tests() -> None:
    done = _node_tests()
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    passed = int(re.search(r"^# pass (\d+)", done.stdout, re.M).group(1))  # type: ignore[union-attr]
    assert passed >= 9 and "# fail 0" in done.stdout


def test_the_flows_are_built_from_the_function_sources() -> None:
    done = subprocess.run(
        [sys.executable, str(FLOWS / "build.py"), "--check"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def _documented_names() -> set[str]:
    """Field names docs/topics.md defines: `name`, and "name" in a payload it shows."""
    names = set(re.findall(r"`([a-z_][a-z0-9_]*)`", TOPICS))
    for span in re.findall(r"`([^`]*)`", TOPICS):
        names |= set(re.findall(r'"([a-z_][a-z0-9_]*)"', span))
    return names


def test_flows_use_only_documented_fields_and_topics() -> None:
    names = _documented_names()
    for src in sorted((FLOWS / "src").glob("*.js")):
        used = set(re.findall(r"\bp\.([A-Za-z_]\w*)\b(?!\s*\()", src.read_text()))
        assert used <= names, f"{src.name}: {used - names} are not fields in docs/topics.md"
    # the topics the flows publish to or read are the documented ones
    documented = set(re.findall(r"`<prefix>/<gw>(/[^`]*)`", TOPICS))
    assert {"/<node>/cmd", "/<node>/cmd/ack", "/status", "/<node>/event"} <= documented
    command = (FLOWS / "src" / "command.js").read_text()
    assert "/${node_}/cmd`" in command
    parse = (FLOWS / "src" / "parse.js").read_text()
    assert '"cmd"' in parse and '"ack"' in parse
    methods = json.loads(re.search(r"const METHODS = (\[.*?\]);", command).group(1))  # type: ignore[union-attr]
    for m in methods:
        assert f"`{m}`" in TOPICS


def test_every_broker_path_and_address_comes_from_the_environment() -> None:
    env_props = {
        "mqtt-broker": ("broker", "port"),
        "mqtt in": ("topic",),
        "sqlitedb": ("db",),
        "http request": ("url",),
    }
    seen = set()
    for n in shipped_flows():
        for prop in env_props.get(n["type"], ()):
            assert re.fullmatch(r"\$\{[A-Z][A-Z0-9_]*\}", n[prop]), (n["type"], prop, n[prop])
            seen.add(n["type"])
        if n["type"] == "file":
            assert n["filenameType"] == "msg"  # set from TINYML_CSV_DIR by the export function
    assert seen == set(env_props)


def test_a_flow_with_a_type_that_is_not_installed_is_refused(tmp_path: Path) -> None:
    red = NodeRed(tmp_path, {})
    red.start()
    try:
        flows = shipped_flows()
        assert used_types(flows) <= red.installed_types()
        broken = [*flows, {"id": "x1", "type": "no-such-node", "z": flows[0]["id"], "wires": []}]
        with pytest.raises(AssertionError, match="no-such-node"):
            red.deploy(broken)
    finally:
        red.stop()


def test_the_package_puts_the_flows_under_import_examples(tmp_path: Path) -> None:
    red = NodeRed(tmp_path, {})
    (red.dir / "node_modules").mkdir(parents=True)
    (red.dir / "node_modules" / "tinyml-gateway-flows").symlink_to(FLOWS)
    red.start()
    try:
        assert "tinyml-gateway-flows" in red.get("/library/examples/flows/")
        for name in ("01-parse", "02-alerts", "03-event-log", "04-dashboard", "05-commands"):
            got = red.get(f"/library/examples/flows/tinyml-gateway-flows/{name}")
            assert got == json.loads((FLOWS / "examples" / f"{name}.json").read_text())
    finally:
        red.stop()


def test_an_unset_environment_variable_is_reported(tmp_path: Path) -> None:
    red = NodeRed(tmp_path, {"MQTT_HOST": "127.0.0.1"})  # MQTT_PORT and the rest unset
    red.start()
    try:
        red.deploy(shipped_flows())
        wanted = [
            f"environment variable {v} is not set"
            for v in ("MQTT_PORT", "TINYML_TOPIC", "TINYML_DB", "TINYML_ALERT_WEBHOOK")
        ]
        asyncio.run(until(lambda: all(w in red.log_text() for w in wanted), 60))
        text = red.log_text()
        assert "environment variable MQTT_HOST is not set" not in text
    finally:
        red.stop()


# ---- end to end --------------------------------------------------------------------------

A = 0xA1B2C3D4E5F60000  # the node the commands flow's injects address
B = 0xA1B2C3D4E5F60001  # rate-limited to one alert per hour by its own rule
C = 0xA1B2C3D4E5F60002  # on a port that goes away: offline
COUNT = 150  # 15 s at 10 events/s: the dashboard is looked at while they stream
CORRUPT, WRONG = 100, 100


def _faulty(node: int, seq: int) -> bool:
    return node == A and fault_of(node, seq, CORRUPT, WRONG) is not None


def _anomalous(node: int, seq: int) -> bool:
    e = expected_event(node, seq)
    return LABELS[e.label] == "badminton" and round(e.score / SCORE_SCALE, 6) >= 0.9


def _gateway(tmp: Path, broker: Mosquitto, ports: list[str]) -> Path:
    data = config_data(
        tmp,
        broker,
        ports,
        nodes={
            node_hex(A): {"name": "press-1"},
            node_hex(B): {"name": "press-2"},
            node_hex(C): {"name": "pump-a"},
        },
        verify=verify_section(models=[model(policy="flag")]),
        log={"level": "warning"},
    )
    data["gateway"]["id"] = "gw"
    path = tmp / "gateway.toml"
    path.write_text(toml_text(data))
    return path


def _flow_env(broker: Mosquitto, db: Path, csv_dir: Path, hook: Webhook) -> dict[str, str]:
    """The variables every shipped flow needs (nodered_flows/README.md)."""
    return {
        "MQTT_HOST": "127.0.0.1",
        "MQTT_PORT": str(broker.port),
        "TINYML_TOPIC": "tinyml/#",
        "TINYML_DB": str(db),
        "TINYML_CSV_DIR": str(csv_dir),
        "TINYML_ALERT_WEBHOOK": hook.url,
    }


def _spawn(config: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "gateway", "run", "-c", str(config)],
        cwd=ROOT,
        stderr=log.open("ab"),
        stdout=subprocess.DEVNULL,
    )


def _reading(health: dict[str, Any], ports: list[str]) -> bool:
    sources = health.get("sources") or {}
    return all((sources.get(p) or {}).get("open") for p in ports)


def _all_online(health: dict[str, Any], before: set[Any]) -> bool:
    """A status of a gateway process started after ``before``'s, with A, B and C online."""
    nodes = health.get("nodes") or {}
    return health.get("started") not in before and nodes.get("online") == 3


def _rows(db: Path) -> list[tuple[Any, ...]]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as c:
        try:
            return c.execute("SELECT key, node, seq, label, agreement FROM events").fetchall()
        except sqlite3.OperationalError:
            return []


def _screenshot(url: str, out: Path, text: str, steps: list[dict[str, str]]) -> str:
    done = subprocess.run(
        [
            str(node_binary()),
            str(FLOWS / "test" / "screenshot.js"),
            url,
            str(out),
            text,
            json.dumps(steps),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "NODE_PATH": str(MODULES)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


async def test_the_flows_end_to_end_with_the_gateway_and_simulated_nodes(
    tmp_path: Path, mosquitto: Mosquitto, pty
) -> None:
    db, csv_dir = tmp_path / "events.sqlite", tmp_path / "csv"
    link_ab, link_c = pty(), pty()
    nodes = [
        SimulatedNode(
            A, window=True, heartbeat_period_s=1, corrupt_permille=CORRUPT, wrong_permille=WRONG
        ),
        SimulatedNode(B, window=True, heartbeat_period_s=1),
        SimulatedNode(C, window=True, heartbeat_period_s=1),
    ]
    runners = [
        NodeRunner(link_ab, nodes[:2], rate_hz=10, count=COUNT),
        NodeRunner(link_c, nodes[2:], rate_hz=10, count=COUNT),
    ]
    acks = Collector(mosquitto, "tinyml/gw/+/cmd/ack")
    await acks.start()
    status = Collector(mosquitto, "tinyml/gw/status")
    await status.start()
    with Webhook() as hook:
        red = NodeRed(
            tmp_path,
            {
                **_flow_env(mosquitto, db, csv_dir, hook),
                "TINYML_ALERT_LABELS": "badminton",
                "TINYML_ALERT_MIN_SCORE": "0.9",
                "TINYML_ALERT_INTERVAL_S": "0",
                "TINYML_ALERT_RULES": json.dumps({"nodes": {node_hex(B): {"interval_s": 3600}}}),
                "TINYML_LOW_BATTERY_MV": "2960",
            },
        )
        red.start()
        config = _gateway(tmp_path, mosquitto, [link_ab.path, link_c.path])
        log = tmp_path / "gateway.log"
        proc = _spawn(config, log)
        try:
            red.deploy(shipped_flows())
            await until(
                lambda: "Connected to broker" in red.log_text(), what="Node-RED's MQTT connection"
            )
            # the gateway reads both ports before the nodes start (a UART drops what came before)
            ports = [link_ab.path, link_c.path]
            await status.wait_for(lambda: any(_reading(m.json(), ports) for m in status.messages))
            sims = [asyncio.create_task(r.run(until_acked=True)) for r in runners]
            await until(lambda: len(_rows(db)) >= 30, what="the first events in SQLite")
            # while the nodes stream: the commands flow's inject reaches node A and its answer
            # comes back; the dashboard shows the live fleet and sends a command from its form
            commands_tab = next(
                n["id"] for n in shipped_flows() if n.get("label") == "tinyml: commands"
            )
            ping = next(
                n["id"]
                for n in shipped_flows()
                if n.get("z") == commands_tab and n.get("name") == "ping"
            )
            red.inject(ping)
            await acks.wait_for(lambda: any(m.json().get("status") == "ok" for m in acks.messages))
            shot = tmp_path / "dashboard.png"
            page = await asyncio.to_thread(
                _screenshot,
                f"{red.url}/dashboard/fleet",
                shot,
                "press-2",
                [
                    {"fill": "node id", "value": node_hex(A)},
                    {"fill": "method", "value": "get_info"},
                    {"click": "send"},
                    {"wait": f"{node_hex(A)}: ok"},
                ],
            )
            if os.environ.get("UPDATE_SCREENSHOTS"):
                (FLOWS / "docs").mkdir(exist_ok=True)
                (FLOWS / "docs" / "dashboard.png").write_bytes(shot.read_bytes())
            first = {m.json().get("started") for m in status.messages}
            proc.send_signal(signal.SIGKILL)  # mid-stream: the nodes keep what it had not ACKed
            proc.wait()
            proc = _spawn(config, log)
            await asyncio.wait_for(asyncio.gather(*sims), 180)
            await until(lambda: len(_rows(db)) >= 3 * COUNT, what="every event in SQLite")
            # the nodes stay on line (heartbeats, no new events) until the restarted gateway
            # has heard all three: a runner may have ended before the SIGKILL, and a node the
            # gateway never heard has no port to lose
            serving = [asyncio.create_task(r.run()) for r in runners]
            await status.wait_for(
                lambda: any(_all_online(m.json(), first) for m in status.messages)
            )
            # node C's port goes away: offline
            heard = len(hook.bodies)
            serving[1].cancel()
            await asyncio.gather(serving[1], return_exceptions=True)
            link_c.close()
            await until(
                lambda: any(
                    b["type"] == "offline" and b["node"] == node_hex(C) for b in hook.bodies[heard:]
                ),
                what="C's offline alert after its port closed",
            )
            # the daily export, for today
            export_tab = next(
                n["id"] for n in shipped_flows() if n.get("label") == "tinyml: event log"
            )
            export = next(
                n["id"] for n in shipped_flows() if n.get("z") == export_tab and n.get("crontab")
            )
            today = (
                __import__("datetime").datetime.now(__import__("datetime").UTC).date().isoformat()
            )
            red.request(
                "POST",
                f"/inject/{export}",
                {"__user_inject_props__": [{"p": "payload", "v": today, "vt": "str"}]},
            )
            out = csv_dir / f"tinyml-events-{today}.csv"
            await until(out.exists, what="the CSV export")
            await asyncio.sleep(1.0)  # the file node writes it in one go
            alerts = list(hook.bodies)  # not what the gateway's own shutdown causes
            serving[0].cancel()
            await asyncio.gather(serving[0], return_exceptions=True)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
            red.stop()
            await acks.stop()
            await status.stop()

    rows = _rows(db)
    keys = [r[0] for r in rows]
    assert len(keys) == len(set(keys)) == 3 * COUNT  # every event once, after a SIGKILL
    assert {(r[1], r[2]) for r in rows} == {
        (node_hex(n), s) for n in (A, B, C) for s in range(1, COUNT + 1)
    }
    # alerts exactly for the anomalous and the faulty events of A, none for normal ones
    got_a = {
        int(a["key"].split(":")[2])
        for a in alerts
        if a["node"] == node_hex(A) and a["type"] == "anomaly"
    }
    want_a = {s for s in range(1, COUNT + 1) if _anomalous(A, s) and not _faulty(A, s)}
    assert got_a == want_a and want_a
    verify_a = {int(a["key"].split(":")[2]) for a in alerts if a["type"] == "verification"}
    assert verify_a == {s for s in range(1, COUNT + 1) if _faulty(A, s)}
    # B's own rule: one alert per hour, however many anomalies it has
    assert sum(1 for s in range(1, COUNT + 1) if _anomalous(B, s)) > 1
    assert sum(1 for a in alerts if a["node"] == node_hex(B) and a["type"] == "anomaly") == 1
    # every alert carries the node's last heartbeat
    assert all(a["heartbeat"] is None or a["heartbeat"]["node"] == a["node"] for a in alerts)
    assert any(a["heartbeat"] for a in alerts if a["type"] == "anomaly")
    # low battery once per node (battery 3000 - seq mV crosses 2960), offline for C only
    assert sorted(a["node"] for a in alerts if a["type"] == "low_battery") == sorted(
        node_hex(n) for n in (A, B, C)
    )
    # C went offline when its port went away; A and B only while the gateway restarted, and
    # each such alert is followed by its node's "back online"
    assert node_hex(C) in {a["node"] for a in alerts if a["type"] == "offline"}
    for n in (A, B):
        # in the order the gateway saw the changes: the webhook takes requests in parallel
        changes = sorted(
            (a["ts"], a["type"])
            for a in alerts
            if a["node"] == node_hex(n) and a["type"] in ("offline", "online")
        )
        kinds = [kind for _, kind in changes]
        assert kinds == ["offline", "online"] * (len(kinds) // 2)
    # the dashboard showed the live fleet and the command's answer
    for n, name in ((A, "press-1"), (B, "press-2"), (C, "pump-a")):
        assert node_hex(n) in page and name in page
    assert any(label in page for label in LABELS)
    assert f"{node_hex(A)}: ok" in page
    # the CSV: a header and every event of the day once
    with out.open() as f:
        exported = list(csv.DictReader(f))
    assert len(exported) == 3 * COUNT and len({e["key"] for e in exported}) == 3 * COUNT
    # no node has a group: a SQL NULL, written as an empty field, never as the text null
    assert all(e["grp"] == "" for e in exported)
    assert not [e for e in exported if "null" in e.values()]
    assert "Traceback" not in log.read_text()


async def test_alerts_stay_once_across_a_node_red_restart(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """An anomaly and an offline alert, then Node-RED restarts: the broker hands the flow
    the retained offline status again, and the gateway re-delivers the event (as after its
    own crash). Neither alerts twice; a new event still does."""
    node = node_hex(A)

    def event(seq: int) -> bytes:
        return json.dumps(
            {
                "schema": 1, "kind": "event", "gateway": "gw", "node": node, "boot": 1,
                "seq": seq, "ts": 1796170000000 + seq, "key": f"{node}:1:{seq}",
                "label": "badminton", "label_index": 0, "score": 0.97, "model_id": "91e3fbd4",
            }
        ).encode()  # fmt: skip

    offline = json.dumps(
        {
            "schema": 1, "kind": "status", "gateway": "gw", "node": node, "boot": 1, "seq": 1,
            "ts": 1796170000000, "online": False, "reason": "no message for 3 heartbeat periods",
        }
    ).encode()  # fmt: skip
    base = f"tinyml/gw/{node}"
    with Webhook() as hook:
        red = NodeRed(
            tmp_path,
            {
                **_flow_env(mosquitto, tmp_path / "events.sqlite", tmp_path / "csv", hook),
                "TINYML_ALERT_LABELS": "badminton",
                "TINYML_ALERT_INTERVAL_S": "0",
            },
        )
        red.start()
        try:
            red.deploy(shipped_flows())
            await until(lambda: "Connected to broker" in red.log_text(), what="MQTT")
            async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
                await client.publish(f"{base}/event", event(1), qos=1)
                await client.publish(f"{base}/status", offline, qos=1, retain=True)
            await until(lambda: len(hook.bodies) >= 2, what="the first two alerts")
            red.stop()  # Node-RED writes its file context store on the way down
            red.start()
            await until(lambda: red.log_text().count("Connected to broker") >= 2, what="MQTT again")
            async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
                await client.publish(f"{base}/event", event(1), qos=1)  # re-delivered
                await client.publish(f"{base}/event", event(2), qos=1)  # new
            await until(
                lambda: any(b.get("key") == f"{node}:1:2" for b in hook.bodies), what="event 2"
            )
        finally:
            red.stop()
    kinds = sorted((b["type"], b.get("key")) for b in hook.bodies)
    assert kinds == [
        ("anomaly", f"{node}:1:1"),
        ("anomaly", f"{node}:1:2"),
        ("offline", None),
    ], hook.bodies
    assert "Unknown context store" not in red.log_text()
