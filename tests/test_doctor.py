"""``tinyml-gateway doctor`` against a good setup and against each broken one: real
Mosquitto (with a password file), real pseudo-terminals, real folders and users."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.peers import Mosquitto, config_data, toml_text
from tests.test_verify import verify_section

ROOT = Path(__file__).resolve().parent.parent


def doctor(
    tmp: Path, data: dict[str, Any], *args: str, env: dict[str, str] | None = None
) -> tuple[int, list[str]]:
    config = tmp / "gateway.toml"
    config.write_text(toml_text(data))
    r = subprocess.run(
        [sys.executable, "-m", "gateway", "doctor", "-c", str(config), *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in r.stdout + r.stderr, r.stdout + r.stderr
    return r.returncode, r.stdout.splitlines()


def line(lines: list[str], start: str, contains: str) -> str:
    found = [x for x in lines if x.startswith(start) and contains in x]
    assert found, lines
    return found[0]


def test_a_good_setup_is_all_ok(tmp_path: Path, mosquitto: Mosquitto, pty) -> None:
    link = pty()
    data = config_data(tmp_path, mosquitto, [link.path], verify=verify_section())
    code, lines = doctor(tmp_path, data, "--user", "root")
    assert code == 0, lines
    checks = [x for x in lines if x.startswith(("OK", "FAIL"))]
    assert checks and all(x.startswith("OK") for x in checks), lines
    line(lines, "OK", "configuration valid")
    line(lines, "OK", f"serial {link.path}: present, readable and writable by root")
    line(lines, "OK", f"mqtt broker 127.0.0.1:{mosquitto.port}: connected")
    line(lines, "OK", "outbox")
    line(lines, "OK", "clock synchronised")
    line(lines, "OK", "models: 1 loaded and checked")


def test_a_missing_device_and_an_unreachable_broker(tmp_path: Path) -> None:
    data = config_data(tmp_path, None, [str(tmp_path / "ttyACM9")])
    code, lines = doctor(tmp_path, data, "--user", "root")
    assert code == 1
    assert "plug the node in" in line(lines, "FAIL", "no such device")
    fail = line(lines, "FAIL", f"mqtt broker 127.0.0.1:{data['mqtt']['port']}: not reachable")
    assert "host and port" in fail
    line(lines, "OK", "configuration valid")  # the rest is still checked


def test_a_wrong_password(tmp_path: Path) -> None:
    pwfile = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pwfile), "gateway", "right"], check=True)
    pwfile.chmod(0o644)
    broker = Mosquitto(tmp_path, extra=f"allow_anonymous false\npassword_file {pwfile}")
    broker.start()
    try:
        data = config_data(tmp_path, broker, [])
        data["mqtt"].update(username="gateway", password="wrong")
        code, lines = doctor(tmp_path, data, "--user", "root")
        assert code == 1
        assert "check the credentials" in line(lines, "FAIL", "refused the connection")
        data["mqtt"]["password"] = "right"
        code, lines = doctor(tmp_path, data, "--user", "root")
        assert code == 0, lines
    finally:
        broker.stop()


def test_a_data_dir_the_service_user_cannot_write(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)  # root's; the service runs as someone else
    data = config_data(tmp_path, None, [], mqtt={"enabled": False})
    code, lines = doctor(tmp_path, data, "--user", "nobody")
    assert code == 1
    fail = line(lines, "FAIL", f"{data_dir} is not writable by nobody")
    assert "sudo chown nobody:" in fail
    data_dir.chmod(0o777)
    code, lines = doctor(tmp_path, data, "--user", "nobody")
    assert code == 0, lines
    line(lines, "OK", "writable by nobody")


def test_a_device_the_service_user_cannot_open(tmp_path: Path, pty) -> None:
    link = pty()  # a pty slave: root's, mode 620, group tty
    data = config_data(tmp_path, None, [link.path], mqtt={"enabled": False})
    (tmp_path / "data").mkdir(mode=0o777)
    code, lines = doctor(tmp_path, data, "--user", "nobody")
    assert code == 1
    assert "sudo usermod -aG" in line(lines, "FAIL", "nobody cannot read and write")


def test_a_configuration_that_does_not_load(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[mqtt]\nport = "x"\n')
    r = subprocess.run(
        [sys.executable, "-m", "gateway", "doctor", "-c", str(config)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 78 and "mqtt.port" in r.stderr and "Traceback" not in r.stderr


def test_no_such_service_user(tmp_path: Path) -> None:
    data = config_data(tmp_path, None, [], mqtt={"enabled": False})
    code, lines = doctor(tmp_path, data, "--user", "no-such-user-here")
    assert code == 1 and "no user 'no-such-user-here'" in lines[0]


def test_bluez_through_the_emulated_bluez(tmp_path: Path) -> None:
    """BlueZ on the test rig's private bus (bluezoo, docs/ble.md "The test rig"): its
    adapter hci0 is there and powered; hci7 is not; without a bus the line says so."""
    from gateway.sim.bluez_rig import BluezRig

    data = config_data(tmp_path, None, [], mqtt={"enabled": False}, ble={"enabled": True})
    (tmp_path / "data").mkdir()
    with BluezRig(nodes=1):  # sets DBUS_SYSTEM_BUS_ADDRESS for this process and children
        code, lines = doctor(tmp_path, data, "--user", "root")
        assert code == 0, lines
        line(lines, "OK", "BLE: BlueZ reachable, adapter hci0 powered")
        data["ble"]["adapter"] = "hci7"
        code, lines = doctor(tmp_path, data, "--user", "root")
        assert "start bluetoothd" in line(lines, "FAIL", "BlueZ has no adapter hci7")
    gone = {"DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={tmp_path}/no-bus"}
    code, lines = doctor(tmp_path, data, "--user", "root", env=gone)
    assert code == 1
    line(lines, "FAIL", "BLE: the system D-Bus is not reachable")


def test_a_read_only_data_dir(tmp_path: Path) -> None:
    """The outbox folder on a read-only mount (a bind mount made read-only in a private
    mount namespace): even root cannot write there, and the doctor says so."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    data = config_data(tmp_path, None, [], mqtt={"enabled": False})
    config = tmp_path / "gateway.toml"
    config.write_text(toml_text(data))
    script = (
        f"mount --bind {data_dir} {data_dir} && mount -o remount,bind,ro {data_dir} && "
        f"exec {sys.executable} -m gateway doctor -c {config} --user root"
    )
    r = subprocess.run(
        ["unshare", "-m", "sh", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 1, r.stdout + r.stderr
    assert "set [gateway] data_dir" in line(
        r.stdout.splitlines(), "FAIL", f"{data_dir} is not writable by root"
    )
