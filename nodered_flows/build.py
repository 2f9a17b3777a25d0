"""Writes nodered_flows/examples/*.json from nodered_flows/src/*.js.

    python nodered_flows/build.py          # rewrite the flows
    python nodered_flows/build.py --check  # exit 1 if a committed flow is out of date

Each function node's code is a file of src/, so that it is reviewed, linted and unit
tested as code (nodered_flows/test/); this script puts it into the flows. Every flow file
imports on its own: each holds the nodes it shares with the others (the parse subflow,
the broker, the dashboard's base) under the same ids, so importing several keeps one of
each. Node ids are derived from names, so a rebuild changes only what changed.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SRC = HERE / "src"
OUT = HERE / "examples"

Node = dict[str, Any]


def nid(name: str) -> str:
    return hashlib.sha1(f"tinyml:{name}".encode()).hexdigest()[:16]


def code(name: str) -> str:
    return (SRC / f"{name}.js").read_text()


def tab(name: str, label: str, info: str) -> Node:
    return {
        "id": nid(f"tab:{name}"),
        "type": "tab",
        "label": label,
        "disabled": False,
        "info": info,
        "env": [],
    }


def function(
    tab_id: str, name: str, src: str, x: int, y: int, wires: list[list[str]], outputs: int = 1
) -> Node:
    return {
        "id": nid(f"{tab_id}:{name}"),
        "type": "function",
        "z": tab_id,
        "name": name,
        "func": code(src),
        "outputs": outputs,
        "timeout": 0,
        "noerr": 0,
        "initialize": "",
        "finalize": "",
        "libs": [],
        "x": x,
        "y": y,
        "wires": wires,
    }


BROKER: Node = {
    "id": nid("broker"),
    "type": "mqtt-broker",
    "name": "tinyml gateway broker",
    "broker": "${MQTT_HOST}",
    "port": "${MQTT_PORT}",
    "clientid": "",
    "autoConnect": True,
    "usetls": False,
    "protocolVersion": "4",
    "keepalive": "60",
    "cleansession": True,
    "autoUnsubscribe": True,
    "birthTopic": "",
    "birthQos": "0",
    "birthPayload": "",
    "birthMsg": {},
    "closeTopic": "",
    "closeQos": "0",
    "closePayload": "",
    "closeMsg": {},
    "willTopic": "",
    "willQos": "0",
    "willPayload": "",
    "willMsg": {},
    "userProps": "",
    "sessionExpiry": "",
}

PARSE_ID = nid("subflow:parse")


def parse_subflow() -> list[Node]:
    fn = {
        "id": nid("subflow:parse:function"),
        "type": "function",
        "z": PARSE_ID,
        "name": "validate and normalise",
        "func": code("parse"),
        "outputs": 2,
        "timeout": 0,
        "noerr": 0,
        "initialize": "",
        "finalize": "",
        "libs": [],
        "x": 240,
        "y": 80,
        "wires": [[], []],
    }
    sub = {
        "id": PARSE_ID,
        "type": "subflow",
        "name": "tinyml parse",
        "info": (
            "Validates a message of the tinyml gateway's MQTT topics by `schema` and `kind` "
            "(docs/topics.md) and normalises it: `msg.kind`, `msg.node`, `msg.gateway`, and "
            "`msg.payload` with `time` (ISO 8601) added.\n\nOutput 1: clean messages. "
            "Output 2: messages that are not the gateway's, with `msg.reason`."
        ),
        "category": "tinyml",
        "in": [{"x": 60, "y": 80, "wires": [{"id": fn["id"]}]}],
        "out": [
            {"x": 440, "y": 60, "wires": [{"id": fn["id"], "port": 0}]},
            {"x": 440, "y": 100, "wires": [{"id": fn["id"], "port": 1}]},
        ],
        "env": [],
        "meta": {},
        "color": "#87A980",
        "outputLabels": ["clean", "not the gateway's"],
        "icon": "node-red/parser-json.svg",
    }
    return [sub, fn]


def mqtt_in(tab_id: str, x: int, y: int, wires: list[list[str]]) -> Node:
    return {
        "id": nid(f"{tab_id}:mqtt in"),
        "type": "mqtt in",
        "z": tab_id,
        "name": "gateway topics",
        "topic": "${TINYML_TOPIC}",
        "qos": "1",
        "datatype": "utf8",
        "broker": BROKER["id"],
        "nl": False,
        "rap": True,
        "rh": 0,
        "inputs": 0,
        "x": x,
        "y": y,
        "wires": wires,
    }


def mqtt_out(tab_id: str, x: int, y: int) -> Node:
    """Publishes msg.payload on msg.topic (a command to a node's cmd topic)."""
    return {
        "id": nid(f"{tab_id}:mqtt out"),
        "type": "mqtt out",
        "z": tab_id,
        "name": "to the node",
        "topic": "",
        "qos": "1",
        "retain": "false",
        "respTopic": "",
        "contentType": "",
        "userProps": "",
        "correl": "",
        "expiry": "",
        "broker": BROKER["id"],
        "x": x,
        "y": y,
        "wires": [],
    }


def parse(tab_id: str, x: int, y: int, clean: list[str], bad: list[str]) -> Node:
    return {
        "id": nid(f"{tab_id}:parse"),
        "type": f"subflow:{PARSE_ID}",
        "z": tab_id,
        "name": "",
        "x": x,
        "y": y,
        "wires": [clean, bad],
    }


def debug(
    tab_id: str, name: str, x: int, y: int, complete: str = "true", active: bool = True
) -> Node:
    return {
        "id": nid(f"{tab_id}:debug:{name}"),
        "type": "debug",
        "z": tab_id,
        "name": name,
        "active": active,
        "tosidebar": True,
        "console": False,
        "tostatus": False,
        "complete": complete,
        "targetType": "full" if complete == "true" else "msg",
        "statusVal": "",
        "statusType": "auto",
        "x": x,
        "y": y,
        "wires": [],
    }


def inject(tab_id: str, name: str, x: int, y: int, wires: list[list[str]], **over: Any) -> Node:
    node = {
        "id": nid(f"{tab_id}:inject:{name}"),
        "type": "inject",
        "z": tab_id,
        "name": name,
        "props": [{"p": "payload"}, {"p": "topic", "vt": "str"}],
        "repeat": "",
        "crontab": "",
        "once": False,
        "onceDelay": 0.1,
        "topic": "",
        "payload": "",
        "payloadType": "date",
        "x": x,
        "y": y,
        "wires": wires,
    }
    node.update(over)
    return node


def switch_kind(tab_id: str, kinds: list[str], x: int, y: int, wires: list[list[str]]) -> Node:
    return {
        "id": nid(f"{tab_id}:switch:{','.join(kinds)}"),
        "type": "switch",
        "z": tab_id,
        "name": "kind",
        "property": "kind",
        "propertyType": "msg",
        "rules": [{"t": "eq", "v": k, "vt": "str"} for k in kinds],
        "checkall": "false",
        "repair": False,
        "outputs": len(kinds),
        "x": x,
        "y": y,
        "wires": wires,
    }


def env_check(tab_id: str, flow: str, y: int) -> list[Node]:
    fn = function(tab_id, "environment check", "envcheck", 420, y, [[]])
    trigger = inject(
        tab_id,
        "check at deploy",
        160,
        y,
        [[fn["id"]]],
        once=True,
        props=[{"p": "flow", "v": flow, "vt": "str"}],
    )
    return [trigger, fn]


# ---- the flows ---------------------------------------------------------------------------


def flow_parse() -> list[Node]:
    t = tab(
        "parse",
        "tinyml: parse",
        "Every gateway message, validated: clean ones and bad ones to the debug sidebar.",
    )
    z = t["id"]
    clean = debug(z, "clean", 640, 100, active=False)
    bad = debug(z, "not the gateway's", 660, 140)
    p = parse(z, 400, 120, [clean["id"]], [bad["id"]])
    src = mqtt_in(z, 160, 120, [[p["id"]]])
    return [t, src, p, clean, bad, *env_check(z, "parse", 40), *parse_subflow(), BROKER]


def flow_alerts() -> list[Node]:
    t = tab(
        "alerts",
        "tinyml: alerts",
        "Anomalies, verification disagreements, nodes offline and back, low batteries: "
        "rate-limited per node, once per event key, POSTed to TINYML_ALERT_WEBHOOK with "
        "the node's last heartbeat.",
    )
    z = t["id"]
    out = debug(z, "alerts", 900, 100)
    hook = {
        "id": nid(f"{z}:webhook"),
        "type": "http request",
        "z": z,
        "name": "webhook",
        "method": "POST",
        "ret": "txt",
        "paytoqs": "ignore",
        "url": "${TINYML_ALERT_WEBHOOK}",
        "tls": "",
        "persist": False,
        "proxy": "",
        "insecureHTTPParser": False,
        "authType": "",
        "senderr": False,
        "headers": [
            {
                "keyType": "Content-Type",
                "keyValue": "",
                "valueType": "other",
                "valueValue": "application/json",
            }
        ],
        "x": 890,
        "y": 160,
        "wires": [[]],
    }
    al = function(z, "alerts", "alerts", 640, 120, [[out["id"], hook["id"]]])
    bad = debug(z, "not the gateway's", 660, 200)
    p = parse(z, 400, 120, [al["id"]], [bad["id"]])
    src = mqtt_in(z, 160, 120, [[p["id"]]])
    return [t, src, p, al, out, hook, bad, *env_check(z, "alerts", 40), *parse_subflow(), BROKER]


EVENT_COLUMNS = [
    "key", "node", "name", "grp", "gateway", "boot", "seq", "ts", "label", "label_index", "score",
    "model_id", "verified", "agreement", "gateway_label", "payload",
]  # fmt: skip

SCHEMA_SQL = (
    "CREATE TABLE IF NOT EXISTS events (key TEXT PRIMARY KEY, node TEXT NOT NULL, name TEXT, "
    "grp TEXT, gateway TEXT NOT NULL, boot INTEGER NOT NULL, seq INTEGER NOT NULL, "
    "ts INTEGER NOT NULL, label TEXT, label_index INTEGER, score REAL, model_id TEXT, "
    "verified INTEGER, agreement INTEGER, gateway_label TEXT, payload TEXT NOT NULL); "
    "CREATE INDEX IF NOT EXISTS events_ts ON events(ts)"
)
INSERT_SQL = "INSERT OR IGNORE INTO events ({}) VALUES ({})".format(
    ", ".join(EVENT_COLUMNS), ", ".join(f"${c}" for c in EVENT_COLUMNS)
)
# a SQL NULL is an empty field in the CSV, not the text "null" the csv node would write
EXPORT_SQL = (
    "SELECT " + ", ".join(f"IFNULL({c}, '') AS {c}" for c in EVENT_COLUMNS if c != "payload")
    + " FROM events WHERE ts >= $from AND ts < $to ORDER BY ts, node"
)  # fmt: skip
DB: Node = {"id": nid("sqlitedb"), "type": "sqlitedb", "db": "${TINYML_DB}", "mode": "RWC"}


def sqlite(z: str, name: str, mode: str, sql: str, x: int, y: int, wires: list[list[str]]) -> Node:
    return {
        "id": nid(f"{z}:sqlite:{name}"),
        "type": "sqlite",
        "z": z,
        "mydb": DB["id"],
        "sqlquery": mode,
        "sql": sql,
        "name": name,
        "x": x,
        "y": y,
        "wires": wires,
    }


def flow_event_log() -> list[Node]:
    t = tab(
        "eventlog",
        "tinyml: event log",
        "Every event into SQLite (TINYML_DB), once per event key, and a CSV file of each "
        "UTC day into TINYML_CSV_DIR at 00:10.",
    )
    z = t["id"]
    errors = debug(z, "log errors", 660, 320)
    create = sqlite(z, "create table", "batch", "", 420, 40, [[]])
    at_start = inject(
        z,
        "at deploy",
        160,
        40,
        [[create["id"]]],
        once=True,
        onceDelay=0.1,
        props=[{"p": "topic", "vt": "str"}],
        topic=SCHEMA_SQL,
    )
    insert = sqlite(z, "insert event", "prepared", INSERT_SQL, 860, 120, [[]])
    row = function(z, "event row", "eventlog", 640, 120, [[insert["id"]]])
    bad = debug(z, "not the gateway's", 660, 180)
    p = parse(z, 400, 120, [row["id"]], [bad["id"]])
    src = mqtt_in(z, 160, 120, [[p["id"]]])
    write = {
        "id": nid(f"{z}:file"),
        "type": "file",
        "z": z,
        "name": "CSV file",
        "filename": "filename",
        "filenameType": "msg",
        "appendNewline": False,
        "createDir": True,
        "overwriteFile": "true",
        "encoding": "utf8",
        "x": 1070,
        "y": 240,
        "wires": [[]],
    }
    csv = {
        "id": nid(f"{z}:csv"),
        "type": "csv",
        "z": z,
        "name": "",
        "sep": ",",
        "hdrin": "",
        "hdrout": "all",
        "multi": "mult",
        "ret": "\\n",
        "temp": ",".join(c for c in EVENT_COLUMNS if c != "payload"),
        "skip": "0",
        "strings": True,
        "include_empty_strings": "",
        "include_null_values": "",
        "spec": "rfc",
        "x": 890,
        "y": 240,
        "wires": [[write["id"]]],
    }
    select = sqlite(z, "events of the day", "prepared", EXPORT_SQL, 660, 240, [[csv["id"]]])
    day = function(z, "which day", "csvexport", 420, 240, [[select["id"]]])
    # the database's errors to the sidebar (only theirs: the environment check's go to the log)
    catch = {
        "id": nid(f"{z}:catch"),
        "type": "catch",
        "z": z,
        "name": "database errors",
        "scope": [create["id"], insert["id"], select["id"], write["id"]],
        "uncaught": False,
        "x": 420,
        "y": 320,
        "wires": [[errors["id"]]],
    }
    daily = inject(z, "daily, 00:10", 160, 240, [[day["id"]]], crontab="10 00 * * *", repeat="")
    return [
        t, src, p, row, insert, bad, at_start, create, daily, day, select, csv, write, catch, errors,
        *env_check(z, "event log", 400), *parse_subflow(), BROKER, DB,
    ]  # fmt: skip


# ---- the dashboard (FlowFuse Dashboard 2.0) ----------------------------------------------

UI_BASE: Node = {
    "id": nid("ui-base"),
    "type": "ui-base",
    "name": "tinyml",
    "path": "/dashboard",
    "appIcon": "",
    "includeClientData": True,
    "acceptsClientConfig": ["ui-notification", "ui-control"],
    "showPathInSidebar": False,
    "headerContent": "page",
    "navigationStyle": "default",
    "titleBarStyle": "default",
    "showReconnectNotification": True,
    "notificationDisplayTime": 1,
    "showDisconnectNotification": True,
    "allowInstall": False,
}
UI_THEME: Node = {
    "id": nid("ui-theme"),
    "type": "ui-theme",
    "name": "tinyml",
    "colors": {"surface": "#1f3a5f", "primary": "#0d74ce", "bgPage": "#f9f9fb", "groupBg": "#ffffff", "groupOutline": "#d9d9e0"},
    "sizes": {"density": "default", "pagePadding": "12px", "groupGap": "12px", "groupBorderRadius": "4px", "widgetGap": "12px"},
}  # fmt: skip
UI_PAGE: Node = {
    "id": nid("ui-page:fleet"),
    "type": "ui-page",
    "name": "TinyML fleet",
    "ui": UI_BASE["id"],
    "path": "/fleet",
    "icon": "chip",
    "layout": "grid",
    "theme": UI_THEME["id"],
    "breakpoints": [
        {"name": "Default", "px": 0, "cols": 3},
        {"name": "Tablet", "px": 576, "cols": 6},
        {"name": "Small Desktop", "px": 768, "cols": 9},
        {"name": "Desktop", "px": 1024, "cols": 12},
    ],
    "order": 1,
    "className": "",
    "visible": "true",
    "disabled": "false",
}


def ui_group(name: str, order: int, width: int) -> Node:
    return {
        "id": nid(f"ui-group:{name}"),
        "type": "ui-group",
        "name": name,
        "page": UI_PAGE["id"],
        "width": str(width),
        "height": "1",
        "order": order,
        "showTitle": True,
        "className": "",
        "visible": "true",
        "disabled": "false",
        "groupType": "default",
    }


GROUPS = {g[0]: ui_group(*g) for g in (("Fleet", 1, 12), ("Scores", 2, 6), ("Alerts", 3, 6), ("Gateways", 4, 6), ("Commands", 5, 6))}  # fmt: skip


def ui_table(z: str, name: str, group: str, x: int, y: int, columns: list[tuple[str, str]]) -> Node:
    return {
        "id": nid(f"{z}:table:{name}"),
        "type": "ui-table",
        "z": z,
        "group": GROUPS[group]["id"],
        "name": name,
        "label": name,
        "order": 1,
        "width": 0,
        "height": 0,
        "maxrows": 0,
        "passthru": False,
        "autocols": False,
        "showSearch": False,
        "deselect": True,
        "selectionType": "none",
        "columns": [{"title": title, "key": key, "keyType": "key", "type": "text", "width": "", "align": "start"} for key, title in columns],
        "mobileBreakpoint": "sm",
        "mobileBreakpointType": "defaults",
        "action": "replace",
        "className": "",
        "x": x,
        "y": y,
        "wires": [[]],
    }  # fmt: skip


def flow_dashboard() -> list[Node]:
    t = tab(
        "dashboard",
        "tinyml: dashboard",
        "FlowFuse Dashboard 2.0 at /dashboard/fleet: the fleet, each node's scores, alerts, "
        "the gateways' health, and a form for commands.",
    )
    z = t["id"]
    fleet_table = ui_table(
        z, "Fleet", "Fleet", 900, 80,
        [("node", "node"), ("name", "name"), ("online", "online"), ("label", "last label"), ("score", "score"),
         ("battery_mv", "battery mV"), ("rssi", "RSSI dBm"), ("last_seen", "last seen (UTC)")],
    )  # fmt: skip
    fleet = function(z, "fleet", "fleet", 660, 80, [[fleet_table["id"]]])
    chart_node = {
        "id": nid(f"{z}:chart"),
        "type": "ui-chart",
        "z": z,
        "group": GROUPS["Scores"]["id"],
        "name": "scores",
        "label": "Score per node",
        "order": 1,
        "chartType": "line",
        "category": "topic",
        "categoryType": "msg",
        "xAxisLabel": "",
        "xAxisProperty": "x",
        "xAxisPropertyType": "property",
        "xAxisType": "time",
        "xAxisFormat": "",
        "xAxisFormatType": "auto",
        "yAxisLabel": "score",
        "yAxisProperty": "y",
        "yAxisPropertyType": "property",
        "ymin": "0",
        "ymax": "1",
        "action": "append",
        "stackSeries": False,
        "pointShape": "circle",
        "pointRadius": 3,
        "showLegend": True,
        "removeOlder": 1,
        "removeOlderUnit": "3600",
        "removeOlderPoints": "200",
        "colors": ["#0095FF", "#FF0000", "#FF7F0E", "#2CA02C", "#A347E1", "#D62728", "#FF9896", "#9467BD", "#C5B0D5"],
        "textColor": ["#666666"],
        "textColorDefault": True,
        "gridColor": ["#e5e5e5"],
        "gridColorDefault": True,
        "width": 6,
        "height": 4,
        "className": "",
        "interpolation": "linear",
        "x": 880,
        "y": 140,
        "wires": [[]],
    }  # fmt: skip
    chart = function(z, "score point", "chart", 660, 140, [[chart_node["id"]]])
    alert_table = ui_table(z, "Alerts", "Alerts", 1100, 200, [("time", "time (UTC)"), ("type", "type"), ("severity", "severity"), ("node", "node"), ("text", "what")])  # fmt: skip
    alert_list = function(z, "alert list", "alertlist", 900, 200, [[alert_table["id"]]])
    alerts = function(z, "alerts", "alerts", 660, 200, [[alert_list["id"]]])
    gw_table = ui_table(z, "Gateways", "Gateways", 900, 260, [("gateway", "gateway"), ("online", "online"), ("outbox_queue", "outbox queue"), ("outbox_kib", "outbox KiB"), ("sinks_connected", "sinks connected"), ("nodes_online", "nodes online")])  # fmt: skip
    gw = function(z, "gateway status", "gwstatus", 660, 260, [[gw_table["id"]]])
    ack_text = {
        "id": nid(f"{z}:ack"),
        "type": "ui-text",
        "z": z,
        "group": GROUPS["Commands"]["id"],
        "order": 2,
        "width": 0,
        "height": 0,
        "name": "last answer",
        "label": "last answer",
        "format": "{{msg.payload}}",
        "layout": "row-left",
        "style": False,
        "font": "",
        "fontSize": 16,
        "color": "#717171",
        "wrapText": True,
        "className": "",
        "value": "payload",
        "valueType": "msg",
        "x": 900,
        "y": 320,
        "wires": [],
    }
    ack = function(z, "answer", "ackview", 660, 320, [[ack_text["id"]]])
    bad = debug(z, "not the gateway's", 660, 460)
    p = parse(
        z, 400, 200, [fleet["id"], chart["id"], alerts["id"], gw["id"], ack["id"]], [bad["id"]]
    )
    src = mqtt_in(z, 160, 200, [[p["id"]]])
    send = mqtt_out(z, 660, 400)
    cmd = function(z, "command", "command", 420, 400, [[send["id"]]])
    form = {
        "id": nid(f"{z}:form"),
        "type": "ui-form",
        "z": z,
        "name": "command",
        "group": GROUPS["Commands"]["id"],
        "label": "Send a command",
        "order": 1,
        "width": 0,
        "height": 0,
        "options": [
            {"label": "node id", "key": "node", "type": "text", "required": True, "rows": None},
            {"label": "method (ping, get_info, set_threshold, set_sample_rate, set_heartbeat_period, reboot)", "key": "method", "type": "text", "required": True, "rows": None},
            {"label": "params (JSON or a number)", "key": "params", "type": "text", "required": False, "rows": None},
        ],
        "formValue": {"node": "", "method": "ping", "params": ""},
        "payload": "",
        "submit": "send",
        "cancel": "clear",
        "resetOnSubmit": False,
        "topic": "topic",
        "topicType": "msg",
        "splitLayout": "",
        "className": "",
        "passthru": False,
        "dropdownOptions": [],
        "x": 170,
        "y": 400,
        "wires": [[cmd["id"]]],
    }  # fmt: skip
    slider = {
        "id": nid(f"{z}:slider"),
        "type": "ui-slider",
        "z": z,
        "group": GROUPS["Alerts"]["id"],
        "name": "min score",
        "label": "alert at score",
        "tooltip": "",
        "order": 2,
        "width": 0,
        "height": 0,
        "passthru": False,
        "outs": "end",
        "topic": "tinyml/alert-rules",
        "topicType": "str",
        "thumbLabel": True,
        "showTicks": "always",
        "min": 0,
        "max": 1,
        "step": 0.05,
        "className": "",
        "iconPrepend": "",
        "iconAppend": "",
        "color": "",
        "colorTrack": "",
        "colorThumb": "",
        "showTextField": False,
        "x": 170,
        "y": 300,
        "wires": [[nid(f"{z}:rules")]],
    }
    rules = {
        "id": nid(f"{z}:rules"),
        "type": "change",
        "z": z,
        "name": "as rules",
        "rules": [{"t": "set", "p": "payload", "pt": "msg", "to": "{\"min_score\": payload}", "tot": "jsonata"}],
        "action": "",
        "property": "",
        "from": "",
        "to": "",
        "reg": False,
        "x": 400,
        "y": 300,
        "wires": [[alerts["id"]]],
    }  # fmt: skip
    return [
        t, src, p, fleet, fleet_table, chart, chart_node, alerts, alert_list, alert_table, gw, gw_table,
        ack, ack_text, form, cmd, send, slider, rules, bad, *env_check(z, "dashboard", 40),
        *parse_subflow(), BROKER, UI_BASE, UI_THEME, UI_PAGE, *GROUPS.values(),
    ]  # fmt: skip


# ---- commands from injects ---------------------------------------------------------------

EXAMPLE_NODE = "a1b2c3d4e5f60000"  # the demo's first node
COMMANDS: list[tuple[str, Any]] = [
    ("ping", None),
    ("get_info", None),
    ("set_threshold", {"threshold": 0.7}),
    ("set_sample_rate", {"hz": 10}),
    ("set_heartbeat_period", {"seconds": 30}),
    ("reboot", None),
]


def flow_commands() -> list[Node]:
    t = tab(
        "commands",
        "tinyml: commands",
        f"Each command of docs/topics.md to node {EXAMPLE_NODE} (edit the injects' node), "
        "and the answers from its cmd/ack topic.",
    )
    z = t["id"]
    send = mqtt_out(z, 660, 200)
    cmd = function(z, "command", "command", 420, 200, [[send["id"]]])
    injects = [
        inject(
            z,
            method,
            160,
            60 + 50 * i,
            [[cmd["id"]]],
            props=[{"p": "payload"}],
            payload=json.dumps({"node": EXAMPLE_NODE, "method": method, "params": params}),
            payloadType="json",
        )
        for i, (method, params) in enumerate(COMMANDS)
    ]
    answers = debug(z, "answers", 880, 420, complete="payload")
    view = function(z, "answer", "ackview", 660, 420, [[answers["id"]]])
    only_acks = switch_kind(z, ["cmd_ack"], 480, 420, [[view["id"]]])
    bad = debug(z, "not the gateway's", 480, 480)
    p = parse(z, 300, 420, [only_acks["id"]], [bad["id"]])
    src = mqtt_in(z, 120, 420, [[p["id"]]])
    return [t, *injects, cmd, send, src, p, only_acks, view, answers, bad, *env_check(z, "commands", 500), *parse_subflow(), BROKER]  # fmt: skip


FLOWS = {
    "01-parse.json": flow_parse,
    "02-alerts.json": flow_alerts,
    "03-event-log.json": flow_event_log,
    "04-dashboard.json": flow_dashboard,
    "05-commands.json": flow_commands,
}


def render() -> dict[str, str]:
    out = {}
    for name, make in FLOWS.items():
        nodes = make()
        ids = [n["id"] for n in nodes]
        twice = {i for i in ids if ids.count(i) > 1}
        if twice:
            raise SystemExit(
                f"{name}: two nodes share an id: {[n['name'] for n in nodes if n['id'] in twice]}"
            )
        out[name] = json.dumps(nodes, indent=2) + "\n"
    return out


def main() -> int:
    files = render()
    if "--check" in sys.argv:
        stale = [
            n
            for n, text in files.items()
            if not (OUT / n).exists() or (OUT / n).read_text() != text
        ]
        for n in stale:
            print(
                f"nodered_flows/examples/{n} is out of date: run python nodered_flows/build.py",
                file=sys.stderr,
            )
        return 1 if stale else 0
    OUT.mkdir(exist_ok=True)
    for name, text in files.items():
        (OUT / name).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
