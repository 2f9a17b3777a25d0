// tinyml score chart: a parsed event in; one point of its node's series out (ui-chart:
// msg.topic names the series, x the event's time, y its score).
// The parsed payload is `p` throughout: the field-name test reads every `p.<name>`.
const p = msg.payload;
if (msg.kind !== "event") return null;
return { topic: p.name || p.node, payload: { x: p.ts, y: p.score } };
