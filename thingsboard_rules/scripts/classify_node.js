// What one telemetry message of a tinyml-node device says, as the relations of a switch:
// "Anomaly" or "No anomaly" (an event), "Disagreement" or "Agreement" (an event the gateway
// verified), "Low battery" or "Battery ok" (a heartbeat; "Battery ok" only 100 mV above the
// threshold, so that a battery near it does not raise and clear an alarm at every heartbeat).
// Thresholds: server attributes of the device, else of its customer, else of the tenant.
var out = [];
var labels = "," + SETTING(tinymlAnomalyLabels, "anomaly") + ",";
var minScore = parseFloat(SETTING(tinymlAnomalyMinScore, "0.8"));
var lowMv = parseFloat(SETTING(tinymlLowBatteryMv, "3300"));
if (msg.label != null && msg.score != null) {
    if (labels.indexOf("," + msg.label + ",") >= 0 && msg.score >= minScore) {
        out.push("Anomaly");
    } else {
        out.push("No anomaly");
    }
}
if (msg.verified == true) {
    if (msg.verify_alert == true) {
        out.push("Disagreement");
    } else {
        out.push("Agreement");
    }
}
if (msg.battery_mv != null) {
    if (msg.battery_mv < lowMv) {
        out.push("Low battery");
    } else if (msg.battery_mv >= lowMv + 100) {
        out.push("Battery ok");
    }
}
return out;
