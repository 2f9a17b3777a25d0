// tinyml fleet table: parsed messages in; the whole table (one row per node) out, for a
// ui-table, each time a row changes.
// The parsed payload is `p` throughout: the field-name test reads every `p.<name>`.
const p = msg.payload;
if (!msg.node) return null;
const rows = flow.get("tinyml_fleet") || {};
const row = rows[msg.node] || { node: msg.node, name: null, online: null, label: null, score: null, battery_mv: null, rssi: null, last_seen: null };
if (p.name) row.name = p.name;
if (typeof p.ts === "number") row.last_seen = new Date(p.ts).toISOString().replace("T", " ").slice(0, 19);
if (msg.kind === "event") {
  row.label = p.label;
  row.score = p.score;
  row.online = true;
} else if (msg.kind === "heartbeat") {
  row.battery_mv = p.battery_mv;
  if (typeof p.rssi === "number") row.rssi = p.rssi;
  row.online = true;
} else if (msg.kind === "status") {
  row.online = p.online;
  if (typeof p.rssi === "number") row.rssi = p.rssi;
} else {
  return null;
}
rows[msg.node] = row;
flow.set("tinyml_fleet", rows);
return { payload: Object.values(rows).sort((a, b) => a.node.localeCompare(b.node)) };
