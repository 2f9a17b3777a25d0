// Unit tests of every function node's logic: node --test nodered_flows/test/
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const { load } = require("./sandbox");

const NODE = "a1b2c3d4e5f60000";
const T = 1796170000000;

function event(seq, over = {}) {
  return {
    schema: 1, kind: "event", gateway: "gw", node: NODE, name: "press-1", group: "hall", boot: 1, seq,
    ts: T + seq, clock_synced: true, uptime_ms: seq, transport: "serial", key: `${NODE}:1:${seq}`,
    label: "walking", label_index: 3, score: 0.5, score_raw: 32768, score_scale: 65535,
    model_id: "91e3fbd4", inference_us: 900, ...over,
  };
}

function heartbeat(mv) {
  return {
    schema: 1, kind: "heartbeat", gateway: "gw", node: NODE, name: "press-1", group: "hall", boot: 1, seq: 1,
    ts: T, clock_synced: true, uptime_ms: 1, transport: "serial", battery_mv: mv, temperature_c: 21.5,
    inferences: 10, events_dropped: 0, retx_floor: 2, rx_errors: 0,
  };
}

function status(online) {
  return {
    schema: 1, kind: "status", gateway: "gw", node: NODE, name: "press-1", group: "hall", boot: 1, seq: 1,
    ts: T, clock_synced: true, uptime_ms: 0, transport: "serial", online, reason: online ? "message received" : "heartbeat timeout",
  };
}

const topic = (kind) => `tinyml/gw/${NODE}/${kind}`;

test("parse: each kind of the gateway's messages comes out clean", () => {
  const f = load("parse");
  for (const [kind, p] of [["event", event(1)], ["heartbeat", heartbeat(3000)], ["status", status(false)]]) {
    const [ok, bad] = f.run({ topic: topic(kind), payload: Buffer.from(JSON.stringify(p)) });
    assert.equal(bad, null);
    assert.equal(ok.kind, kind);
    assert.equal(ok.node, NODE);
    assert.equal(ok.payload.time, new Date(p.ts).toISOString());
  }
  const [gw] = f.run({ topic: "tinyml/gw/status", payload: { schema: 1, kind: "gateway", gateway: "gw", online: true } });
  assert.equal(gw.kind, "gateway");
  const [ack] = f.run({ topic: `tinyml/gw/${NODE}/cmd/ack`, payload: '{"id":1,"ok":true,"status":"ok"}' });
  assert.equal(ack.kind, "cmd_ack");
});

test("parse: bad messages leave by the second output with a reason", () => {
  const f = load("parse");
  const cases = [
    [{ topic: "other/thing", payload: "{}" }, /not one of the gateway's/],
    [{ topic: "tinyml/gw/XYZ/event", payload: "{}" }, /not a node id/],
    [{ topic: topic("event"), payload: "{not json" }, /not JSON/],
    [{ topic: topic("event"), payload: "[1,2]" }, /not a JSON object/],
    [{ topic: topic("event"), payload: event(1, { schema: 2 }) }, /schema 2/],
    [{ topic: topic("event"), payload: heartbeat(3000) }, /kind "heartbeat" on a event topic/],
    [{ topic: topic("event"), payload: event(1, { node: "0000000000000001" }) }, /on the topic of/],
    [{ topic: topic("event"), payload: event(1, { score: "high" }) }, /score is "high", not a number/],
    [{ topic: topic("event"), payload: (({ key, ...rest }) => rest)(event(1)) }, /key is missing/],
    [{ topic: topic("status"), payload: status(true) && { ...status(true), online: null } }, /online is null/],
  ];
  for (const [msg, reason] of cases) {
    const [ok, bad] = f.run(msg);
    assert.equal(ok, null, JSON.stringify(msg));
    assert.match(bad.reason, reason);
  }
});

test("parse: values out of range or too large leave by the second output", () => {
  const f = load("parse");
  const big = "x".repeat(1024 * 1024);
  const cases = [
    [event(1, { score: 7 }), /score is 7, outside 0..1/],
    [event(1, { score: -0.1 }), /score is -0.1/],
    [event(1, { seq: 1.5 }), /seq is 1.5, not a whole number/],
    [event(0), /seq 0/],
    [event(1, { boot: -1 }), /boot is -1/],
    [event(1, { label_index: 40 }), /label_index is 40/],
    [event(1, { label: big }), /payload of \d+ bytes, more than the 65536/],
    [event(1, { label: "l".repeat(1000) }), /label has 1000 characters/],
    [event(1, { name: "n".repeat(300 * 1024) }), /payload of \d+ bytes/],
    [event(1, { name: "n".repeat(300) }), /name has 300 characters/],
    [event(1, { model_id: "not hex!" }), /model_id/],
    [heartbeat(1e9), /battery_mv is 1000000000/],
  ];
  for (const [p, reason] of cases) {
    const [ok, bad] = f.run({ topic: topic(p.kind), payload: JSON.stringify(p) });
    assert.equal(ok, null, JSON.stringify(p).slice(0, 200));
    assert.match(bad.reason, reason);
  }
  // a payload over the size limit is refused before it is parsed
  const [, bad] = f.run({ topic: topic("event"), payload: Buffer.alloc(70000, 32) });
  assert.match(bad.reason, /payload of 70000 bytes/);
  // and the edges of the ranges pass
  const [ok] = f.run({ topic: topic("event"), payload: JSON.stringify(event(1, { score: 1, label_index: 31 })) });
  assert.ok(ok);
});

function alerts(vars, clock = { now: T }, context = undefined) {
  const f = load("alerts", { TINYML_ALERT_LABELS: "badminton", TINYML_ALERT_MIN_SCORE: "0.8", ...vars }, undefined, clock, context);
  const parse = load("parse");
  return {
    f,
    send: (kind, p) => {
      const [ok] = parse.run({ topic: topic(kind), payload: JSON.stringify(p) });
      return f.run(ok);
    },
  };
}

test("alerts: anomalies by label and score, once per key, rate-limited per node", () => {
  const { send } = alerts({ TINYML_ALERT_INTERVAL_S: "300" });
  assert.equal(send("event", event(1, { label: "walking", score: 0.99 })), null);
  assert.equal(send("event", event(2, { label: "badminton", score: 0.5 })), null);
  send("heartbeat", heartbeat(3000));
  const a = send("event", event(3, { label: "badminton", score: 0.99 }));
  assert.equal(a.payload.type, "anomaly");
  assert.equal(a.payload.severity, "critical");
  assert.equal(a.payload.key, `${NODE}:1:3`);
  assert.equal(a.payload.heartbeat.battery_mv, 3000);
  assert.equal(send("event", event(3, { label: "badminton", score: 0.99 })), null); // same key
  assert.equal(send("event", event(4, { label: "badminton", score: 0.9 })), null); // rate limit
});

test("alerts: a node's own rule may set its rate limit", () => {
  const rules = JSON.stringify({ nodes: { [NODE]: { interval_s: 3600 } } });
  const { send } = alerts({ TINYML_ALERT_RULES: rules, TINYML_ALERT_INTERVAL_S: "0" });
  assert.ok(send("event", event(1, { label: "badminton", score: 0.9 })));
  assert.equal(send("event", event(2, { label: "badminton", score: 0.9 })), null);
});

test("alerts: the rate limit lets the next one through with the count it held back", () => {
  const clock = { now: T };
  const { send } = alerts({ TINYML_ALERT_INTERVAL_S: "60" }, clock);
  assert.ok(send("event", event(1, { label: "badminton", score: 0.9 })));
  clock.now += 59_999;
  assert.equal(send("event", event(2, { label: "badminton", score: 0.9 })), null);
  clock.now += 1; // the interval has passed
  const a = send("event", event(3, { label: "badminton", score: 0.9 }));
  assert.equal(a.payload.suppressed, 1);
});

test("alerts: per-group and per-node rules, and the dashboard's control", () => {
  const rules = JSON.stringify({ groups: { hall: { min_score: 0.95 } }, nodes: { [NODE]: { labels: ["running"] } } });
  const { f, send } = alerts({ TINYML_ALERT_RULES: rules, TINYML_ALERT_INTERVAL_S: "0" });
  assert.equal(send("event", event(1, { label: "badminton", score: 0.99 })), null); // node: running only
  assert.equal(send("event", event(2, { label: "running", score: 0.9 })), null); // group: 0.95
  assert.ok(send("event", event(3, { label: "running", score: 0.96 })));
  f.run({ topic: "tinyml/alert-rules", payload: { nodes: { [NODE]: { labels: ["standing"], min_score: 0.5 } } } });
  assert.equal(send("event", event(4, { label: "standing", score: 0.6 })).payload.label, "standing");
});

test("alerts: verification disagreements, and events without verification fields", () => {
  const { send } = alerts({});
  const a = send("event", event(1, { verified: true, agreement: false, verify_alert: true, gateway_label: "running", gateway_score: 0.99 }));
  assert.equal(a.payload.type, "verification");
  assert.equal(a.payload.gateway_label, "running");
  assert.equal(send("event", event(2, { verified: true, agreement: true, verify_alert: false })), null);
  assert.equal(send("event", event(3)), null); // a gateway that does not verify
});

test("alerts: offline, back online, low battery with hysteresis", () => {
  const { send } = alerts({ TINYML_LOW_BATTERY_MV: "3300", TINYML_ALERT_INTERVAL_S: "0" });
  assert.equal(send("status", status(true)), null); // online from the start: nothing to say
  assert.equal(send("status", status(false)).payload.type, "offline");
  assert.equal(send("status", status(false)), null);
  assert.equal(send("status", status(true)).payload.type, "online");
  assert.equal(send("heartbeat", heartbeat(3350)), null);
  assert.equal(send("heartbeat", heartbeat(3250)).payload.type, "low_battery");
  assert.equal(send("heartbeat", heartbeat(3299)), null); // still low: said once
  assert.equal(send("heartbeat", heartbeat(3350)), null); // not yet recovered (hysteresis)
  assert.equal(send("heartbeat", heartbeat(3250)), null);
  assert.equal(send("heartbeat", heartbeat(3450)), null); // recovered
  assert.equal(send("heartbeat", heartbeat(3200)).payload.type, "low_battery");
});

test("alerts: a bad number in the environment is reported and the default used", () => {
  const { f, send } = alerts({ TINYML_ALERT_MIN_SCORE: "high" });
  assert.ok(send("event", event(1, { label: "badminton", score: 0.85 })));
  assert.match(f.log.warnings.join(" "), /TINYML_ALERT_MIN_SCORE="high" is not a number/);
});

test("command: to the gateway the node was heard through, each documented method", () => {
  const parse = load("parse");
  const f = load("command", {}, parse.global); // Node-RED's global context, shared
  assert.equal(f.run({ payload: { node: NODE, method: "ping" } }), null); // no gateway known yet
  assert.match(f.log.errors[0], /no gateway known/);
  parse.run({ topic: `tinyml/site-7/${NODE}/heartbeat`, payload: { ...heartbeat(3000), gateway: "site-7" } });
  const out = f.run({ payload: { node: NODE, method: "set_threshold", params: '{"threshold": 0.7}' } });
  assert.equal(out.topic, `tinyml/site-7/${NODE}/cmd`);
  assert.deepEqual(JSON.parse(out.payload), { id: 1, method: "set_threshold", params: { threshold: 0.7 } });
  const bare = f.run({ payload: { node: NODE, method: "set_sample_rate", params: "10" } });
  assert.deepEqual(JSON.parse(bare.payload), { id: 2, method: "set_sample_rate", params: 10 });
  assert.equal(f.run({ payload: { node: NODE, method: "format_disk" } }), null);
  assert.match(f.log.errors.at(-1), /not one of ping, get_info/);
  assert.equal(f.run({ payload: { node: "nope", method: "ping" } }), null);
});

test("event log: one row per event, with the verdict when there is one", () => {
  const f = load("eventlog");
  const parse = load("parse");
  const [ok] = parse.run({ topic: topic("event"), payload: event(5, { verified: true, agreement: false, gateway_label: "running" }) });
  const out = f.run(ok);
  assert.equal(out.params.$key, `${NODE}:1:5`);
  assert.equal(out.params.$agreement, 0);
  assert.equal(out.params.$gateway_label, "running");
  assert.equal(JSON.parse(out.params.$payload).seq, 5);
  const [hb] = parse.run({ topic: topic("heartbeat"), payload: heartbeat(3000) });
  assert.equal(f.run(hb), null);
});

test("csv export: yesterday by default, or the day named, and a file in TINYML_CSV_DIR", () => {
  const f = load("csvexport", { TINYML_CSV_DIR: "/data/" });
  const out = f.run({ payload: "2026-12-01" });
  assert.equal(out.params.$from, Date.UTC(2026, 11, 1));
  assert.equal(out.params.$to - out.params.$from, 86400000);
  assert.equal(out.filename, "/data/tinyml-events-2026-12-01.csv");
  const clock = { now: Date.UTC(2026, 11, 2, 0, 10) };
  const y = load("csvexport", { TINYML_CSV_DIR: "/data" }, undefined, clock).run({ payload: clock.now });
  assert.equal(y.params.$from, Date.UTC(2026, 11, 1));
  assert.equal(load("csvexport", {}).run({ payload: 1 }), null);
});

test("dashboard: fleet rows, chart points, alert list, gateway rows, answers", () => {
  const parse = load("parse");
  const clean = (kind, p) => parse.run({ topic: topic(kind), payload: p })[0];
  const fleet = load("fleet");
  fleet.run(clean("heartbeat", { ...heartbeat(3100), rssi: -60 }));
  const table = fleet.run(clean("event", event(1, { label: "running", score: 0.9 }))).payload;
  assert.deepEqual(
    [table[0].node, table[0].name, table[0].label, table[0].score, table[0].battery_mv, table[0].rssi, table[0].online],
    [NODE, "press-1", "running", 0.9, 3100, -60, true],
  );
  assert.equal(fleet.run(clean("status", status(false))).payload[0].online, false);
  const point = load("chart").run(clean("event", event(2, { score: 0.4 })));
  assert.deepEqual(point, { topic: "press-1", payload: { x: T + 2, y: 0.4 } });
  const list = load("alertlist");
  for (let i = 0; i < 60; i++) list.run({ payload: { ts: T + i, type: "anomaly", severity: "major", node: NODE, name: "press-1", text: `#${i}` } });
  const shown = list.run({ payload: { ts: T, type: "offline", severity: "major", node: NODE, name: null, text: "offline" } }).payload;
  assert.equal(shown.length, 10);
  assert.equal(shown[0].type, "offline");
  assert.equal(shown[0].node, NODE);
  const gw = parse.run({ topic: "tinyml/gw/status", payload: { schema: 1, kind: "gateway", gateway: "gw", online: true, outbox: { queue: 3, used_bytes: 4096 }, sinks: { mqtt: { connected: true }, thingsboard: { connected: false } }, nodes: { known: 4, online: 3 } } })[0];
  const rows = load("gwstatus").run(gw).payload;
  assert.deepEqual(rows[0], { gateway: "gw", online: true, outbox_queue: 3, outbox_kib: 4, sinks_connected: "mqtt", nodes_online: "3 of 4" });
  const [ack] = parse.run({ topic: `tinyml/gw/${NODE}/cmd/ack`, payload: '{"id":7,"ok":false,"status":"timeout","error":"no answer"}' });
  assert.equal(load("ackview").run(ack).payload, `#7 ${NODE}: timeout no answer`);
});

test("environment check: names each unset variable, and the defaults in effect", () => {
  const f = load("envcheck", { MQTT_HOST: "h", MQTT_PORT: "1883", TINYML_TOPIC: "tinyml/#" });
  const out = f.run({ flow: "event log" });
  assert.deepEqual(out.payload.missing, ["TINYML_DB", "TINYML_CSV_DIR"]);
  assert.equal(f.log.errors.length, 2);
  assert.ok(out.payload.defaults.includes('TINYML_ALERT_MIN_SCORE="0.8"'));
});

test("parse: an event without its label name takes it from the node's INFO", () => {
  const f = load("parse");
  const [before] = f.run({ topic: topic("event"), payload: event(1, { label: null, label_index: 1 }) });
  assert.equal(before.payload.label, null);
  const info = { schema: 1, kind: "info", gateway: "gw", node: NODE, ts: T, firmware_version: "1.0", model_name: "m", labels: ["badminton", "running"] };
  f.run({ topic: topic("info"), payload: info });
  const [after] = f.run({ topic: topic("event"), payload: event(2, { label: null, label_index: 1 }) });
  assert.equal(after.payload.label, "running");
});

test("alerts: what once means survives a restart of Node-RED (the file context store)", () => {
  const first = alerts({ TINYML_ALERT_INTERVAL_S: "0" });
  assert.ok(first.send("event", event(1, { label: "badminton", score: 0.9 })));
  assert.equal(first.send("status", status(false)).payload.type, "offline");
  assert.deepEqual([...first.f.context.stores], ["file"]);
  // a new instance on what the store kept: the broker re-delivers the event and the
  // retained offline status
  const again = alerts({ TINYML_ALERT_INTERVAL_S: "0" }, { now: T }, first.f.context.restarted());
  assert.equal(again.send("event", event(1, { label: "badminton", score: 0.9 })), null);
  assert.equal(again.send("status", status(false)), null);
  assert.equal(again.send("status", status(true)).payload.type, "online");
  assert.ok(again.send("event", event(2, { label: "badminton", score: 0.9 })));
});
