// The offline alarm's details: why the gateway says so, or that ThingsBoard saw no activity.
var details = {};
details.reason = (msg.offline_reason != null ? msg.offline_reason : "no activity (ThingsBoard's inactivity timeout)");
return details;
