// tinyml environment check, run once at deploy: names every environment variable a node
// property of these flows needs and is unset (Node-RED would keep the literal "${VAR}" and
// retry silently), and the defaults in effect for the optional ones.
const REQUIRED = {
  MQTT_HOST: "the broker the gateway publishes to, e.g. localhost",
  MQTT_PORT: "its port, e.g. 1883",
  TINYML_TOPIC: "the gateway's topics, e.g. tinyml/# ([mqtt] topic_prefix + /#)",
};
const BY_FLOW = {
  alerts: { TINYML_ALERT_WEBHOOK: "where alerts are POSTed, e.g. http://localhost:8080/alerts" },
  "event log": {
    TINYML_DB: "the SQLite file of the event log, e.g. /var/lib/node-red/tinyml-events.sqlite",
    TINYML_CSV_DIR: "the folder of the daily CSV export, e.g. /var/lib/node-red",
  },
};
const OPTIONAL = {
  TINYML_ALERT_LABELS: "",
  TINYML_ALERT_MIN_SCORE: "0.8",
  TINYML_ALERT_RULES: "",
  TINYML_ALERT_INTERVAL_S: "300",
  TINYML_LOW_BATTERY_MV: "3300",
};
const flowName = String(msg.flow || "");
const wanted = Object.assign({}, REQUIRED, BY_FLOW[flowName] || {});
const missing = Object.keys(wanted).filter((k) => !env.get(k));
for (const k of missing) node.error(`environment variable ${k} is not set: ${wanted[k]}`, msg);
const defaults = Object.keys(OPTIONAL).filter((k) => !env.get(k)).map((k) => `${k}=${JSON.stringify(OPTIONAL[k])}`);
msg.payload = { missing, defaults };
node.status(
  missing.length
    ? { fill: "red", shape: "dot", text: `unset: ${missing.join(", ")}` }
    : { fill: "green", shape: "dot", text: "environment complete" },
);
return msg;
