// A gateway alarm's details: the health values it was raised on.
var details = {};
if (metadata.prevAlarmDetails != null) {
    details = JSON.parse(metadata.prevAlarmDetails);
}
details.used_bytes = msg["outbox.used_bytes"];
details.dropped_cap = msg["outbox.dropped_cap"];
details.expired = msg["outbox.expired"];
details.mqtt_connected = msg["sinks.mqtt.connected"];
details.mqtt_last_error = msg["sinks.mqtt.last_error"];
details.publish_refused_mqtt = msg["sinks.mqtt.publish_refused"];
details.publish_refused_thingsboard = msg["sinks.thingsboard.publish_refused"];
details.rejected_unauthenticated = msg["counters.rejected_unauthenticated"];
details.frames_bad = msg["totals.frames_bad"];
details.version = msg["version"];
return details;
