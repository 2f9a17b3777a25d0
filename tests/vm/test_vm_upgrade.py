"""An upgrade from the previous commit's package, then purges, on a running system.

The guest starts with the package of the commit before this one (built here from
``git archive HEAD~1``), configured and running, with events in its outbox that no broker
has taken yet. ``dpkg -i`` of this commit's package must keep the edited configuration,
restart the running service, and keep the outbox: its events reach the broker once it
is back. Then purges do what docs/install.md says: the configuration goes, the outbox
stays unless TINYML_GATEWAY_PURGE_DATA=yes.
"""

from __future__ import annotations

import asyncio
import io
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.model import node_hex
from gateway.sim.link import NodeRunner, open_device
from gateway.sim.node import SimulatedNode
from tests.packages import ROOT, build_deb
from tests.peers import Collector, free_port
from tests.vm.rig import Guest, RigError, image, rootfs
from tests.vm.test_vm_service import Broker

NODE = 0xA1B2C3D4E5F60300
UNIT = "tinyml-gateway"
COUNT = 60
# the first module's setup may build the guest's root filesystem (minutes, once a machine)
pytestmark = pytest.mark.timeout(1500)

CONFIG = """[gateway]
id = "up"
clock_check = "assume-synced"

[[serial]]
path = "/dev/ttyS1"

[mqtt]
reconnect_max_s = 2.0
"""


@pytest.fixture(scope="module")
def previous_deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The amd64 package of the commit before this one."""
    git = ["git", "-C", str(ROOT)]
    r = subprocess.run([*git, "rev-parse", "HEAD~1"], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"the upgrade test needs the previous commit (a full clone): {r.stderr}")
    source = tmp_path_factory.mktemp("previous")
    tree = subprocess.run([*git, "archive", "HEAD~1"], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tree)) as tar:
        tar.extractall(source, filter="data")
    epoch = subprocess.run(
        [*git, "log", "-1", "--format=%ct", "HEAD~1"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return build_deb("amd64", source / "out", source, epoch)


@pytest.fixture(scope="module")
def guest(
    previous_deb: Path, package: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Guest]:
    try:
        disk, kernel, initrd = image(
            rootfs(), previous_deb, tmp_path_factory.mktemp("vm-up"),
            copies={"/root/new.deb": package("amd64")},
        )  # fmt: skip
        vm = Guest(disk, kernel, initrd, broker_port=free_port())
        vm.boot()
    except RigError as exc:
        pytest.fail(f"the VM rig could not start: {exc}")
    yield vm
    vm.shutdown()


async def test_an_upgrade_keeps_the_config_and_the_outbox_and_purges_do_as_documented(
    guest: Guest,
) -> None:
    await asyncio.to_thread(guest.write, "/etc/tinyml-gateway/config.toml", CONFIG)
    await guest.must_async(f"systemctl enable --now {UNIT} </dev/null", timeout_s=150)
    # the broker goes away: what the node sends now stays in the outbox
    await guest.must_async("systemctl stop mosquitto")
    node = SimulatedNode(NODE, heartbeat_period_s=1)
    runner = NodeRunner(open_device(guest.serial), [node], rate_hz=20, count=COUNT)
    try:
        await asyncio.wait_for(runner.run(until_acked=True), 300)
    finally:
        runner.link.close()  # type: ignore[attr-defined]
    pid = (await guest.must_async(f"systemctl show {UNIT} -p MainPID --value")).strip()

    await guest.must_async("dpkg -i --force-confold /root/new.deb </dev/null", timeout_s=600)
    # the edited configuration is the one in place, and the running service was restarted
    assert (await guest.must_async("cat /etc/tinyml-gateway/config.toml")).strip() == CONFIG.strip()
    await asyncio.to_thread(guest.until, f"systemctl is-active -q {UNIT}")
    assert (await guest.must_async(f"systemctl show {UNIT} -p MainPID --value")).strip() != pid
    assert "usbserial" in await guest.must_async("lsmod"), "the package's modules-load entry"

    broker = Broker("127.0.0.1", guest.broker_port)
    await guest.must_async("systemctl start mosquitto")
    events = Collector(broker, f"tinyml/up/{node_hex(NODE)}/event")  # type: ignore[arg-type]
    await events.start()
    try:
        await events.wait_for(lambda: len({m.json()["seq"] for m in events.messages}) >= COUNT, 120)
    finally:
        await events.stop()
    assert {m.json()["seq"] for m in events.messages} == set(range(1, COUNT + 1))

    # purge: the configuration goes, the outbox stays (it may hold undelivered events)
    out = await guest.must_async("dpkg --purge tinyml-gateway 2>&1", timeout_s=300)
    assert "kept /var/lib/tinyml-gateway" in out, out
    rc, _ = guest.run("test -e /etc/tinyml-gateway/config.toml")
    assert rc != 0, "purge left the configuration"
    await guest.must_async("test -f /var/lib/tinyml-gateway/outbox.sqlite3")
    assert "inactive" in (await asyncio.to_thread(guest.run, f"systemctl is-active {UNIT}"))[1]
    # and with TINYML_GATEWAY_PURGE_DATA=yes the data goes too
    await guest.must_async("dpkg -i /root/new.deb </dev/null", timeout_s=600)
    await guest.must_async(
        "TINYML_GATEWAY_PURGE_DATA=yes dpkg --purge tinyml-gateway", timeout_s=300
    )
    rc, _ = guest.run("test -e /var/lib/tinyml-gateway")
    assert rc != 0, "TINYML_GATEWAY_PURGE_DATA=yes left /var/lib/tinyml-gateway"
