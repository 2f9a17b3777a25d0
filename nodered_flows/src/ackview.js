// tinyml command answer: a parsed cmd/ack in; one line for people out.
// The parsed payload is `p` throughout: the field-name test reads every `p.<name>`.
const p = msg.payload;
if (msg.kind !== "cmd_ack") return null;
const detail = p.ok ? JSON.stringify(p.result === undefined ? "" : p.result) : p.error || "";
msg.payload = `#${p.id} ${p.node}: ${p.status} ${detail}`.trim();
return msg;
