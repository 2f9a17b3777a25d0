// Runs a function node's source (nodered_flows/src/*.js) the way Node-RED's function node
// does: the body of a function of msg, node, context, flow, global and env, whose return
// value is the output (one message, or an array with one entry per output).
"use strict";
const fs = require("node:fs");
const path = require("node:path");

// a context store. A key set in a named store (Node-RED's file store, in the flows) is what
// survives a restart: ``restarted()`` is a new store holding only those, as JSON holds them
function store() {
  const data = {};
  const stores = new Set();
  const named = new Set();
  return {
    get: (k, name) => { if (name) stores.add(name); return data[k]; },
    set: (k, v, name) => {
      if (name) { stores.add(name); named.add(k); }
      data[k] = v;
    },
    keys: () => Object.keys(data),
    stores,
    restarted: () => {
      const copy = store();
      for (const k of named) copy.set(k, JSON.parse(JSON.stringify(data[k])), "file");
      return copy;
    },
  };
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

function load(name, vars = {}, global = store(), clock = null, context = store()) {
  const code = fs.readFileSync(path.join(__dirname, "..", "src", `${name}.js`), "utf8");
  const fn = new Function("msg", "node", "context", "flow", "global", "env", "Buffer", "Date", code);
  const DateSeen = clock ? fakeDate(clock) : Date;
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
