// tinyml alert list: an alert in (from tinyml alerts); the last 10, newest first, out.
const list = flow.get("tinyml_alerts") || [];
const a = msg.payload;
list.unshift({
  time: new Date(a.ts).toISOString().replace("T", " ").slice(0, 19),
  type: a.type,
  severity: a.severity,
  node: a.name || a.node,
  text: a.text,
});
list.length = Math.min(list.length, 10);
flow.set("tinyml_alerts", list);
return { payload: list };
