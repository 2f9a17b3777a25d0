// Runs a function node's source (nodered_flows/src/*.js) the way Node-RED's function node
// does: the body of a function of msg, node, context, flow, global and env, whose return
// value is the output (one message, or an array with one entry per output).
"use strict";
const fs = require("node:fs");
const path = require("node:path");

function store() {
  const data = {};
  return { get: (k) => data[k], set: (k, v) => { data[k] = v; }, keys: () => Object.keys(data) };
}

function load(name, vars = {}, global = store()) {
  const code = fs.readFileSync(path.join(__dirname, "..", "src", `${name}.js`), "utf8");
  const fn = new Function("msg", "node", "context", "flow", "global", "env", "Buffer", code);
  const context = store();
  const flow = store();
  const log = { warnings: [], errors: [], statuses: [] };
  const node = {
    status: (s) => log.statuses.push(s),
    warn: (w) => log.warnings.push(w),
    error: (e) => log.errors.push(e),
    send: () => { throw new Error("these functions return their output"); },
  };
  const env = { get: (k) => vars[k] };
  return {
    log,
    context,
    global,
    run: (msg) => fn(msg, node, context, flow, global, env, Buffer),
  };
}

module.exports = { load, store };
