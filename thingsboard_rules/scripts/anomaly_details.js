// The anomaly alarm's details: the latest anomalous event, and how many there were.
var details = {};
if (metadata.prevAlarmDetails != null) {
    details = JSON.parse(metadata.prevAlarmDetails);
}
details.label = msg.label;
details.score = msg.score;
details.model_id = msg.model_id;
details.key = msg.key;
details.count = (details.count != null ? details.count + 1 : 1);
return details;
