"""The package under a real systemd (PID 1 of a Debian 12 guest, tests/vm/rig.py).

One boot for the module, the checks in the order a user meets them: the freshly built
.deb installed by dpkg, the shipped unit enabled and started with a configuration that
reads two serial ports (the guest's ttyS1, and a USB serial adapter found by the example
config's /dev/serial/by-id/* glob) and verifies every event with the shipped model; the
nodes are simulated on this side of the ports; the guest's Mosquitto is reached through a
forwarded port.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.model import node_hex
from gateway.sim.link import NodeRunner, open_device
from gateway.sim.node import SimulatedNode
from tests.peers import Collector, free_port
from tests.vm.rig import Guest, RigError

MODEL = json.loads(
    (Path(__file__).resolve().parents[2] / "gateway/models/basicmotions/model.json").read_text()
)
USB_NODE, UART_NODE = 0xA1B2C3D4E5F60100, 0xA1B2C3D4E5F60101
COUNT = 40
SECURITY_LIMIT = 2.0
UNIT = "tinyml-gateway"
# the first module's setup may build the guest's root filesystem (minutes, once a machine)
pytestmark = pytest.mark.timeout(1500)


@dataclass(frozen=True)
class Broker:
    """The guest's Mosquitto, as the Collector sees it."""

    host: str
    port: int


CONFIG = f"""[gateway]
id = "vm"
clock_check = "assume-synced"

[[serial]]
path = "/dev/serial/by-id/*"
rescan_s = 1.0

[[serial]]
path = "/dev/ttyS1"

[nodes]
default_heartbeat_period_s = 5.0

[mqtt]
commands = ["ping", "get_info"]

[health]
interval_s = 2.0

[verify]
enabled = true
max_wait_ms = 1000

[[verify.models]]
file = "@MODEL@"
sha256 = "{MODEL["sha256"]}"
policy = "flag"
"""


@pytest.fixture(scope="module")
def guest(new_guest: Callable[..., Guest]) -> Iterator[Guest]:
    vm = new_guest(broker_port=free_port())
    try:
        vm.boot()
    except RigError as exc:
        pytest.fail(f"the VM rig could not boot: {exc}")
    yield vm
    vm.shutdown()


def show(vm: Guest, *props: str) -> dict[str, str]:
    out = vm.must(f"systemctl show {UNIT} " + " ".join(f"-p {p}" for p in props))
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def journal(vm: Guest, *args: str) -> str:
    return vm.must(f"journalctl -u {UNIT} --no-pager -o cat {' '.join(args)}")


def test_the_package_installed_by_dpkg_starts_under_systemd(guest: Guest) -> None:
    """The service reaches active (running) through Type=notify's READY."""
    model = guest.must("find /opt/tinyml-gateway -name model.tflite -path '*basicmotions*'")
    assert model.startswith("/opt/"), f"the shipped model is not in the package: {model!r}"
    guest.write("/etc/tinyml-gateway/config.toml", CONFIG.replace("@MODEL@", model.strip()))
    guest.must(f"{UNIT} check-config /etc/tinyml-gateway/config.toml >/dev/null")
    guest.must(f"systemctl enable --now {UNIT} </dev/null", timeout_s=150)
    state = show(guest, "ActiveState", "SubState", "Type", "NotifyAccess")
    assert (state["ActiveState"], state["SubState"]) == ("active", "running"), (
        f"{state}\n{journal(guest, '-n', '40')}"
    )
    assert state["Type"] == "notify"


async def test_serial_nodes_reach_the_broker_and_answer_commands(guest: Guest) -> None:
    """Events of a node on ttyS1 and of one on a USB adapter found by the by-id glob reach
    the broker once each, verified; a command from the cmd topic reaches the node and its
    answer comes back."""
    broker = Broker("127.0.0.1", guest.broker_port)
    events = Collector(broker, "tinyml/vm/+/event")  # type: ignore[arg-type]
    acks = Collector(broker, "tinyml/vm/+/cmd/ack")  # type: ignore[arg-type]
    status = Collector(broker, "tinyml/vm/status")  # type: ignore[arg-type]
    for c in (events, acks, status):
        await c.start()
    links = [open_device(guest.usb_serial), open_device(guest.serial)]
    nodes = [
        SimulatedNode(USB_NODE, window=True, heartbeat_period_s=1),
        SimulatedNode(UART_NODE, window=True, heartbeat_period_s=1),
    ]
    runners = [
        NodeRunner(link, [node], rate_hz=10, count=COUNT)
        for link, node in zip(links, nodes, strict=True)
    ]
    try:
        # both ports open before the nodes speak: a UART keeps nothing for a closed reader
        try:
            await status.wait_for(lambda: any(_both_open(m.json()) for m in status.messages), 120)
        except AssertionError:
            last = status.messages[-1].json().get("sources") if status.messages else None
            pytest.fail(f"the ports did not open: {last}\n{journal(guest, '-n', '20')}")
        await asyncio.wait_for(asyncio.gather(*(r.run(until_acked=True) for r in runners)), 300)
        serving = [asyncio.create_task(r.run()) for r in runners]
        try:
            await events.wait_for(lambda: len(events.messages) >= 2 * COUNT, 120)
            from aiomqtt import Client

            async with Client(broker.host, broker.port) as client:
                for node in nodes:
                    await client.publish(
                        f"tinyml/vm/{node_hex(node.node_id)}/cmd",
                        json.dumps({"id": f"ping-{node_hex(node.node_id)}", "method": "ping"}),
                        qos=1,
                    )
            await acks.wait_for(lambda: len(acks.messages) >= 2, 60)
        finally:
            for task in serving:
                task.cancel()
            await asyncio.gather(*serving, return_exceptions=True)
    finally:
        for c in (events, acks, status):
            await c.stop()
        for link in links:
            link.close()
    got = [m.json() for m in events.messages]
    keys = [e["key"] for e in got]
    assert len(keys) == len(set(keys)) == 2 * COUNT, "an event missing or twice"
    assert {(e["node"], e["seq"]) for e in got} == {
        (node_hex(n.node_id), s) for n in nodes for s in range(1, COUNT + 1)
    }
    # the shipped model ran under the unit's sandbox and agreed with every (honest) node
    assert all(e.get("agreement") is True for e in got), [
        (e["key"], e.get("agreement"), e.get("unverified_reason")) for e in got
    ][:5]
    answers = {m.json()["id"]: m.json() for m in acks.messages}
    for node in nodes:
        answer = answers.get(f"ping-{node_hex(node.node_id)}")
        assert answer is not None and answer["status"] == "ok", answers
    health = status.messages[-1].json()
    assert any(p.startswith("/dev/serial/by-id/") for p in health["sources"]), health["sources"]


def _both_open(health: dict[str, object]) -> bool:
    sources = health.get("sources") or {}
    assert isinstance(sources, dict)
    return any(
        p.startswith("/dev/serial/by-id/") and s.get("open") for p, s in sources.items()
    ) and bool((sources.get("/dev/ttyS1") or {}).get("open"))


def test_status_names_the_nodes_and_the_watchdog_is_pinged(guest: Guest) -> None:
    first = show(guest, "WatchdogTimestampMonotonic", "WatchdogUSec")
    assert first["WatchdogUSec"] == "30s", first
    # READY says "running"; each watchdog ping (every WatchdogSec/2) brings a STATUS= line
    guest.until(f'[ "$(systemctl show {UNIT} -p StatusText --value)" != running ]', 60)
    later = show(guest, "StatusText", "WatchdogTimestampMonotonic")
    assert re.fullmatch(
        r"\d of 2 nodes online, \d+ events/s, outbox \d+ pending, sinks 1/1 connected",
        later["StatusText"],
    ), later
    assert int(later["WatchdogTimestampMonotonic"]) > int(first["WatchdogTimestampMonotonic"])


def test_the_journal_carries_the_structured_fields(guest: Guest) -> None:
    rows = [
        json.loads(line)
        for line in guest.must(f"journalctl -u {UNIT} --no-pager -o json").splitlines()
        if line.startswith("{")
    ]
    ours = [r for r in rows if r.get("LOGGER", "").startswith("gateway")]
    assert ours, f"no line of the gateway carries LOGGER: {rows[-3:]}"
    # "new node" lines are rate-limited (a flood of made-up ids): one node may have the only one
    nodes = {r["NODE_ID"] for r in ours if "NODE_ID" in r}
    assert nodes and nodes <= {node_hex(USB_NODE), node_hex(UART_NODE)}, nodes
    node = sorted(nodes)[0]
    found = guest.must(f"journalctl -u {UNIT} --no-pager -o cat NODE_ID={node}")
    assert node in found, found
    sources = {r["SOURCE"] for r in ours if "SOURCE" in r}
    assert "/dev/ttyS1" in sources and any(s.startswith("/dev/serial/by-id/") for s in sources)
    assert "mqtt" in {r.get("SINK") for r in ours}


def test_litert_reads_the_cpu_it_runs_on(guest: Guest) -> None:
    """ProcSubset=pid hid /proc/cpuinfo, and LiteRT said so at every start."""
    text = journal(guest)
    assert "Error in cpuinfo" not in text, [
        line for line in text.splitlines() if "cpuinfo" in line
    ][:3]


def test_the_exposure_score_in_the_guest(guest: Guest) -> None:
    out = guest.must(f"systemd-analyze security {UNIT} --no-pager | tail -n 1")
    m = re.search(r"exposure level for \S+: (\d+\.\d+)", out)
    assert m, out
    assert float(m.group(1)) <= SECURITY_LIMIT, out


def test_sighup_reloads(guest: Guest) -> None:
    before = len(journal(guest).splitlines())
    guest.must(f"systemctl reload {UNIT}")
    guest.must("sleep 2")
    new = journal(guest).splitlines()[before:]
    assert any("reload" in line.lower() for line in new), new
    assert show(guest, "ActiveState")["ActiveState"] == "active"


def test_a_hung_gateway_is_aborted_by_the_watchdog_and_restarted(guest: Guest) -> None:
    before = show(guest, "MainPID", "NRestarts")
    guest.must(f"kill -STOP {before['MainPID']}")
    # 30 s without a ping, the abort, RestartSec=5s, a new start to READY
    guest.until(f"journalctl -u {UNIT} -o cat | grep -q 'Watchdog timeout'", 150)
    restarts = before["NRestarts"]
    guest.until(
        f'[ "$(systemctl show {UNIT} -p NRestarts --value)" != {restarts} ] '
        f"&& systemctl is-active -q {UNIT}",
        150,
    )
    after = show(guest, "MainPID", "NRestarts", "ActiveState", "SubState")
    assert after["MainPID"] != before["MainPID"]
    assert (after["ActiveState"], after["SubState"]) == ("active", "running"), after


def test_stop_is_clean(guest: Guest) -> None:
    guest.must(f"systemctl stop {UNIT}", timeout_s=60)
    state = show(guest, "ActiveState", "Result", "ExecMainStatus")
    assert state == {"ActiveState": "inactive", "Result": "success", "ExecMainStatus": "0"}, (
        f"{state}\n{journal(guest, '-n', '30')}"
    )
    assert "Traceback" not in journal(guest)
