// The anomaly alarm's severity, from the event's score: CRITICAL at or above
// tinymlCriticalScore (device, customer, tenant; default 0.95), else MAJOR.
var critical = parseFloat(SETTING(tinymlCriticalScore, "0.95"));
metadata.alarmSeverity = (msg.score >= critical ? "CRITICAL" : "MAJOR");
return {msg: msg, metadata: metadata, msgType: msgType};
