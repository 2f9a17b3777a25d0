// The low battery alarm's details: the voltage and the threshold it is below.
var details = {};
details.battery_mv = msg.battery_mv;
details.threshold_mv = parseFloat(SETTING(tinymlLowBatteryMv, "3300"));
return details;
