"""Writes the ThingsBoard import files of thingsboard_rules/ from scripts/*.js.

    python thingsboard_rules/build.py          # rewrite them
    python thingsboard_rules/build.py --check  # exit 1 if a committed file is out of date

Each rule node script is one source in the subset of JavaScript that TBEL (ThingsBoard's
default script language, MVEL-based) shares: `var`, `function`, `if`, parenthesised
ternaries, `==` and `!=` against null, string `indexOf`, list `push`, `parseFloat`,
`JSON.parse`. The same text becomes the node's `tbelScript` and its `jsScript`, so the
JavaScript form the tests run in Node.js is the TBEL the server runs. One macro:
`SETTING(name, "default")` becomes the value of the server attribute `name` of the device,
else of its customer, else of the tenant (fetched into the metadata by the chain's
attribute nodes as `ss_name`, `customer_name`, `tenant_name`), else the default.
"""

from __future__ import annotations

import json
import re
import sys
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SCRIPTS = HERE / "scripts"
E = "org.thingsboard.rule.engine."

# the server attributes that tune the node chain (thingsboard_rules/README.md)
NODE_SETTINGS = {
    "tinymlAnomalyLabels": "anomaly",
    "tinymlAnomalyMinScore": "0.8",
    "tinymlCriticalScore": "0.95",
    "tinymlLowBatteryMv": "3300",
}
GATEWAY_SETTINGS = {"tinymlOutboxMaxBytes": "50000000"}
SETTINGS = {**NODE_SETTINGS, **GATEWAY_SETTINGS}
# what the gateway chain compares with the last report: the latest values, fetched before
# this report is saved (flattened health keys, docs/thingsboard.md)
GATEWAY_COUNTERS = [
    "outbox.dropped_cap",
    "outbox.expired",
    "outbox.dropped_events:mqtt",
    "outbox.dropped_events:thingsboard",
    "counters.events_lost_at_node",
    "counters.events_refused_disk_full",
    "sinks.mqtt.publish_refused",
    "sinks.thingsboard.publish_refused",
    "counters.rejected_unauthenticated",
    "totals.frames_bad",
    # when the reporting gateway started: another value means it restarted, and its
    # counters count from 0 again
    "started",
]

Node = dict[str, Any]


def setting(name: str, default: str) -> str:
    return (
        f"(metadata.ss_{name} != null ? metadata.ss_{name} : "
        f"(metadata.customer_{name} != null ? metadata.customer_{name} : "
        f"(metadata.tenant_{name} != null ? metadata.tenant_{name} : {json.dumps(default)})))"
    )


def script(name: str) -> str:
    text = (SCRIPTS / f"{name}.js").read_text()

    def expand(m: re.Match[str]) -> str:
        if m.group(1) not in SETTINGS:
            raise SystemExit(f"scripts/{name}.js: {m.group(1)} is not a setting of SETTINGS")
        return setting(m.group(1), m.group(2))

    return re.sub(r'SETTING\((\w+), "([^"]*)"\)', expand, text)


def node(cls: str, name: str, config: dict[str, Any], x: int, y: int, version: int = 0) -> Node:
    out: Node = {
        "additionalInfo": {"description": "", "layoutX": x, "layoutY": y},
        "type": E + cls,
        "name": name,
        "debugSettings": None,
        "singletonMode": False,
        "queueName": None,
        "configurationVersion": version,
        "configuration": config,
    }
    return out


def scripted(cls: str, name: str, src: str, x: int, y: int) -> Node:
    code = script(src)
    return node(cls, name, {"scriptLang": "TBEL", "jsScript": code, "tbelScript": code}, x, y)


def alarm(
    create: bool,
    name: str,
    alarm_type: str,
    details: str,
    x: int,
    y: int,
    severity: str = "MAJOR",
    dynamic: bool = False,
) -> Node:
    code = script(details)
    config: dict[str, Any] = {
        "alarmType": alarm_type,
        "scriptLang": "TBEL",
        "alarmDetailsBuildJs": code,
        "alarmDetailsBuildTbel": code,
    }
    if create:
        config.update(
            {
                "severity": "${alarmSeverity}" if dynamic else severity,
                "dynamicSeverity": dynamic,
                "propagate": True,
                "propagateToOwner": False,
                "propagateToTenant": False,
                "useMessageAlarmData": False,
                "overwriteAlarmDetails": True,
                "relationTypes": [],
            }
        )
    return node(
        "action.TbCreateAlarmNode" if create else "action.TbClearAlarmNode", name, config, x, y
    )


def fetch(cls: str, name: str, prefix: str, settings: dict[str, str], x: int, y: int) -> Node:
    mapping = {k: f"{prefix}_{k}" for k in settings}
    return node(
        cls,
        name,
        {"dataToFetch": "ATTRIBUTES", "dataMapping": mapping, "fetchTo": "METADATA"},
        x,
        y,
        version=1,
    )


def save_telemetry(x: int, y: int) -> Node:
    config = {
        "defaultTTL": 0,
        "useServerTs": False,
        "processingSettings": {"type": "ON_EVERY_MESSAGE"},
    }
    return node("telemetry.TbMsgTimeseriesNode", "save telemetry", config, x, y, version=1)


def save_attributes(x: int, y: int) -> Node:
    config = {
        "processingSettings": {"type": "ON_EVERY_MESSAGE"},
        "scope": "CLIENT_SCOPE",
        "notifyDevice": False,
        "sendAttributesUpdatedNotification": False,
        "updateAttributesOnlyOnValueChange": True,
    }
    return node("telemetry.TbMsgAttributesNode", "save client attributes", config, x, y, version=3)


def own_attributes(name: str, settings: dict[str, str], latest: list[str], x: int, y: int) -> Node:
    """The device's server attributes (thresholds, as ss_<name>) and latest telemetry values."""
    config = {
        "clientAttributeNames": [],
        "sharedAttributeNames": [],
        "serverAttributeNames": list(settings),
        "latestTsKeyNames": latest,
        "tellFailureIfAbsent": False,
        "getLatestValueWithTs": False,
        "fetchTo": "METADATA",
    }
    return node("metadata.TbGetAttributesNode", name, config, x, y, version=1)


ANOMALY = "TinyML anomaly"
DISAGREEMENT = "TinyML verification disagreement"
LOW_BATTERY = "TinyML low battery"
OFFLINE = "TinyML node offline"


def node_chain() -> dict[str, Any]:
    nodes = [
        node("filter.TbMsgTypeSwitchNode", "message type", {"version": 0}, 300, 150),  # 0
        save_telemetry(600, 50),  # 1
        save_attributes(600, 350),  # 2
        own_attributes("device thresholds", NODE_SETTINGS, [], 600, 150),  # 3
        fetch(
            "metadata.TbGetCustomerAttributeNode",
            "customer thresholds",
            "customer",
            NODE_SETTINGS,
            850,
            150,
        ),  # 4
        fetch(
            "metadata.TbGetTenantAttributeNode",
            "tenant thresholds",
            "tenant",
            NODE_SETTINGS,
            1100,
            150,
        ),  # 5
        scripted("filter.TbJsSwitchNode", "classify", "classify_node", 1350, 150),  # 6
        scripted(
            "transform.TbTransformMsgNode", "anomaly severity", "anomaly_severity", 1600, 0
        ),  # 7
        alarm(True, "anomaly", ANOMALY, "anomaly_details", 1850, 0, dynamic=True),  # 8
        alarm(False, "no anomaly", ANOMALY, "keep_details", 1600, 80),  # 9
        alarm(
            True, "verification disagreement", DISAGREEMENT, "disagreement_details", 1600, 160
        ),  # 10
        alarm(False, "verification agreement", DISAGREEMENT, "keep_details", 1600, 240),  # 11
        alarm(
            True, "low battery", LOW_BATTERY, "battery_details", 1600, 320, severity="WARNING"
        ),  # 12
        alarm(False, "battery ok", LOW_BATTERY, "keep_details", 1600, 400),  # 13
        scripted("filter.TbJsSwitchNode", "online attribute", "online_switch", 850, 350),  # 14
        alarm(True, "node offline", OFFLINE, "offline_details", 1100, 450),  # 15
        alarm(False, "node online", OFFLINE, "keep_details", 1100, 550),  # 16
        node(
            "rpc.TbSendRPCRequestNode", "RPC to the node", {"timeoutInSeconds": 60}, 600, 550
        ),  # 17
    ]
    connections = [
        (0, 1, "Post telemetry"),
        (0, 3, "Post telemetry"),
        (0, 2, "Post attributes"),
        (0, 14, "Post attributes"),
        (0, 15, "Inactivity Event"),
        (0, 16, "Activity Event"),
        (0, 17, "RPC Request to Device"),
        (3, 4, "Success"),
        (3, 4, "Failure"),
        (4, 5, "Success"),
        (4, 5, "Failure"),  # a device that belongs to no customer
        (5, 6, "Success"),
        (5, 6, "Failure"),
        (6, 7, "Anomaly"),
        (7, 8, "Success"),
        (6, 9, "No anomaly"),
        (6, 10, "Disagreement"),
        (6, 11, "Agreement"),
        (6, 12, "Low battery"),
        (6, 13, "Battery ok"),
        (14, 15, "Offline"),
        (14, 16, "Online"),
    ]
    return rule_chain(
        "TinyML node",
        "tinyml-node devices of the tinyml-gateway: telemetry, attributes, alarms, RPC",
        nodes,
        connections,
    )


def rule_chain(
    name: str, description: str, nodes: list[Node], connections: list[tuple[int, int, str]]
) -> dict[str, Any]:
    return {
        "ruleChain": {
            "additionalInfo": {"description": description},
            "name": name,
            "type": "CORE",
            "firstRuleNodeId": None,
            "root": False,
            "debugMode": False,
            "configuration": None,
        },
        "metadata": {
            "version": 1,
            "firstNodeIndex": 0,
            "nodes": nodes,
            "connections": [{"fromIndex": a, "toIndex": b, "type": t} for a, b, t in connections],
            "ruleChainConnections": None,
        },
    }


OUTBOX = "TinyML gateway outbox growing"
SINK = "TinyML gateway sink disconnected"
DROPPED = "TinyML gateway dropped events"
REFUSED = "TinyML gateway publish refused"
REJECTED = "TinyML gateway input rejected"


def gateway_chain() -> dict[str, Any]:
    pairs = [
        (OUTBOX, "Outbox growing", "Outbox ok", "MAJOR"),
        (SINK, "Sink disconnected", "Sinks connected", "MAJOR"),
        (DROPPED, "Events dropped", "Nothing dropped", "CRITICAL"),
        (REFUSED, "Publish refused", "No refusals", "WARNING"),
        (REJECTED, "Input rejected", "No rejections", "WARNING"),
    ]
    nodes = [
        node("filter.TbMsgTypeSwitchNode", "message type", {"version": 0}, 300, 150),  # 0
        own_attributes(
            "last report and thresholds", GATEWAY_SETTINGS, GATEWAY_COUNTERS, 600, 150
        ),  # 1
        fetch(
            "metadata.TbGetCustomerAttributeNode",
            "customer thresholds",
            "customer",
            GATEWAY_SETTINGS,
            850,
            150,
        ),  # 2
        fetch(
            "metadata.TbGetTenantAttributeNode",
            "tenant thresholds",
            "tenant",
            GATEWAY_SETTINGS,
            1100,
            150,
        ),  # 3
        scripted("filter.TbJsSwitchNode", "classify", "classify_gateway", 1350, 150),  # 4
        save_telemetry(1350, 20),  # 5
        save_attributes(600, 350),  # 6
        node(
            "rpc.TbSendRPCRequestNode", "RPC to the gateway", {"timeoutInSeconds": 60}, 600, 450
        ),  # 7
    ]
    connections = [
        (0, 1, "Post telemetry"),
        (0, 6, "Post attributes"),
        (0, 7, "RPC Request to Device"),
        (1, 2, "Success"),
        (1, 2, "Failure"),
        (2, 3, "Success"),
        (2, 3, "Failure"),
        (3, 4, "Success"),
        (3, 4, "Failure"),
        (3, 5, "Success"),  # saved once the last report's values are read
        (3, 5, "Failure"),
    ]
    for i, (alarm_type, raise_on, clear_on, severity) in enumerate(pairs):
        y = 300 + 100 * i
        nodes.append(
            alarm(True, raise_on.lower(), alarm_type, "gateway_details", 1650, y, severity=severity)
        )
        nodes.append(alarm(False, clear_on.lower(), alarm_type, "keep_details", 1900, y))
        connections += [(4, len(nodes) - 2, raise_on), (4, len(nodes) - 1, clear_on)]
    return rule_chain(
        "TinyML gateway",
        "the tinyml-gateway device's own health: outbox, sinks, dropped events, refusals, rejected input",
        nodes,
        connections,
    )


def device_profile(
    name: str = "tinyml-node",
    description: str = "A TinyML sensor node behind a tinyml-gateway (thingsboard_rules/README.md)",
) -> dict[str, Any]:
    """A profile whose default rule chain (set when imported) handles its devices: MQTT
    transport, no profile alarm rules (the chains raise the alarms)."""
    return {
        "name": name,
        "description": description,
        "type": "DEFAULT",
        "transportType": "MQTT",
        "provisionType": "DISABLED",
        "image": None,
        "defaultRuleChainId": None,
        "defaultDashboardId": None,
        "defaultQueueName": None,
        "provisionDeviceKey": None,
        "firmwareId": None,
        "softwareId": None,
        "defaultEdgeRuleChainId": None,
        "default": False,
        "profileData": {
            "configuration": {"type": "DEFAULT"},
            "transportConfiguration": {
                "type": "MQTT",
                "deviceTelemetryTopic": "v1/devices/me/telemetry",
                "deviceAttributesTopic": "v1/devices/me/attributes",
                "deviceAttributesSubscribeTopic": "v1/devices/me/attributes",
                "transportPayloadTypeConfiguration": {"transportPayloadType": "JSON"},
                "sparkplug": False,
                "sendAckOnValidationException": False,
            },
            "provisionConfiguration": {"type": "DISABLED", "provisionDeviceSecret": None},
            "alarms": None,
        },
    }


# ---- dashboards --------------------------------------------------------------------------

COLORS = ["#2196f3", "#4caf50", "#f44336", "#ffc107", "#607d8b", "#9c27b0", "#ff9800", "#795548"]


def uid(name: str) -> str:
    """A stable id for a dashboard part (widgets, aliases, actions): the same on every build."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"tinyml-gateway:{name}"))


def alias(name: str, device_type: str | None) -> dict[str, Any]:
    """Devices by type, or the entity a dashboard state was opened for: never an entity id."""
    if device_type is None:
        flt: dict[str, Any] = {
            "type": "stateEntity",
            "resolveMultiple": False,
            "stateEntityParamName": None,
            "defaultStateEntity": None,
        }
    else:
        flt = {
            "type": "deviceType",
            "resolveMultiple": True,
            "deviceNameFilter": "",
            "deviceTypes": [device_type],
        }
    return {"id": uid(f"alias:{name}"), "alias": name, "filter": flt}


def key(name: str, kind: str, label: str, i: int, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "type": kind,
        "label": label,
        "color": COLORS[i % len(COLORS)],
        "settings": {},
        "_hash": round(0.1 + i / 100, 3),
        **extra,
    }


def datasource(alias_: dict[str, Any], keys: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "entity",
        "name": None,
        "entityAliasId": alias_["id"],
        "filterId": None,
        "dataKeys": keys,
    }


def widget(
    name: str,
    fqn: str,
    kind: str,
    title: str,
    size: tuple[int, int, int, int],
    config: dict[str, Any],
) -> dict[str, Any]:
    cols, rows, row, col = size
    return {
        "id": uid(f"widget:{name}"),
        "typeFullFqn": fqn,
        "type": kind,
        "sizeX": cols,
        "sizeY": rows,
        "row": row,
        "col": col,
        "config": {
            "title": title,
            "showTitle": True,
            "useDashboardTimewindow": True,
            "actions": {},
            "settings": {},
            **config,
        },
    }


def alarms_widget(
    name: str, source: dict[str, Any], types: list[str], size: tuple[int, int, int, int]
) -> dict[str, Any]:
    columns = [
        ("createdTime", "Created"),
        ("originator", "Device"),
        ("type", "Type"),
        ("severity", "Severity"),
        ("status", "Status"),
    ]
    return widget(
        name,
        "system.alarm_widgets.alarms_table",
        "alarm",
        "Alarms",
        size,
        {
            "alarmSource": datasource(
                source, [key(k, "alarm", label, i) for i, (k, label) in enumerate(columns)]
            ),
            "alarmTypeList": types,
            "alarmStatusList": ["ACTIVE"],
            "alarmSeverityList": [],
            "searchPropagatedAlarms": False,
            "alarmsPollingInterval": 5,
            "settings": {
                "enableSearch": True,
                "displayDetails": True,
                "allowAcknowledgment": True,
                "allowClear": True,
                "defaultSortOrder": "-createdTime",
                "alarmsTitle": "Alarms",
            },
        },
    )


def chart(
    name: str,
    source: dict[str, Any],
    title: str,
    keys: list[tuple[str, str]],
    size: tuple[int, int, int, int],
) -> dict[str, Any]:
    return widget(
        name,
        "system.time_series_chart",
        "timeseries",
        title,
        size,
        {
            "datasources": [
                datasource(
                    source, [key(k, "timeseries", label, i) for i, (k, label) in enumerate(keys)]
                )
            ]
        },
    )


def table(
    name: str,
    source: dict[str, Any],
    title: str,
    keys: list[tuple[str, str, str]],
    size: tuple[int, int, int, int],
    actions: dict[str, Any] | None = None,
) -> dict[str, Any]:
    w = widget(
        name,
        "system.cards.entities_table",
        "latest",
        title,
        size,
        {
            "datasources": [
                datasource(
                    source, [key(k, kind, label, i) for i, (k, kind, label) in enumerate(keys)]
                )
            ],
            "settings": {
                "entitiesTitle": title,
                "enableSearch": True,
                "displayEntityName": True,
                "entityNameColumnTitle": "Device",
                "displayPagination": True,
                "defaultPageSize": 20,
            },
        },
    )
    if actions:
        w["config"]["actions"] = actions
    return w


def rpc_button(
    name: str,
    source: dict[str, Any],
    text: str,
    method: str,
    params: Any,
    size: tuple[int, int, int, int],
) -> dict[str, Any]:
    """One command to the node of the state: ThingsBoard sends the RPC to the device, the
    gateway's sink takes it to the node (docs/thingsboard.md) and answers with its ack."""
    return widget(
        name,
        "system.control_widgets.rpcbutton",
        "rpc",
        text,
        size,
        {
            "targetDevice": {"type": "entity", "entityAliasId": source["id"]},
            "targetDeviceAliasIds": [source["id"]],
            "settings": {
                "requestTimeout": 10000,
                "oneWayElseTwoWay": False,
                "buttonText": text,
                "methodName": method,
                "methodParams": json.dumps(params),
            },
        },
    )


def state(name: str, title: str, root: bool, widgets: list[dict[str, Any]]) -> dict[str, Any]:
    layout = {
        w["id"]: {"sizeX": w["sizeX"], "sizeY": w["sizeY"], "row": w["row"], "col": w["col"]}
        for w in widgets
    }
    return {
        "name": title,
        "root": root,
        "layouts": {
            "main": {
                "widgets": layout,
                "gridSettings": {"columns": 24, "margin": 10, "backgroundColor": "#eeeeee"},
            }
        },
    }


NODE_ALARMS = [ANOMALY, DISAGREEMENT, LOW_BATTERY, OFFLINE]
GATEWAY_ALARMS = [OUTBOX, SINK, DROPPED, REFUSED, REJECTED]


def dashboard(
    title: str,
    description: str,
    aliases: list[dict[str, Any]],
    states: dict[str, tuple[str, bool, list[dict[str, Any]]]],
) -> dict[str, Any]:
    widgets = {w["id"]: w for _, _, ws in states.values() for w in ws}
    return {
        "title": title,
        "image": None,
        "mobileHide": False,
        "mobileOrder": None,
        "configuration": {
            "description": description,
            "widgets": widgets,
            "states": {sid: state(sid, t, root, ws) for sid, (t, root, ws) in states.items()},
            "entityAliases": {a["id"]: a for a in aliases},
            "filters": {},
            "timewindow": {
                "realtime": {"timewindowMs": 3_600_000, "interval": 10_000},
                "aggregation": {"type": "NONE", "limit": 5000},
            },
            "settings": {
                "stateControllerId": "entity",
                "showTitle": True,
                "showDashboardsSelect": True,
                "showEntitiesSelect": True,
                "showDashboardTimewindow": True,
                "showDashboardExport": True,
                "toolbarAlwaysOpen": True,
            },
        },
        "name": title,
    }


def fleet_dashboard() -> dict[str, Any]:
    nodes, node = alias("TinyML nodes", "tinyml-node"), alias("TinyML node", None)
    open_node = {
        "rowClick": [
            {
                "id": uid("action:open node"),
                "name": "Node detail",
                "icon": "more_horiz",
                "type": "openDashboardState",
                "targetDashboardStateId": "node",
                "setEntityId": True,
                "stateEntityParamName": None,
                "openRightLayout": False,
                "openInSeparateDialog": False,
                "openInPopover": False,
            }
        ]
    }
    fleet = table(
        "fleet",
        nodes,
        "Fleet",
        [
            ("online", "attribute", "Online"),
            ("label", "timeseries", "Last label"),
            ("score", "timeseries", "Score"),
            ("battery_mv", "timeseries", "Battery mV"),
            ("rssi", "timeseries", "RSSI dBm"),
            ("agreement", "timeseries", "Gateway agrees"),
            ("model_name", "attribute", "Model"),
            ("firmware_version", "attribute", "Firmware"),
        ],
        (24, 8, 0, 0),
        open_node,
    )
    detail = [
        chart(
            "scores",
            node,
            "Scores",
            [("score", "Score"), ("gateway_score", "Gateway's score")],
            (12, 6, 0, 0),
        ),
        chart(
            "labels",
            node,
            "Labels",
            [("label_index", "Node's label"), ("gateway_label_index", "Gateway's label")],
            (12, 6, 0, 12),
        ),
        chart(
            "heartbeat",
            node,
            "Heartbeat",
            [
                ("battery_mv", "Battery mV"),
                ("temperature_c", "Temperature °C"),
                ("rssi", "RSSI dBm"),
                ("rx_errors", "RX errors"),
                ("events_dropped", "Events dropped"),
            ],
            (12, 6, 6, 0),
        ),
        alarms_widget("node alarms", node, NODE_ALARMS, (12, 6, 6, 12)),
        rpc_button(
            "threshold", node, "Threshold 0.7", "set_threshold", {"threshold": 0.7}, (6, 3, 12, 0)
        ),
        rpc_button(
            "sample rate", node, "Sample rate 10 Hz", "set_sample_rate", {"hz": 10}, (6, 3, 12, 6)
        ),
        rpc_button("ping", node, "Ping", "ping", {}, (6, 3, 12, 12)),
        rpc_button("info", node, "Get info", "get_info", {}, (6, 3, 12, 18)),
    ]
    return dashboard(
        "TinyML fleet",
        "The tinyml-node devices of every tinyml-gateway: click a node for its detail.",
        [nodes, node],
        {
            "default": (
                "TinyML fleet",
                True,
                [fleet, alarms_widget("fleet alarms", nodes, NODE_ALARMS, (24, 7, 8, 0))],
            ),
            "node": ("${entityName}", False, detail),
        },
    )


def gateway_dashboard() -> dict[str, Any]:
    gws = alias("TinyML gateways", "tinyml-gateway")
    widgets = [
        table(
            "gateways",
            gws,
            "Gateways",
            [
                ("online", "timeseries", "Online"),
                ("version", "timeseries", "Version"),
                ("uptime_s", "timeseries", "Uptime s"),
                ("nodes.online", "timeseries", "Nodes online"),
                ("nodes.known", "timeseries", "Nodes known"),
                ("outbox.used_bytes", "timeseries", "Outbox bytes"),
                ("sinks.mqtt.connected", "timeseries", "Node-RED bridge"),
                ("sinks.thingsboard.delivered", "timeseries", "Delivered here"),
            ],
            (24, 5, 0, 0),
        ),
        chart(
            "outbox",
            gws,
            "Outbox",
            [("outbox.used_bytes", "Bytes"), ("outbox.queue", "Ingest queue")],
            (12, 6, 5, 0),
        ),
        chart(
            "events",
            gws,
            "Events and losses",
            [
                ("counters.events", "Events"),
                ("counters.duplicates", "Duplicates"),
                ("outbox.dropped_cap", "Dropped at the cap"),
                ("totals.frames_bad", "Bad frames"),
                ("counters.rejected_unauthenticated", "Unauthenticated"),
            ],
            (12, 6, 5, 12),
        ),
        alarms_widget("gateway alarms", gws, GATEWAY_ALARMS, (24, 6, 11, 0)),
    ]
    return dashboard(
        "TinyML gateway health",
        "The tinyml-gateway devices' own health.",
        [gws],
        {"default": ("TinyML gateway health", True, widgets)},
    )


FILES = {
    "rule_chains/tinyml_node.json": node_chain,
    "rule_chains/tinyml_gateway.json": gateway_chain,
    "device_profiles/tinyml_node.json": device_profile,
    "device_profiles/tinyml_gateway.json": lambda: device_profile(
        "tinyml-gateway", "The device a tinyml-gateway connects as (thingsboard_rules/README.md)"
    ),
    "dashboards/tinyml_fleet.json": fleet_dashboard,
    "dashboards/tinyml_gateway.json": gateway_dashboard,
}


def render() -> dict[str, str]:
    return {name: json.dumps(make(), indent=2) + "\n" for name, make in FILES.items()}


def main() -> int:
    files = render()
    if "--check" in sys.argv:
        stale = [
            n for n, t in files.items() if not (HERE / n).exists() or (HERE / n).read_text() != t
        ]
        for n in stale:
            print(
                f"thingsboard_rules/{n} is out of date: run python thingsboard_rules/build.py",
                file=sys.stderr,
            )
        return 1 if stale else 0
    for name, text in files.items():
        (HERE / name).parent.mkdir(parents=True, exist_ok=True)
        (HERE / name).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
