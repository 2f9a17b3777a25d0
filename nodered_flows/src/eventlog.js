// tinyml event log: a parsed event in; the parameters of the log's INSERT out. The table's
// primary key is the event key and the statement is INSERT OR IGNORE, so an event the
// gateway delivers twice (at least once, after a crash) is stored once.
// The parsed payload is `p` throughout: the field-name test reads every `p.<name>`.
const p = msg.payload;
if (msg.kind !== "event") return null;
const flag = (v) => (typeof v === "boolean" ? (v ? 1 : 0) : null);
msg.params = {
  $key: p.key,
  $node: p.node,
  $name: p.name || null,
  $grp: p.group || null,
  $gateway: p.gateway,
  $boot: p.boot,
  $seq: p.seq,
  $ts: p.ts,
  $label: p.label || null,
  $label_index: p.label_index,
  $score: p.score,
  $model_id: p.model_id,
  $verified: flag(p.verified),
  $agreement: flag(p.agreement),
  $gateway_label: p.gateway_label || null,
  $payload: JSON.stringify(p),
};
return msg;
