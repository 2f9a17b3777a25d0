// tinyml gateway status: a parsed gateway health message in; one row per gateway out
// (online, outbox depth, sinks connected), for a ui-table.
// The parsed payload is `p` throughout: the field-name test reads every `p.<name>`.
const p = msg.payload;
if (msg.kind !== "gateway") return null;
const rows = flow.get("tinyml_gateways") || {};
const sinks = p.sinks || {};
rows[p.gateway] = {
  gateway: p.gateway,
  online: p.online,
  outbox_queue: p.outbox ? p.outbox.queue : null,
  outbox_kib: p.outbox ? Math.round(p.outbox.used_bytes / 1024) : null,
  sinks_connected: Object.keys(sinks).filter((s) => sinks[s].connected).join(", ") || "none",
  nodes_online: p.nodes ? `${p.nodes.online} of ${p.nodes.known}` : null,
};
flow.set("tinyml_gateways", rows);
return { payload: Object.values(rows) };
