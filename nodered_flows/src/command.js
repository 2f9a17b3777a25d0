// tinyml command: {node, method, params} in (the dashboard's form, or an inject); the
// command on the node's cmd topic out (docs/topics.md, "Commands"). The gateway of a node
// is the one its messages came through (tinyml parse keeps it), else TINYML_GATEWAY.
const METHODS = ["ping", "get_info", "set_threshold", "set_sample_rate", "set_heartbeat_period", "reboot"];
const c = msg.payload || {};
const node_ = String(c.node || "").trim();
if (!/^[0-9a-f]{16}$/.test(node_)) {
  node.error(`command: ${JSON.stringify(c.node)} is not a node id (16 lowercase hex digits)`, msg);
  return null;
}
if (!METHODS.includes(c.method)) {
  node.error(`command: ${JSON.stringify(c.method)} is not one of ${METHODS.join(", ")}`, msg);
  return null;
}
const gateway = (global.get("tinyml_gateway_of") || {})[node_] || env.get("TINYML_GATEWAY");
if (!gateway) {
  node.error(`command: no gateway known for node ${node_} (none heard from it; set TINYML_GATEWAY)`, msg);
  return null;
}
const prefix = env.get("TINYML_PREFIX") || "tinyml";
const id = (context.get("id") || 0) + 1;
context.set("id", id);
let params = c.params;
if (typeof params === "string" && params.trim() !== "") {
  try {
    params = JSON.parse(params);
  } catch (e) {
    params = Number.isFinite(Number(params)) ? Number(params) : params;
  }
}
const body = { id, method: c.method };
if (params !== undefined && params !== null && params !== "") body.params = params;
node.status({ fill: "blue", shape: "dot", text: `#${id} ${c.method} -> ${node_}` });
return { topic: `${prefix}/${gateway}/${node_}/cmd`, payload: JSON.stringify(body) };
