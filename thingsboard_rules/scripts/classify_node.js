// What one telemetry message of a tinyml-node device says, as the relations of a switch:
// "Anomaly" or "No anomaly" (an event), "Disagreement" or "Agreement" (an event the gateway
// verified), "Low battery" or "Battery ok" (a heartbeat; "Battery ok" only 100 mV above the
// threshold, so that a battery near it does not raise and clear an alarm at every heartbeat).
// Thresholds: server attributes of the device, else of its customer, else of the tenant.
var out = [];
// the labels are a comma-separated list; blanks around each are not part of it (as in the
// Node-RED flows: "running, badminton" is running and badminton)
var labels = SETTING(tinymlAnomalyLabels, "anomaly").split(",");
var minScore = parseFloat(SETTING(tinymlAnomalyMinScore, "0.8"));
var lowMv = parseFloat(SETTING(tinymlLowBatteryMv, "3300"));
function isAnomalyLabel(label) {
    for (var i = 0; i < labels.length; i++) {
        if (labels[i].trim() == label) {
            return true;
        }
    }
    return false;
}
if (msg.label != null && msg.score != null) {
    if (isAnomalyLabel(msg.label) && msg.score >= minScore) {
        out.push("Anomaly");
    } else {
        out.push("No anomaly");
    }
}
// only an event the gateway agrees with clears the alarm: a disagreement under policy
// "annotate" (no alert) and a verdict it cannot tell (agreement null) leave it as it is
if (msg.verified == true) {
    if (msg.verify_alert == true) {
        out.push("Disagreement");
    } else if (msg.agreement == true) {
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
