// A clearing node's details: the alarm's own, unchanged.
var details = {};
if (metadata.prevAlarmDetails != null) {
    details = JSON.parse(metadata.prevAlarmDetails);
}
return details;
