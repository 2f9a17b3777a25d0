// tinyml alerts: parsed gateway messages in (from tinyml parse); alerts out.
//   anomaly        an event whose label is one of the anomaly labels, with score >= min_score
//   verification   an event the gateway flagged (verify_alert: the gateway's model disagrees)
//   offline/online a node's status changed (online after an offline alert only)
//   low_battery    a heartbeat below TINYML_LOW_BATTERY_MV (again only after it recovered)
// One alert per node and type per TINYML_ALERT_INTERVAL_S at most (the rest are counted and
// reported with the next); an event key alerts once, however often the gateway repeats it.
// Rules: TINYML_ALERT_LABELS, TINYML_ALERT_MIN_SCORE, TINYML_ALERT_INTERVAL_S; per group or
// node TINYML_ALERT_RULES (JSON: {"groups": {"<group>": {"labels": [..], "min_score": ..,
// "interval_s": ..}}, "nodes": {"<node id>": {..}}}), or a message with topic
// "tinyml/alert-rules" (the dashboard's control).
// What "once" needs (the event keys alerted, offline and low-battery states, the rate
// limiter) lives in the context store TINYML_CONTEXT_STORE (default "file": Node-RED's
// localfilesystem store, configured in settings.js; nodered_flows/README.md), so that a
// restart of Node-RED does not alert again on a re-delivered event or a retained status.
// The parsed payload is `p` throughout: the field-name test reads every `p.<name>`.
const KEYS_KEPT = 10000;
const STORE = env.get("TINYML_CONTEXT_STORE") || "file";

function number(name, fallback) {
  const v = env.get(name);
  if (v === undefined || v === "") return fallback;
  const n = Number(v);
  if (!Number.isFinite(n)) {
    node.warn(`${name}=${JSON.stringify(v)} is not a number: using ${fallback}`);
    return fallback;
  }
  return n;
}

function envRules() {
  const labels = String(env.get("TINYML_ALERT_LABELS") || "").split(",").map((s) => s.trim()).filter(Boolean);
  const rules = { default: { labels, min_score: number("TINYML_ALERT_MIN_SCORE", 0.8) }, groups: {}, nodes: {} };
  const text = env.get("TINYML_ALERT_RULES");
  if (text) {
    try {
      const more = JSON.parse(text);
      Object.assign(rules.groups, more.groups || {});
      Object.assign(rules.nodes, more.nodes || {});
      if (more.default) Object.assign(rules.default, more.default);
    } catch (e) {
      node.warn(`TINYML_ALERT_RULES is not JSON (${e.message}): per-node rules ignored`);
    }
  }
  return rules;
}

// in memory: what the environment and the dashboard say, and what is shown with an alert
const st = context.get("state") || { rules: envRules(), heartbeats: {}, names: {} };
context.set("state", st);
// kept across restarts (set again after every change: the file store writes what is set)
const kept = context.get("alerts", STORE) || { keys: [], seen: {}, last: {}, suppressed: {}, low: {}, offline: {} };
function keep() {
  context.set("alerts", kept, STORE);
}

if (msg.topic === "tinyml/alert-rules") {
  const r = msg.payload || {};
  if (r.default) Object.assign(st.rules.default, r.default);
  if (r.groups) Object.assign(st.rules.groups, r.groups);
  if (r.nodes) Object.assign(st.rules.nodes, r.nodes);
  if (typeof r.min_score === "number") st.rules.default.min_score = r.min_score;
  node.status({ fill: "blue", shape: "dot", text: `rules: min score ${st.rules.default.min_score}` });
  return null;
}

const p = msg.payload || {};
const nodeId = p.node;
if (!nodeId) return null;
if (p.name) st.names[nodeId] = p.name;
const now = Date.now();

function rule() {
  const r = Object.assign({}, st.rules.default);
  if (p.group && st.rules.groups[p.group]) Object.assign(r, st.rules.groups[p.group]);
  if (st.rules.nodes[nodeId]) Object.assign(r, st.rules.nodes[nodeId]);
  return r;
}
const r = rule();
const interval = (typeof r.interval_s === "number" ? r.interval_s : number("TINYML_ALERT_INTERVAL_S", 300)) * 1000;

function alert(type, severity, text, extra) {
  const slot = `${nodeId}:${type}`;
  if (kept.last[slot] !== undefined && now - kept.last[slot] < interval) {
    kept.suppressed[slot] = (kept.suppressed[slot] || 0) + 1;
    keep();
    node.status({ fill: "yellow", shape: "ring", text: `${slot}: ${kept.suppressed[slot]} suppressed` });
    return null;
  }
  const suppressed = kept.suppressed[slot] || 0;
  kept.last[slot] = now;
  kept.suppressed[slot] = 0;
  keep();
  node.status({ fill: "red", shape: "dot", text: `${type} ${st.names[nodeId] || nodeId}` });
  return {
    topic: `tinyml/alert/${type}/${nodeId}`,
    payload: Object.assign(
      {
        type, severity, text, node: nodeId, name: st.names[nodeId] || null, group: p.group || null,
        gateway: p.gateway, ts: p.ts || now, suppressed, heartbeat: st.heartbeats[nodeId] || null,
      },
      extra,
    ),
  };
}

function seenBefore(key) {
  if (kept.seen[key]) return true;
  kept.seen[key] = true;
  kept.keys.push(key);
  if (kept.keys.length > KEYS_KEPT) delete kept.seen[kept.keys.shift()];
  keep();
  return false;
}

if (msg.kind === "heartbeat") {
  st.heartbeats[nodeId] = p;
  const limit = number("TINYML_LOW_BATTERY_MV", 3300);
  if (typeof p.battery_mv !== "number") return null;
  if (p.battery_mv >= limit + 100 && kept.low[nodeId]) {
    kept.low[nodeId] = false; // recovered (100 mV of hysteresis)
    keep();
  }
  if (p.battery_mv >= limit || kept.low[nodeId]) return null;
  kept.low[nodeId] = true;
  keep();
  return alert("low_battery", "warning", `battery ${p.battery_mv} mV, below ${limit} mV`, { battery_mv: p.battery_mv });
}
if (msg.kind === "status") {
  if (p.online === false && !kept.offline[nodeId]) {
    kept.offline[nodeId] = true;
    keep();
    return alert("offline", "major", `offline: ${p.reason}`, { reason: p.reason });
  }
  if (p.online === true && kept.offline[nodeId]) {
    kept.offline[nodeId] = false;
    keep();
    return alert("online", "info", `back online: ${p.reason}`, { reason: p.reason });
  }
  return null;
}
if (msg.kind !== "event" || seenBefore(p.key)) return null;
const event = { key: p.key, label: p.label, label_index: p.label_index, score: p.score, model_id: p.model_id };
if (p.verify_alert === true) {
  return alert(
    "verification", "major",
    `the gateway's model says ${p.gateway_label} (${p.gateway_score}), the node said ${p.label}`,
    Object.assign(event, { gateway_label: p.gateway_label, gateway_score: p.gateway_score }),
  );
}
if (r.labels.includes(p.label) && p.score >= r.min_score) {
  return alert("anomaly", p.score >= 0.95 ? "critical" : "major", `${p.label} (score ${p.score})`, event);
}
return null;
