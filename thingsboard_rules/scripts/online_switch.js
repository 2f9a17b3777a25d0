// The gateway's `online` client attribute of a node: "Offline" or "Online"; attribute
// updates without it go nowhere.
if (msg.online == false) {
    return ["Offline"];
}
if (msg.online == true) {
    return ["Online"];
}
return [];
