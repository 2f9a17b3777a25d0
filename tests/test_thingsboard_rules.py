"""The ThingsBoard import files of thingsboard_rules/: their structure against ThingsBoard's
own node classes (thingsboard_rules/reference/thingsboard.json, taken from its source), and
their scripts' decisions on what the real gateway sends.

No ThingsBoard server runs here. The scripts' JavaScript form (the same text as the TBEL one
the server runs by default) runs in Node.js (thingsboard_rules/test/evaluate.js), fed with
the telemetry and attributes the gateway's ThingsBoard sink published to the checker.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.model import node_hex
from gateway.sim.link import NodeRunner
from gateway.sim.node import LABELS, SimulatedNode, fault_of
from tests.nodered import node_binary
from tests.peers import gateway_config, running
from tests.tb_checker import ThingsBoardChecker
from tests.test_thingsboard import tb_broker, tb_section
from tests.test_verify import model, verify_section
from tests.verify_parity import MODEL_DIR, meta

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "thingsboard_rules"
REFERENCE = json.loads((RULES / "reference" / "thingsboard.json").read_text())
CHAINS = sorted((RULES / "rule_chains").glob("*.json"))
NODE_CHAIN = RULES / "rule_chains" / "tinyml_node.json"


def test_the_files_are_built_from_the_scripts() -> None:
    done = subprocess.run(
        [sys.executable, str(RULES / "build.py"), "--check"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def _script_relations(code: str) -> set[str]:
    """The relations a switch script can return: the strings it pushes or returns in a list."""
    return set(re.findall(r'out\.push\("([^"]+)"\)', code)) | set(
        re.findall(r'return \["([^"]+)"\]', code)
    )


@pytest.mark.parametrize("path", CHAINS, ids=lambda p: p.name)
def test_a_rule_chain_imports_cleanly(path: Path) -> None:
    chain = json.loads(path.read_text())
    assert chain["ruleChain"]["type"] == "CORE" and chain["ruleChain"]["name"]
    meta_ = chain["metadata"]
    nodes, conns = meta_["nodes"], meta_["connections"]
    assert 0 <= meta_["firstNodeIndex"] < len(nodes)
    for n in nodes:
        ref = REFERENCE["rule_nodes"].get(n["type"])
        assert ref is not None, f"{n['name']}: {n['type']} is not a node class of ThingsBoard"
        assert n["configurationVersion"] == ref["configuration_version"], n["name"]
        assert set(n["configuration"]) <= set(ref["configuration_fields"]), (
            n["name"],
            set(n["configuration"]) - set(ref["configuration_fields"]),
        )
        config = n["configuration"]
        if "tbelScript" in config:  # one source: the JS the tests run is the TBEL the server runs
            assert config["tbelScript"] == config["jsScript"] and config["scriptLang"] == "TBEL"
        if "alarmDetailsBuildTbel" in config:
            assert config["alarmDetailsBuildTbel"] == config["alarmDetailsBuildJs"]
    for c in conns:
        assert 0 <= c["fromIndex"] < len(nodes) and 0 <= c["toIndex"] < len(nodes), c
        assert c["fromIndex"] != c["toIndex"], f"a self-link: {c}"
        source = nodes[c["fromIndex"]]
        ref = REFERENCE["rule_nodes"][source["type"]]
        if ref["custom_relations"]:
            allowed = _script_relations(source["configuration"]["jsScript"]) | {"Failure"}
        else:
            allowed = set(ref["relation_types"])
        assert c["type"] in allowed, (
            f"{source['name']} has no output {c['type']!r}: {sorted(allowed)}"
        )
    # no cycles: a message must never come back to a node it passed
    edges: dict[int, set[int]] = {}
    for c in conns:
        edges.setdefault(c["fromIndex"], set()).add(c["toIndex"])
    state: dict[int, int] = {}

    def visit(i: int) -> None:
        state[i] = 1
        for j in edges.get(i, ()):
            assert state.get(j) != 1, f"a cycle through {nodes[j]['name']}"
            if j not in state:
                visit(j)
        state[i] = 2

    for i in range(len(nodes)):
        if i not in state:
            visit(i)
    # every node is reachable from the first
    seen, todo = set(), [meta_["firstNodeIndex"]]
    while todo:
        i = todo.pop()
        if i not in seen:
            seen.add(i)
            todo.extend(edges.get(i, ()))
    assert seen == set(range(len(nodes))), [nodes[i]["name"] for i in set(range(len(nodes))) - seen]


def test_the_scripts_keep_to_what_tbel_shares_with_javascript() -> None:
    for src in sorted((RULES / "scripts").glob("*.js")):
        code = re.sub(r"//.*", "", src.read_text())
        for construct, pattern in (
            ("let/const", r"\b(let|const)\b"),
            ("an arrow function", r"=>"),
            ("a template literal", r"`"),
            ("=== or !==", r"[!=]=="),
            ("for...of / for...in", r"\bfor\s*\([^)]*\b(of|in)\b"),
            ("undefined", r"\bundefined\b"),
        ):
            assert not re.search(pattern, code), f"{src.name} uses {construct}"
        # TBEL needs a ternary in parentheses outside an if
        for line in code.splitlines():
            if "?" in line and not line.strip().startswith("if"):
                assert re.search(r"\([^()]*\?[^()]*:[^()]*\)|\(.*\?.*:.*\)", line), (
                    f"{src.name}: {line.strip()}"
                )


def test_the_device_profile_names_the_type_the_gateway_sends() -> None:
    profile = json.loads((RULES / "device_profiles" / "tinyml_node.json").read_text())
    from gateway.config import ThingsBoardSection

    assert (
        profile["name"]
        == ThingsBoardSection.model_fields["device_profile"].default
        == "tinyml-node"
    )
    assert profile["profileData"]["alarms"] is None  # the chain raises the alarms
    assert profile["transportType"] == "MQTT"


# ---- the node chain's decisions on what the gateway sends -------------------------------

A, B, C = 0xC0DE000000000001, 0xC0DE000000000002, 0xC0DE000000000003
COUNT = 80
CORRUPT, WRONG = 100, 100


def _evaluate(messages: list[dict[str, Any]], attributes: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [str(node_binary()), str(RULES / "test" / "evaluate.js")],
        input=json.dumps(
            {"chain": str(NODE_CHAIN), "attributes": attributes, "messages": messages}
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def _messages(checker: ThingsBoardChecker, device: str) -> list[dict[str, Any]]:
    dev = checker.devices[device]
    out = [
        {
            "device": device,
            "msgType": "POST_TELEMETRY_REQUEST",
            "msg": values,
            "metadata": {"ts": str(ts), "deviceName": device, "deviceType": "tinyml-node"},
        }
        for ts, values in sorted(dev.telemetry, key=lambda e: e[0])
    ]
    out += [
        {
            "device": device,
            "msgType": "POST_ATTRIBUTES_REQUEST",
            "msg": values,
            "metadata": {"deviceName": device, "deviceType": "tinyml-node"},
        }
        for values in dev.attribute_updates
    ]
    return out


async def test_the_node_chain_raises_exactly_the_alarms_the_gateways_messages_call_for(
    tmp_path: Path, pty
) -> None:
    tb = tb_broker(tmp_path / "tb")
    checker = ThingsBoardChecker(tb.host, tb.port)
    await checker.start()
    link = pty()
    faults = {"corrupt_permille": CORRUPT, "wrong_permille": WRONG}
    nodes = [
        SimulatedNode(A, window=True, heartbeat_period_s=1, **faults),
        SimulatedNode(B, window=True, heartbeat_period_s=1),
        SimulatedNode(C, window=True, heartbeat_period_s=1),
    ]
    names = {A: "press-1", B: "press-2", C: "pump-a"}
    cfg = gateway_config(
        tmp_path,
        None,
        [link.path],
        mqtt={"enabled": False},
        thingsboard=tb_section(tb),
        nodes={node_hex(n): {"name": name} for n, name in names.items()},
        verify=verify_section(models=[model(policy="flag")]),
    )
    try:
        async with running(cfg):
            await asyncio.wait_for(
                NodeRunner(link, nodes, rate_hz=20, count=COUNT).run(until_acked=True), 120
            )
            await checker.wait_for(
                lambda: all(
                    sum("seq" in v and "label_index" in v for _, v in checker.telemetry_of(name))
                    >= COUNT
                    for name in names.values()
                )
            )
            link.close()  # the nodes' port goes away: the gateway says they are offline
            await checker.wait_for(
                lambda: all(
                    checker.devices[name].attributes.get("online") is False
                    for name in names.values()
                )
            )
    finally:
        await checker.stop()
        tb.stop()
    assert checker.violations == []

    # thresholds: A's own; B has no customer and takes the tenant's; C's customer's
    attributes = {
        "devices": {
            "press-1": {
                "tinymlAnomalyLabels": "badminton",
                "tinymlAnomalyMinScore": 0.9,
                "tinymlLowBatteryMv": 2960,
            }
        },
        "customers": {
            "press-2": None,
            "pump-a": {"tinymlAnomalyLabels": "running", "tinymlLowBatteryMv": 2960},
        },
        "tenant": {
            "tinymlAnomalyLabels": "badminton",
            "tinymlAnomalyMinScore": 0.99,
            "tinymlLowBatteryMv": 2960,
        },
    }
    rules = {A: ("badminton", 0.9), B: ("badminton", 0.99), C: ("running", 0.99)}
    for n, name in names.items():
        messages = _messages(checker, name)
        result = _evaluate(messages, attributes)
        labels_, min_score = rules[n]
        for m, actions in zip(messages, result["actions"], strict=True):
            v = m["msg"]
            alarms = {(a["alarm"], a["action"]) for a in actions if "alarm" in a}
            if "label_index" in v and "label" in v:
                anomalous = v["label"] in labels_.split(",") and v["score"] >= min_score
                raised = ("TinyML anomaly", "create") in alarms or (
                    "TinyML anomaly",
                    "update",
                ) in alarms
                assert raised == anomalous, (name, v["seq"], v["label"], v["score"], alarms)
                if not anomalous:
                    assert ("TinyML anomaly", "create") not in alarms
                assert v["label"] == LABELS[v["label_index"]]
            if v.get("verified") is True:
                faulty = n == A and fault_of(n, v["seq"], CORRUPT, WRONG) is not None
                flagged = {
                    ("TinyML verification disagreement", "create"),
                    ("TinyML verification disagreement", "update"),
                } & alarms
                assert bool(flagged) == faulty, (name, v["seq"], alarms)
            if "battery_mv" in v and v["battery_mv"] < 2960:
                assert alarms & {("TinyML low battery", "create"), ("TinyML low battery", "update")}
        # anomalies happened, and the faulty events of A were flagged
        kinds = {a["alarm"] for acts in result["actions"] for a in acts if "alarm" in a}
        assert "TinyML low battery" in kinds and "TinyML node offline" in kinds
        assert result["alarms"][f"{name}|TinyML node offline"]["cleared"] is False
        if n == A:
            assert "TinyML verification disagreement" in kinds and "TinyML anomaly" in kinds
    # the thresholds came from three places: C's anomalies are its customer's label only
    c_alarms = [
        m["msg"]["label"]
        for m, acts in zip(
            _messages(checker, "pump-a"),
            _evaluate(_messages(checker, "pump-a"), attributes)["actions"],
            strict=True,
        )
        if any(
            a.get("alarm") == "TinyML anomaly" and a["action"] in ("create", "update") for a in acts
        )
    ]
    assert c_alarms and set(c_alarms) == {"running"}


def test_the_node_chain_at_its_thresholds_and_their_fallbacks() -> None:
    """Crafted messages at each threshold: the gateway's data rarely sits on one."""

    def event(score: float, **over: Any) -> dict[str, Any]:
        values = {
            "label": "anomaly",
            "label_index": 1,
            "score": score,
            "model_id": "0x91e3fbd4",
            "key": "k",
            "seq": 1,
            **over,
        }
        return {"device": "d", "msgType": "POST_TELEMETRY_REQUEST", "msg": values, "metadata": {}}

    def created(result: dict[str, Any], i: int, alarm: str) -> str | None:
        hits = [
            a
            for a in result["actions"][i]
            if a.get("alarm") == alarm and a["action"] in ("create", "update")
        ]
        return hits[0]["severity"] if hits else None

    # the defaults: label "anomaly", 0.8, critical from 0.95
    r = _evaluate(
        [event(0.79), event(0.8), event(0.949), event(0.95), event(0.99, label="normal")],
        {"devices": {}, "customers": {}, "tenant": {}},
    )
    assert [created(r, i, "TinyML anomaly") for i in range(5)] == [
        None,
        "MAJOR",
        "MAJOR",
        "CRITICAL",
        None,
    ]
    assert r["alarms"]["d|TinyML anomaly"]["cleared"] is True  # the normal event cleared it
    assert r["alarms"]["d|TinyML anomaly"]["details"]["count"] == 3
    # device over customer over tenant
    msgs = [event(0.85), event(0.85), event(0.85)]
    for m, device in zip(msgs, ("dev", "cus", "ten"), strict=True):
        m["device"] = device
    attrs = {
        "devices": {"dev": {"tinymlAnomalyMinScore": 0.9}},
        "customers": {
            "dev": {"tinymlAnomalyMinScore": 0.5},
            "cus": {"tinymlAnomalyMinScore": 0.84},
            "ten": None,
        },
        "tenant": {"tinymlAnomalyMinScore": 0.86},
    }
    r = _evaluate(msgs, attrs)
    assert [created(r, i, "TinyML anomaly") for i in range(3)] == [None, "MAJOR", None]
    # low battery: below the threshold raises, only 100 mV above it clears
    hb = [
        {
            "device": "d",
            "msgType": "POST_TELEMETRY_REQUEST",
            "msg": {"battery_mv": mv},
            "metadata": {},
        }
        for mv in (3299, 3350, 3400, 3250)
    ]
    r = _evaluate(hb, {"devices": {}, "customers": {}, "tenant": {}})
    acts = [{(a["alarm"], a["action"]) for a in acts if "alarm" in a} for acts in r["actions"]]
    assert acts == [
        {("TinyML low battery", "create")},
        set(),
        {("TinyML low battery", "clear")},
        {("TinyML low battery", "create")},
    ]
    # inactivity raises the offline alarm, activity clears it; the online attribute likewise
    ev = [
        {"device": "d", "msgType": "INACTIVITY_EVENT", "msg": {"active": False}, "metadata": {}},
        {"device": "d", "msgType": "ACTIVITY_EVENT", "msg": {"active": True}, "metadata": {}},
        {
            "device": "d",
            "msgType": "POST_ATTRIBUTES_REQUEST",
            "msg": {"online": False, "offline_reason": "port closed"},
            "metadata": {},
        },
        {
            "device": "d",
            "msgType": "POST_ATTRIBUTES_REQUEST",
            "msg": {"firmware_version": "1.0"},
            "metadata": {},
        },
    ]
    r = _evaluate(ev, {"devices": {}, "customers": {}, "tenant": {}})
    acts = [{(a["alarm"], a["action"]) for a in acts if "alarm" in a} for acts in r["actions"]]
    assert acts == [
        {("TinyML node offline", "create")},
        {("TinyML node offline", "clear")},
        {("TinyML node offline", "create")},
        set(),
    ]
    assert r["alarms"]["d|TinyML node offline"]["details"]["reason"] == "port closed"
    # RPC to the device goes to the RPC node
    r = _evaluate(
        [
            {
                "device": "d",
                "msgType": "RPC_CALL_FROM_SERVER_TO_DEVICE",
                "msg": {"method": "ping"},
                "metadata": {},
            }
        ],
        {"devices": {}, "customers": {}, "tenant": {}},
    )
    assert [a["action"] for a in r["actions"][0]] == ["TbSendRPCRequestNode"]


def test_the_node_chain_trims_labels_and_clears_disagreement_only_on_agreement() -> None:
    def telemetry(**values: Any) -> dict[str, Any]:
        return {"device": "d", "msgType": "POST_TELEMETRY_REQUEST", "msg": values, "metadata": {}}

    def acts(result: dict[str, Any]) -> list[set[tuple[str, str]]]:
        return [{(a["alarm"], a["action"]) for a in x if "alarm" in a} for x in result["actions"]]

    verdict = {"label": "running", "score": 0.5, "verified": True}
    r = _evaluate(
        [
            telemetry(label="badminton", score=0.9),
            telemetry(**verdict, agreement=False, verify_alert=True),  # flagged
            telemetry(**verdict, agreement=False, verify_alert=False),  # policy annotate
            telemetry(**verdict, agreement=None, verify_alert=False),  # cannot tell
            telemetry(**verdict, agreement=True, verify_alert=False),
        ],
        {"devices": {}, "customers": {}, "tenant": {"tinymlAnomalyLabels": "running, badminton"}},
    )
    got = acts(r)
    assert ("TinyML anomaly", "create") in got[0]
    assert ("TinyML verification disagreement", "create") in got[1]
    for quiet in got[2:4]:
        assert not {a for a in quiet if a[0] == "TinyML verification disagreement"}
    assert ("TinyML verification disagreement", "clear") in got[4]


GATEWAY_CHAIN = RULES / "rule_chains" / "tinyml_gateway.json"


def test_the_gateway_chain_raises_on_growth_not_on_totals() -> None:
    def report(previous: dict[str, Any] | None = None, **values: Any) -> dict[str, Any]:
        health = {
            "outbox.used_bytes": 1000,
            "sinks.mqtt.connected": True,
            "sinks.thingsboard.connected": True,
            **values,
        }
        return {
            "device": "gw",
            "msgType": "POST_TELEMETRY_REQUEST",
            "msg": health,
            "metadata": {k: str(v) for k, v in (previous or {}).items()},
        }

    def run(
        messages: list[dict[str, Any]], attrs: dict[str, Any] | None = None
    ) -> list[set[tuple[str, str]]]:
        done = subprocess.run(
            [str(node_binary()), str(RULES / "test" / "evaluate.js")],
            input=json.dumps({"chain": str(GATEWAY_CHAIN), "attributes": attrs or {"devices": {}, "customers": {}, "tenant": {}}, "messages": messages}),
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return [
            {(a["alarm"], a["action"]) for a in acts if "alarm" in a}
            for acts in json.loads(done.stdout)["actions"]
        ]

    got = run(
        [
            report(),  # healthy
            report(
                {"outbox.dropped_cap": 5}, **{"outbox.dropped_cap": 5}
            ),  # a total, unchanged: no alarm
            report({"outbox.dropped_cap": 5}, **{"outbox.dropped_cap": 9}),  # it grew
            report({"outbox.dropped_cap": 9}, **{"outbox.dropped_cap": 9}),
            report(**{"sinks.mqtt.connected": False, "sinks.mqtt.last_error": "refused"}),
            report(),
            report(**{"outbox.used_bytes": 60_000_000}),
            report(**{"outbox.used_bytes": 30_000_000}),  # between half and the limit: stays
            report(**{"outbox.used_bytes": 20_000_000}),
            report(
                {"counters.rejected_unauthenticated": 1},
                **{"counters.rejected_unauthenticated": 2, "totals.frames_bad": 0},
            ),
            report(
                {"sinks.thingsboard.publish_refused": 0}, **{"sinks.thingsboard.publish_refused": 3}
            ),
            report(
                **{"counters.rejected_unauthenticated": 4}
            ),  # a restarted gateway's first report: from 0
            # 5 before a restart, 3 after it: the report's "started" changed, so 3 is growth
            report(
                {"counters.rejected_unauthenticated": 5, "started": 1000},
                **{"counters.rejected_unauthenticated": 3, "started": 2000},
            ),
            report(
                {"counters.rejected_unauthenticated": 3, "started": 2000},
                **{"counters.rejected_unauthenticated": 3, "started": 2000},
            ),
            report(
                {"counters.rejected_unauthenticated": 3, "started": 2000},
                **{"counters.rejected_unauthenticated": 4, "started": 2000},
            ),
        ]
    )
    assert got == [
        set(),
        set(),
        {("TinyML gateway dropped events", "create")},
        {("TinyML gateway dropped events", "clear")},
        {("TinyML gateway sink disconnected", "create")},
        {("TinyML gateway sink disconnected", "clear")},
        {("TinyML gateway outbox growing", "create")},
        set(),
        {("TinyML gateway outbox growing", "clear")},
        {("TinyML gateway input rejected", "create")},
        {("TinyML gateway publish refused", "create"), ("TinyML gateway input rejected", "clear")},
        {("TinyML gateway input rejected", "create"), ("TinyML gateway publish refused", "clear")},
        {("TinyML gateway input rejected", "update")},  # still active: raised again
        {("TinyML gateway input rejected", "clear")},
        {("TinyML gateway input rejected", "create")},
    ]
    # the outbox limit from a server attribute of the tenant
    tenant = {"devices": {}, "customers": {}, "tenant": {"tinymlOutboxMaxBytes": 500}}
    assert run([report()], tenant) == [{("TinyML gateway outbox growing", "create")}]


def test_the_counters_the_gateway_chain_compares_are_reported_at_zero() -> None:
    """After a restart a counter still at 0 must reach ThingsBoard, or the pre-restart
    total stays its latest value and the next report's growth is measured from it."""
    from gateway.health import Health

    sys.path.insert(0, str(RULES))
    from build import GATEWAY_COUNTERS  # type: ignore[import-not-found]

    compared = {k.split(".", 1)[1] for k in GATEWAY_COUNTERS if k.startswith("counters.")}
    assert compared and compared <= set(Health("gw").payload()["counters"])
    assert "started" in GATEWAY_COUNTERS


# ---- the import script -------------------------------------------------------------------


def _import(url: str, password: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            str(RULES / "import.py"),
            "--url",
            url,
            "--user",
            "tenant@thingsboard.org",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"TB_PASSWORD": password, "PATH": "/usr/bin:/bin"},
    )


def test_the_import_script_against_the_rest_api() -> None:
    from tests.tb_rest import RestStandIn

    with RestStandIn(password="s3cret") as tb:
        done = _import(tb.url, "s3cret")
        assert done.returncode == 0, done.stderr
        assert {c["name"] for c in tb.rule_chains.values()} == {"TinyML node", "TinyML gateway"}
        assert set(tb.metadata) == set(tb.rule_chains)  # every chain got its nodes
        by_name = {c["name"]: c["id"]["id"] for c in tb.rule_chains.values()}
        profiles = {p["name"]: p for p in tb.profiles.values()}
        assert profiles["tinyml-node"]["defaultRuleChainId"]["id"] == by_name["TinyML node"]
        assert profiles["tinyml-gateway"]["defaultRuleChainId"]["id"] == by_name["TinyML gateway"]
        assert "imported rule chain TinyML node" in done.stdout
        assert {d["title"] for d in tb.dashboards.values()} == {
            "TinyML fleet",
            "TinyML gateway health",
        }
        # again: the same entities, updated, no copies
        again = _import(tb.url, "s3cret")
        assert again.returncode == 0, again.stderr
        assert len(tb.rule_chains) == 2 and len(tb.profiles) == 2 and len(tb.dashboards) == 2
        # a wrong password: one clear line
        refused = _import(tb.url, "wrong")
        assert refused.returncode == 1
        assert (
            refused.stderr.strip()
            == "import: ThingsBoard refused the login of tenant@thingsboard.org: check the user and password"
        )
    # a server that is not there
    gone = _import(tb.url, "s3cret")
    assert (
        gone.returncode == 1
        and gone.stderr.startswith("import: cannot reach ThingsBoard at")
        and "Traceback" not in gone.stderr
    )


# ---- dashboards ------------------------------------------------------------------------------

DASHBOARDS = sorted((RULES / "dashboards").glob("*.json"))


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_a_dashboard_uses_existing_widgets_and_no_entity_ids(path: Path) -> None:
    d = json.loads(path.read_text())
    c = d["configuration"]
    assert d["title"] and set(c) >= {"widgets", "states", "entityAliases", "timewindow", "settings"}
    aliases = c["entityAliases"]
    for a in aliases.values():
        # by device type, or the entity a state was opened for: an id would be one server's
        assert a["filter"]["type"] in ("deviceType", "stateEntity"), a
        assert a["filter"].get("deviceTypes", ["tinyml-node"])[0] in (
            "tinyml-node",
            "tinyml-gateway",
        )
    for w in c["widgets"].values():
        assert w["typeFullFqn"] in REFERENCE["widget_types"], w["typeFullFqn"]
        sources = [
            *w["config"].get("datasources", []),
            *([w["config"]["alarmSource"]] if "alarmSource" in w["config"] else []),
        ]
        if w["type"] == "rpc":
            sources = [w["config"]["targetDevice"]]
        assert sources, w["config"]["title"]
        for s in sources:
            assert s["entityAliasId"] in aliases, w["config"]["title"]
        for action in (a for acts in w["config"].get("actions", {}).values() for a in acts):
            assert action["targetDashboardStateId"] in c["states"]
    placed = {wid for s in c["states"].values() for wid in s["layouts"]["main"]["widgets"]}
    assert placed == set(c["widgets"])
    assert sum(s["root"] for s in c["states"].values()) == 1
    text = path.read_text()
    assert not re.search(r'"entityType":\s*"DEVICE"', text)  # no device picked by id


def _used_keys() -> dict[str, set[str]]:
    """What the shipped chains and dashboards read, by the device type they read it from."""
    used: dict[str, set[str]] = {"tinyml-node": set(), "tinyml-gateway": set()}
    for chain, device in ((NODE_CHAIN, "tinyml-node"), (GATEWAY_CHAIN, "tinyml-gateway")):
        for n in json.loads(chain.read_text())["metadata"]["nodes"]:
            config = n["configuration"]
            for code in (config.get("jsScript", ""), config.get("alarmDetailsBuildJs", "")):
                used[device] |= set(re.findall(r"\bmsg\.([a-z_]+)\b(?!\s*\()", code))
                used[device] |= set(re.findall(r'\bmsg\["([^"]+)"\]', code))
            used[device] |= set(config.get("latestTsKeyNames", []))
    for path in DASHBOARDS:
        c = json.loads(path.read_text())["configuration"]
        by_alias = {
            a["id"]: a["filter"].get("deviceTypes", ["tinyml-node"])[0]
            for a in c["entityAliases"].values()
        }
        for w in c["widgets"].values():
            for s in w["config"].get("datasources", []):
                used[by_alias[s["entityAliasId"]]] |= {
                    k["name"] for k in s["dataKeys"] if k["type"] in ("timeseries", "attribute")
                }
    return used


async def _sent_keys(tmp_path: Path) -> dict[str, set[str]]:
    """What the gateway sends: every telemetry field of its field table (config.TelemetryField),
    its node attributes, and its own flattened health, from a real gateway with both bridges
    and verification on."""
    from typing import get_args

    from gateway.config import TelemetryField
    from gateway.protocol import Info
    from gateway.service import build
    from gateway.sinks.tb_payload import flatten, node_attributes

    info = Info(1, 3, 10, 100, 30000, bytes(32), "1.0.0", "m", ("a", "b"))
    attributes = set(
        node_attributes(node="n", gateway="g", transport="serial", info=info, online=True)
    )
    attributes |= {"offline_reason"}  # sent with online false (gateway/sinks/thingsboard.py)
    cfg = gateway_config(
        tmp_path,
        None,
        ["/dev/ttyUSB0"],
        thingsboard={"enabled": True, "access_token": "t"},
        verify={
            "enabled": True,
            "models": [{"file": str(MODEL_DIR / "model.tflite"), "sha256": meta()["sha256"]}],
        },
    )
    gw = await build(cfg)
    try:
        gw.health.counters["events"] += 1
        # keys whose value is null now (a sink's last_error) are sent once they have one
        payload = gw.health.payload()
        health = set(flatten(payload)) | _null_keys(payload)
    finally:
        assert gw.verification is not None
        gw.verification.close()
        await gw.outbox.close()
    return {"tinyml-node": set(get_args(TelemetryField)) | attributes, "tinyml-gateway": health}


def _null_keys(payload: dict[str, Any], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for k, v in payload.items():
        if isinstance(v, dict):
            out |= _null_keys(v, f"{prefix}{k}.")
        elif v is None:
            out.add(f"{prefix}{k}")
    return out


async def test_every_key_read_is_sent_and_every_key_sent_is_read_or_said_unused(
    tmp_path: Path,
) -> None:
    import fnmatch

    used, sent = _used_keys(), await _sent_keys(tmp_path)
    unused = json.loads((RULES / "keys.json").read_text())
    for device in ("tinyml-node", "tinyml-gateway"):
        # the gateway's counters appear once counted: the ones the chain reads exist when non-zero
        missing = {
            k
            for k in used[device] - sent[device]
            if not k.startswith(("counters.", "outbox.dropped_events:"))
        }
        assert missing == set(), f"{device}: read but never sent: {missing}"
    node_unused = {**unused["node telemetry"], **unused["node attributes"]}
    stray = {k for k in sent["tinyml-node"] - used["tinyml-node"] if k not in node_unused}
    assert stray == set(), f"sent, never read, not listed in keys.json: {stray}"
    patterns = unused["gateway telemetry"]
    stray = {
        k
        for k in sent["tinyml-gateway"] - used["tinyml-gateway"]
        if not any(fnmatch.fnmatch(k, p) for p in patterns)
    }
    assert stray == set(), f"gateway health sent, never read, not listed: {stray}"
    # and what keys.json lists is really sent and really unread, not a leftover
    assert set(node_unused) <= sent["tinyml-node"], set(node_unused) - sent["tinyml-node"]
    assert not set(node_unused) & used["tinyml-node"], set(node_unused) & used["tinyml-node"]
