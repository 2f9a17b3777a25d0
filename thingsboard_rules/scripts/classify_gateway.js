// What one health report of the gateway device says (its flattened health payload,
// docs/topics.md "Gateway status"), as the relations of a switch. A counter "grew" when it
// is above the value the device reported last (fetched as latest telemetry before this
// report is saved). Counters restart at 0 with the gateway: when the report's "started"
// differs from the last one's, the gateway restarted, and any count above 0 is growth.
function grew(msg, metadata, key) {
    if (msg[key] == null) {
        return false;
    }
    if (metadata[key] == null) {
        return msg[key] > 0;
    }
    if (msg.started != null && metadata.started != null && msg.started != parseFloat(metadata.started)) {
        return msg[key] > 0;
    }
    return msg[key] > parseFloat(metadata[key]);
}
var out = [];
var maxBytes = parseFloat(SETTING(tinymlOutboxMaxBytes, "50000000"));
var used = msg["outbox.used_bytes"];
if (used != null) {
    if (used > maxBytes) {
        out.push("Outbox growing");
    } else if (used < maxBytes / 2) {
        out.push("Outbox ok");
    }
}
if (msg["sinks.mqtt.connected"] == false) {
    out.push("Sink disconnected");
} else if (msg["sinks.mqtt.connected"] == true) {
    out.push("Sinks connected");
}
if (grew(msg, metadata, "outbox.dropped_cap") || grew(msg, metadata, "outbox.expired")
        || grew(msg, metadata, "outbox.dropped_events:mqtt") || grew(msg, metadata, "outbox.dropped_events:thingsboard")
        || grew(msg, metadata, "counters.events_lost_at_node") || grew(msg, metadata, "counters.events_refused_disk_full")) {
    out.push("Events dropped");
} else {
    out.push("Nothing dropped");
}
if (grew(msg, metadata, "sinks.mqtt.publish_refused") || grew(msg, metadata, "sinks.thingsboard.publish_refused")) {
    out.push("Publish refused");
} else {
    out.push("No refusals");
}
if (grew(msg, metadata, "counters.rejected_unauthenticated") || grew(msg, metadata, "totals.frames_bad")) {
    out.push("Input rejected");
} else {
    out.push("No rejections");
}
return out;
