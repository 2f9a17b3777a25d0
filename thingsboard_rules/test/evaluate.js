// Runs messages through a rule chain of thingsboard_rules/ the way ThingsBoard would route
// them, executing the chain's scripts (their JavaScript form, the same text as the TBEL one)
// and keeping the alarms they create and clear. Input on stdin, JSON:
//   {"chain": "<file>", "attributes": {"devices": {"<device>": {}}, "customers": {"<device>": {} or
//    null (it belongs to no customer)}, "tenant": {}},
//    "messages": [{"device": "...", "msgType": "POST_TELEMETRY_REQUEST", "msg": {}, "metadata": {}}]}
// Output on stdout, JSON: {"actions": [[...per message...]], "alarms": {"<device>|<type>": {...}}}
"use strict";
const fs = require("node:fs");

const MSG_TYPES = {
  POST_TELEMETRY_REQUEST: "Post telemetry",
  POST_ATTRIBUTES_REQUEST: "Post attributes",
  ACTIVITY_EVENT: "Activity Event",
  INACTIVITY_EVENT: "Inactivity Event",
  RPC_CALL_FROM_SERVER_TO_DEVICE: "RPC Request to Device",
};

function run(code, msg, metadata, msgType) {
  return new Function("msg", "metadata", "msgType", code)(msg, metadata, msgType);
}

function main() {
  const input = JSON.parse(fs.readFileSync(0, "utf8"));
  const chain = JSON.parse(fs.readFileSync(input.chain, "utf8")).metadata;
  const attrs = input.attributes || { devices: {}, customers: {}, tenant: {} };
  const alarms = {};
  const out = [];
  for (const m of input.messages) {
    const actions = [];
    const queue = [[chain.firstNodeIndex, structuredClone(m.msg), { ...m.metadata }, m.msgType]];
    while (queue.length) {
      const [index, msg, metadata, msgType] = queue.shift();
      const n = chain.nodes[index];
      const c = n.configuration;
      const kind = n.type.split(".").pop();
      let relations = ["Success"];
      let next = [msg, metadata, msgType];
      if (kind === "TbMsgTypeSwitchNode") {
        relations = [MSG_TYPES[msgType] || "Other"];
      } else if (kind === "TbGetAttributesNode") {
        const own = attrs.devices[m.device] || {};
        for (const k of c.serverAttributeNames) if (k in own) metadata[`ss_${k}`] = String(own[k]);
      } else if (kind === "TbGetCustomerAttributeNode" || kind === "TbGetTenantAttributeNode") {
        const customer = attrs.customers[m.device];
        const source = kind === "TbGetCustomerAttributeNode" ? (customer === undefined ? null : customer) : attrs.tenant;
        if (source === null) relations = ["Failure"];
        else for (const [k, to] of Object.entries(c.dataMapping)) if (k in source) metadata[to] = String(source[k]);
      } else if (kind === "TbJsSwitchNode") {
        relations = run(c.jsScript, msg, metadata, msgType);
      } else if (kind === "TbJsFilterNode") {
        relations = [run(c.jsScript, msg, metadata, msgType) ? "True" : "False"];
      } else if (kind === "TbTransformMsgNode") {
        const r = run(c.jsScript, msg, metadata, msgType);
        next = [r.msg, r.metadata, r.msgType];
      } else if (kind === "TbCreateAlarmNode" || kind === "TbClearAlarmNode") {
        const slot = `${m.device}|${c.alarmType}`;
        const active = alarms[slot] && !alarms[slot].cleared ? alarms[slot] : null;
        const meta = { ...metadata };
        if (active) meta.prevAlarmDetails = JSON.stringify(active.details);
        if (kind === "TbCreateAlarmNode") {
          const severity = c.dynamicSeverity ? c.severity.replace(/\$\{(\w+)\}/g, (_, k) => metadata[k]) : c.severity;
          alarms[slot] = { type: c.alarmType, severity, details: run(c.alarmDetailsBuildJs, msg, meta, msgType), cleared: false };
          relations = [active ? "Updated" : "Created"];
          actions.push({ node: n.name, alarm: c.alarmType, action: active ? "update" : "create", severity });
        } else if (active) {
          active.cleared = true;
          active.details = run(c.alarmDetailsBuildJs, msg, meta, msgType);
          relations = ["Cleared"];
          actions.push({ node: n.name, alarm: c.alarmType, action: "clear" });
        } else {
          relations = ["False"];
        }
      } else {
        actions.push({ node: n.name, action: kind });
      }
      for (const conn of chain.connections) {
        if (conn.fromIndex === index && relations.includes(conn.type)) {
          queue.push([conn.toIndex, structuredClone(next[0]), { ...next[1] }, next[2]]);
        }
      }
    }
    out.push(actions);
  }
  process.stdout.write(JSON.stringify({ actions: out, alarms }));
}

main();
