"""A BLE rig without a radio: a private D-Bus system bus and an emulated BlueZ on it.

``dbus-daemon`` (the Debian package ``dbus-daemon``) runs a system bus of its own
in a temporary folder; ``bluezoo`` (PyPI, with the fixes in bluezoo_fixed.py)
takes the name ``org.bluez`` on it and emulates adapters: ``hci0`` for the
gateway, and one per emulated node (``hci1``, ``hci2``, ...; sim/ble_node.py), since
the emulator shows each advertising adapter as one device. bleak runs its real
BlueZ backend against it once ``DBUS_SYSTEM_BUS_ADDRESS`` points at the bus.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Final

GATEWAY_ADAPTER: Final = "hci0"

_POLICY: Final = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_type="method_return"/>
    <allow send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="signal"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
  </policy>
</busconfig>
"""


class RigError(RuntimeError):
    """The rig cannot start here; the message says what is missing."""


class BluezRig:
    """Starts the bus and the emulator; ``address`` is the bus for DBUS_SYSTEM_BUS_ADDRESS.

    ``nodes`` adapters for emulated nodes (``node_adapter(i)``, from 0) beside the
    gateway's. ``scan_interval_s`` is how often the emulator reports advertising
    devices to a scanning adapter (whole seconds).
    """

    def __init__(self, nodes: int = 1, scan_interval_s: int = 1) -> None:
        self.nodes = nodes
        self.scan_interval_s = scan_interval_s
        self._dir = Path(tempfile.mkdtemp(prefix="tgw-bluez-"))
        self.socket = self._dir / "system_bus_socket"
        self.address = f"unix:path={self.socket}"
        self._bus: subprocess.Popen[bytes] | None = None
        self._zoo: subprocess.Popen[bytes] | None = None
        self._saved: str | None = None

    def __enter__(self) -> BluezRig:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @staticmethod
    def node_adapter(i: int) -> str:
        return f"hci{i + 1}"

    @staticmethod
    def node_address(i: int) -> str:
        """The address the gateway sees for emulated node ``i`` (its adapter's)."""
        return f"00:AA:{i + 1:02X}:00:00:00"

    @property
    def log(self) -> str:
        path = self._dir / "bluezoo.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self) -> None:
        daemon = shutil.which("dbus-daemon")
        if daemon is None:
            raise RigError("dbus-daemon is not installed (Debian package dbus-daemon)")
        conf = self._dir / "bus.conf"
        conf.write_text(_POLICY.format(socket=self.socket))
        self._bus = subprocess.Popen(  # noqa: S603 - our own binary and arguments
            [daemon, "--config-file", str(conf), "--nofork", "--nopidfile"],
            stdout=subprocess.DEVNULL,
            stderr=open(self._dir / "dbus.log", "ab"),  # noqa: SIM115 - the child owns it
        )
        self._wait(self.socket.exists, "the D-Bus daemon")
        env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": self.address}
        args = [sys.executable, "-m", "gateway.sim.bluezoo_fixed", "--auto-enable"]
        args += ["--scan-interval", str(self.scan_interval_s)]
        for i in range(self.nodes + 1):
            args += ["-a", f"00:AA:{i:02X}:00:00:00"]
        self._zoo = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            args,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(self._dir / "bluezoo.log", "ab"),  # noqa: SIM115 - the child owns it
        )
        self._wait(lambda: f"Adding adapter[{self.nodes}]" in self.log, "bluezoo")
        self._saved = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = self.address

    def _wait(self, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 30  # a hang guard: both start in well under a second
        while not ready():
            for proc in (self._bus, self._zoo):
                if proc is not None and proc.poll() is not None:
                    self.stop()
                    raise RigError(f"{what} exited at start:\n{self.log[-2000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise RigError(f"{what} did not start within 30 s")
            time.sleep(0.05)

    def stop(self) -> None:
        for proc in (self._zoo, self._bus):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self._zoo = self._bus = None
        if self._saved is None:
            os.environ.pop("DBUS_SYSTEM_BUS_ADDRESS", None)
        else:
            os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = self._saved
        with contextlib.suppress(OSError):
            shutil.rmtree(self._dir)
