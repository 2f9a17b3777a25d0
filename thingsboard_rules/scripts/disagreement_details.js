// The verification alarm's details: what the node said, what the gateway's model said.
var details = {};
if (metadata.prevAlarmDetails != null) {
    details = JSON.parse(metadata.prevAlarmDetails);
}
details.node_label = msg.label;
details.gateway_label = msg.gateway_label;
details.gateway_score = msg.gateway_score;
details.model = msg.verify_model;
details.key = msg.key;
details.count = (details.count != null ? details.count + 1 : 1);
return details;
