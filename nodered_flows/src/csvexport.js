// tinyml daily CSV export: a tick in (the daily inject, or a manual one); the query's
// parameters for one UTC day out, and msg.filename for the file node. msg.payload may
// name the day ("2026-12-01"); by default the day before today, UTC.
const dir = env.get("TINYML_CSV_DIR");
if (!dir) {
  node.error("environment variable TINYML_CSV_DIR is not set: no CSV export", msg);
  return null;
}
const named = typeof msg.payload === "string" && /^\d{4}-\d{2}-\d{2}$/.test(msg.payload);
const day = named ? new Date(`${msg.payload}T00:00:00Z`) : new Date(Math.floor(Date.now() / 86400000 - 1) * 86400000);
const from = day.getTime();
const name = day.toISOString().slice(0, 10);
msg.params = { $from: from, $to: from + 86400000 };
msg.filename = `${dir.replace(/\/+$/, "")}/tinyml-events-${name}.csv`;
node.status({ fill: "blue", shape: "dot", text: `exporting ${name}` });
return msg;
