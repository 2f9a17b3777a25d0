"""Shared fixtures. Peers the tests need are built or started here, never mocked."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.packages import build_deb

ROOT = Path(__file__).resolve().parent.parent
PROTOCOL_DIR = ROOT / "mcu_firmware" / "protocol"


@pytest.fixture(scope="session")
def c_vectors_tool() -> Path:
    """The C library's host vector tool, built from source (fails, never skips, without cc)."""
    if shutil.which("make") is None or shutil.which("cc") is None:
        pytest.fail("make and a C compiler are needed: run scripts/setup.sh")
    subprocess.run(["make", "-s", "-C", str(PROTOCOL_DIR), "tools"], check=True)
    return PROTOCOL_DIR / "build" / "tgw_vectors"


@pytest.fixture(scope="session")
def package(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """The project's .deb for an architecture, built once a session by
    packaging/deb/build.py (the packaging tests and the VM rig install the same file)."""
    out = tmp_path_factory.mktemp("deb")
    built: dict[str, Path] = {}

    def build(arch: str) -> Path:
        if arch not in built:
            built[arch] = build_deb(arch, out)
        return built[arch]

    return build


@pytest.fixture
def mosquitto(tmp_path: Path):  # type: ignore[no-untyped-def]
    from tests.peers import Mosquitto

    broker = Mosquitto(tmp_path)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def pty():  # type: ignore[no-untyped-def]
    from gateway.sim.link import open_pty

    links = []

    def make():  # type: ignore[no-untyped-def]
        link = open_pty()
        links.append(link)
        return link

    yield make
    for link in links:
        link.close()


@pytest.fixture
async def bridges(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Both bridges' peers: Mosquitto with a Node-RED-like subscriber on tinyml/gw/#, and
    the ThingsBoard checker on its own Mosquitto with the gateway token's ACL."""
    from tests.peers import Collector, Mosquitto
    from tests.tb_checker import ThingsBoardChecker
    from tests.test_thingsboard import tb_broker

    nodered = Mosquitto(tmp_path / "nr")
    (tmp_path / "nr").mkdir()
    nodered.start()
    tb = tb_broker(tmp_path / "tb")
    checker = ThingsBoardChecker(tb.host, tb.port)
    await checker.start()
    sub = Collector(nodered, "tinyml/gw/#")
    await sub.start()
    yield nodered, tb, checker, sub
    await sub.stop()
    await checker.stop()
    tb.stop()
    nodered.stop()
