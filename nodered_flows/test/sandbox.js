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

// `clock`, when given, is the time the code sees (Date.now() and new Date() with no argument),
// so that a test of a time limit does not depend on how fast the machine runs it
function fakeDate(clock) {
  return class extends Date {
    constructor(...args) {
      super(...(args.length ? args : [clock.now]));
    }
    static now() {
      return clock.now;
    }
  };
}

function load(name, vars = {}, global = store(), clock = null) {
  const code = fs.readFileSync(path.join(__dirname, "..", "src", `${name}.js`), "utf8");
  const fn = new Function("msg", "node", "context", "flow", "global", "env", "Buffer", "Date", code);
  const DateSeen = clock ? fakeDate(clock) : Date;
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
    run: (msg) => fn(msg, node, context, flow, global, env, Buffer, DateSeen),
  };
}

module.exports = { load, store };
