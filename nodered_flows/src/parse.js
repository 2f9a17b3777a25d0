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

let p = msg.payload;
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
  else problem = typesProblem(p, COMMON) || typesProblem(p, BY_KIND[where.kind]);
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
