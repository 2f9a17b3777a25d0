// tinyml parse: one message from the gateway's MQTT topics (docs/topics.md) in; a clean
// object on output 1, or on output 2 the message with msg.reason saying why it is not one.
// The parsed payload is `p` throughout: the field-name test reads every `p.<name>`.
const HEX16 = /^[0-9a-f]{16}$/;
const COMMON = { schema: "number", kind: "string", gateway: "string", node: "string", ts: "number" };
const BY_KIND = {
  event: { key: "string", boot: "number", seq: "number", label_index: "number", score: "number", model_id: "string" },
  heartbeat: { boot: "number", seq: "number", inferences: "number", events_dropped: "number" },
  info: { firmware_version: "string", model_name: "string", labels: "object" },
  log: { level: "string", text: "string" },
  status: { online: "boolean", reason: "string" },
};

// what the gateway sends stays far inside these (docs/topics.md); a message outside them is
// not the gateway's, or is damaged, and must not reach the database, the CSV or an alert
const MAX_PAYLOAD_BYTES = 65536;
const MAX_TEXT = 256; // labels, names, groups, versions, reasons
const MAX_LOG_TEXT = 1024;
const U32 = 4294967295;
const RANGES = {
  ts: [0, 8.64e15, "int"], boot: [0, U32, "int"], seq: [0, U32, "int"], label_index: [0, 31, "int"],
  score: [0, 1], gateway_score: [0, 1], gateway_label_index: [0, 31, "int"], inference_us: [0, U32, "int"],
  battery_mv: [0, 65535, "int"], temperature_c: [-100, 200], inferences: [0, U32, "int"],
  events_dropped: [0, U32, "int"], retx_floor: [0, U32, "int"], rx_errors: [0, U32, "int"],
  rssi: [-150, 20, "int"], uptime_ms: [0, U32, "int"],
};
const TEXTS = ["label", "name", "group", "gateway_label", "model_name", "firmware_version", "reason", "key", "transport"];

function rangeProblem(p) {
  for (const [name, [lo, hi, int]] of Object.entries(RANGES)) {
    const v = p[name];
    if (v === undefined || v === null) continue;
    if (typeof v !== "number" || !Number.isFinite(v)) return `${name} is ${JSON.stringify(v)}, not a number`;
    if (int && !Number.isInteger(v)) return `${name} is ${v}, not a whole number`;
    if (v < lo || v > hi) return `${name} is ${v}, outside ${lo}..${hi}`;
  }
  for (const name of TEXTS) {
    const v = p[name];
    if (v === undefined || v === null) continue;
    if (typeof v !== "string") return `${name} is not a string`;
    if (v.length > MAX_TEXT) return `${name} has ${v.length} characters, more than ${MAX_TEXT}`;
  }
  if (typeof p.text === "string" && p.text.length > MAX_LOG_TEXT) return `text has ${p.text.length} characters, more than ${MAX_LOG_TEXT}`;
  if (p.model_id !== undefined && !/^[0-9a-f]{8}$/.test(String(p.model_id))) return `model_id ${JSON.stringify(p.model_id).slice(0, 40)} is not 8 hex digits`;
  if (p.kind === "event" && p.seq < 1) return "seq 0: events are numbered from 1";
  if (Array.isArray(p.labels) && (p.labels.length > 32 || p.labels.some((l) => typeof l !== "string" || l.length > MAX_TEXT))) return "labels: more than 32, or one not a string of at most 256 characters";
  return null;
}

function bad(reason) {
  msg.reason = reason;
  node.status({ fill: "red", shape: "ring", text: reason.slice(0, 60) });
  return [null, msg];
}

function typesProblem(p, want) {
  for (const [name, type] of Object.entries(want)) {
    if (!(name in p)) return `${name} is missing`;
    if (typeof p[name] !== type || p[name] === null) return `${name} is ${JSON.stringify(p[name])}, not a ${type}`;
  }
  return null;
}

const parts = String(msg.topic || "").split("/");
let where = null;
if (parts.length === 3 && parts[2] === "status") {
  where = { gateway: parts[1], node: null, kind: "gateway" };
} else if (parts.length === 5 && parts[3] === "cmd" && parts[4] === "ack") {
  where = { gateway: parts[1], node: parts[2], kind: "cmd_ack" };
} else if (parts.length === 4 && parts[3] in BY_KIND) {
  where = { gateway: parts[1], node: parts[2], kind: parts[3] };
}
if (where === null) return bad(`topic ${msg.topic} is not one of the gateway's`);
if (where.node !== null && !HEX16.test(where.node)) return bad(`topic ${msg.topic}: ${where.node} is not a node id`);

const raw = msg.payload;
const size = Buffer.isBuffer(raw) ? raw.byteLength : typeof raw === "string" ? Buffer.byteLength(raw) : 0;
let p = raw;
if (size > MAX_PAYLOAD_BYTES) return bad(`payload of ${size} bytes, more than the ${MAX_PAYLOAD_BYTES} this flow takes`);
if (Buffer.isBuffer(p)) p = p.toString("utf8");
if (typeof p === "string") {
  try {
    p = JSON.parse(p);
  } catch (e) {
    return bad(`payload is not JSON (${e.message})`);
  }
}
if (p === null || typeof p !== "object" || Array.isArray(p)) return bad("payload is not a JSON object");

let problem = null;
if (where.kind === "cmd_ack") {
  problem = typesProblem(p, { ok: "boolean", status: "string" });
} else if (where.kind === "gateway") {
  problem = p.kind !== "gateway" ? `kind ${JSON.stringify(p.kind)} on a gateway status topic` : typesProblem(p, { online: "boolean" });
} else {
  if (p.schema !== 1) problem = `schema ${JSON.stringify(p.schema)}, this flow reads schema 1`;
  else if (p.kind !== where.kind) problem = `kind ${JSON.stringify(p.kind)} on a ${where.kind} topic`;
  else if (p.node !== where.node) problem = `node ${JSON.stringify(p.node)} on the topic of ${where.node}`;
  else problem = typesProblem(p, COMMON) || typesProblem(p, BY_KIND[where.kind]) || rangeProblem(p);
}
if (problem !== null) return bad(problem);

if (where.node !== null) {
  // which gateway each node is heard through: where the command flows send its commands
  const gateways = global.get("tinyml_gateway_of") || {};
  if (gateways[where.node] !== where.gateway) {
    gateways[where.node] = where.gateway;
    global.set("tinyml_gateway_of", gateways);
  }
}
msg.kind = where.kind;
msg.gateway = where.gateway;
msg.node = where.node;
msg.payload = Object.assign({}, p, { kind: where.kind, gateway: where.gateway, node: where.node });
// an event rendered before the gateway had the node's INFO has label null: name it from the
// node's INFO (its retained topic) when this flow has seen one
const labels = global.get("tinyml_labels_of") || {};
if (where.kind === "info" && Array.isArray(p.labels)) {
  labels[where.node] = p.labels;
  global.set("tinyml_labels_of", labels);
} else if (where.kind === "event" && p.label === null && labels[where.node]) {
  msg.payload.label = labels[where.node][p.label_index] || null;
}
if (typeof p.ts === "number") msg.payload.time = new Date(p.ts).toISOString();
node.status({ fill: "green", shape: "dot", text: `${where.kind} ${where.node || where.gateway}` });
return [msg, null];
