"""The Debian packages and the systemd unit, built and checked as a user would get them.

Both .debs are built here (packaging/deb/build.py); the amd64 one is installed into a
throwaway root by dpkg itself (maintainer scripts run with DPKG_ROOT) and the daemon in it
starts and reaches READY; the arm64 one is smoke-tested with Debian's arm64 Python 3.11
under qemu-aarch64-static (no binfmt here: the interpreter is started by qemu directly).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.packages import build_deb
from tests.peers import Mosquitto, config_data, toml_text
from tests.test_systemd import Notifications

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "packaging" / "systemd" / "tinyml-gateway.service"
# exposure as systemd-analyze security --offline scores it, times ten (its --threshold)
SECURITY_THRESHOLD = 20
# Debian 12's arm64 packages that Python 3.11 and the bundled wheels load
ARM64_DEBS = [
    "python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib", "libc6",
    "libexpat1", "zlib1g", "libffi8", "libssl3", "libsqlite3-0", "libbz2-1.0", "liblzma5",
    "libuuid1", "libgcc-s1", "libstdc++6", "libcrypt1", "libtinfo6", "libncursesw6",
    "libreadline8", "libnsl2", "libtirpc3", "libgssapi-krb5-2", "libkrb5-3", "libk5crypto3",
    "libcom-err2", "libkrb5support0", "libkeyutils1", "libdb5.3", "media-types",
]  # fmt: skip


def need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: run scripts/setup.sh test")


@pytest.fixture(scope="module")
def debs(package: Callable[[str], Path]) -> dict[str, Path]:
    return {arch: package(arch) for arch in ("amd64", "arm64")}


def launch(program: Path, config: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as err:
        return subprocess.Popen(
            [str(program), "run", "-c", str(config)],
            env=env, cwd=config.parent, stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip


@pytest.fixture(scope="module")
def installed(debs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The amd64 package installed by dpkg into an empty root."""
    need("dpkg", "systemd-sysusers")
    root = tmp_path_factory.mktemp("root")
    (root / "var/lib/dpkg/info").mkdir(parents=True)
    (root / "var/lib/dpkg/updates").mkdir()
    (root / "var/lib/dpkg/status").touch()
    (root / "etc").mkdir()
    r = subprocess.run(
        ["dpkg", f"--root={root}", "--force-script-chrootless", "--force-depends",
         "--log=/dev/null", "-i", str(debs["amd64"])],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    return root


def test_the_unit_verifies_without_a_word(installed: Path) -> None:
    need("systemd-analyze", "unshare")
    # the unit names /opt/tinyml-gateway: a private mount namespace puts the installed
    # tree there for systemd-analyze, leaving this machine's /opt as it is
    script = (
        "mount -t tmpfs tmpfs /opt && mkdir /opt/tinyml-gateway && "
        f"mount --bind {installed}/opt/tinyml-gateway /opt/tinyml-gateway && "
        f"exec systemd-analyze verify {installed}/usr/lib/systemd/system/tinyml-gateway.service"
    )
    r = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", r.stdout + r.stderr


def test_the_unit_meets_the_exposure_threshold() -> None:
    need("systemd-analyze")
    r = subprocess.run(
        ["systemd-analyze", "security", "--offline=true",
         f"--threshold={SECURITY_THRESHOLD}", str(UNIT)],
        capture_output=True, text=True,
    )  # fmt: skip
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d)", r.stdout)
    assert m is not None, r.stdout + r.stderr
    assert r.returncode == 0, f"exposure {m.group(1)} above {SECURITY_THRESHOLD / 10}"
    print(f"systemd-analyze security: {m.group(1)}")


def test_the_packages_hold_what_a_gateway_needs(debs: dict[str, Path]) -> None:
    for arch, deb in debs.items():
        info = subprocess.run(["dpkg-deb", "--info", str(deb)], capture_output=True, text=True)
        assert f"Architecture: {arch}" in info.stdout
        assert "python3.11 (>= 3.11.2), python3.11 (<< 3.12)" in info.stdout
        for script in ("postinst", "prerm", "postrm", "conffiles", "md5sums"):
            assert script in info.stdout
        listing = subprocess.run(
            ["dpkg-deb", "--contents", str(deb)], capture_output=True, text=True
        ).stdout
        for path in (
            "./etc/tinyml-gateway/config.toml",
            "./usr/lib/systemd/system/tinyml-gateway.service",
            "./usr/lib/sysusers.d/tinyml-gateway.conf",
            "./usr/lib/tmpfiles.d/tinyml-gateway.conf",
            "./usr/lib/modules-load.d/tinyml-gateway.conf",
            "./usr/share/dbus-1/system.d/tinyml-gateway.conf",
            "./opt/tinyml-gateway/pyvenv.cfg",
            "./opt/tinyml-gateway/bin/tinyml-gateway",
            "./opt/tinyml-gateway/bin/python -> /usr/bin/python3.11",
            "./usr/bin/tinyml-gateway -> /opt/tinyml-gateway/bin/tinyml-gateway",
            "./usr/share/tinyml-gateway/nodered_flows/01-parse.json",
            "./usr/share/tinyml-gateway/thingsboard_rules/rule_chains/tinyml_node.json",
            "./usr/share/tinyml-gateway/thingsboard_rules/dashboards/tinyml_fleet.json",
            "site-packages/gateway/models/basicmotions/model.tflite",
        ):
            assert path in listing, f"{arch}: {path}"
        machine = {"amd64": "x86_64", "arm64": "aarch64"}[arch]
        assert re.search(rf"pydantic_core/\S+{machine}-linux-gnu\.so", listing), arch
        assert "-rw-r----- root/root" in next(x for x in listing.splitlines() if "config.toml" in x)


def test_lintian_passes_with_the_justified_overrides(debs: dict[str, Path]) -> None:
    need("lintian")
    overrides = (ROOT / "packaging/deb/lintian-overrides").read_text()
    tags = [line for line in overrides.splitlines() if line and not line.startswith("#")]
    assert len(tags) <= 16  # short: each one has its reason in the file
    r = subprocess.run(
        ["lintian", "--fail-on", "error,warning", "--tag-display-limit", "0", str(debs["amd64"])],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_same_inputs_give_the_same_bytes(debs: dict[str, Path], tmp_path: Path) -> None:
    again = build_deb("amd64", tmp_path)
    first = hashlib.sha256(debs["amd64"].read_bytes()).hexdigest()
    assert hashlib.sha256(again.read_bytes()).hexdigest() == first


def test_maintainer_scripts_made_the_user_and_gave_it_the_config(installed: Path) -> None:
    passwd = (installed / "etc/passwd").read_text()
    group = (installed / "etc/group").read_text()
    assert re.search(r"^tinyml-gateway:x:\d+:\d+:.*:/var/lib/tinyml-gateway:", passwd, re.M)
    assert re.search(r"^bluetooth:x:\d+:", group, re.M)  # the unit starts without bluez
    gid = int(re.search(r"^tinyml-gateway:x:(\d+):", group, re.M).group(1))  # type: ignore[union-attr]
    st = (installed / "etc/tinyml-gateway/config.toml").stat()
    assert st.st_gid == gid and st.st_mode & 0o777 == 0o640
    assert (installed / "var/lib/tinyml-gateway").is_dir()


async def test_the_installed_daemon_reaches_ready(
    installed: Path, tmp_path: Path, mosquitto: Mosquitto
) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(toml_text(config_data(tmp_path, mosquitto, [])))
    notes, log = Notifications(tmp_path), tmp_path / "gateway.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env["NOTIFY_SOCKET"] = notes.path
    # the package's own launcher, on the machine's /usr/bin/python3.11, no project venv
    proc = launch(installed / "opt/tinyml-gateway/bin/tinyml-gateway", config, env, log)
    try:
        await notes.wait_for(lambda t: "READY=1" in t)
        proc.send_signal(signal.SIGTERM)
        await notes.wait_for(lambda t: "STOPPING=1" in t)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        notes.close()
    assert "Traceback" not in log.read_text()
    where = subprocess.run(
        [str(installed / "opt/tinyml-gateway/bin/python"), "-c", "import gateway; print(gateway.__file__)"],
        env=env, cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert where.stdout.startswith(f"{installed}/opt/tinyml-gateway/lib/python3.11/site-packages/")


@pytest.fixture(scope="module")
def arm64_root(debs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Debian 12's arm64 Python with the arm64 package unpacked over it."""
    need("apt-get", "qemu-aarch64-static")
    base = tmp_path_factory.mktemp("apt-arm64")
    (base / "state/lists/partial").mkdir(parents=True)
    (base / "cache/archives/partial").mkdir(parents=True)
    (base / "sources").mkdir()
    shutil.copy("/etc/apt/sources.list.d/debian.sources", base / "sources")
    apt = [
        "apt-get", "-q",
        "-o", "Dir::Etc::SourceList=/dev/null", "-o", f"Dir::Etc::SourceParts={base}/sources",
        "-o", f"Dir::State={base}/state", "-o", f"Dir::Cache={base}/cache",
        "-o", "Dir::State::status=/dev/null",
        "-o", "APT::Architecture=arm64", "-o", "APT::Architectures=arm64",
    ]  # fmt: skip
    # its own package lists: this machine's dpkg never learns of arm64
    subprocess.run([*apt, "update"], check=True, capture_output=True, timeout=300)
    debdir = base / "debs"
    debdir.mkdir()
    subprocess.run([*apt, "download", *ARM64_DEBS], cwd=debdir, check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    root = tmp_path_factory.mktemp("arm64root")
    for deb in [*sorted(debdir.glob("*.deb")), debs["arm64"]]:
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root


def arm64_python(root: Path, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    # qemu runs the arm64 interpreter; argv[0] is the venv's python, so Python finds the
    # venv's pyvenv.cfg; -L makes the guest's /usr/lib/python3.11 the arm64 one
    return subprocess.run(
        ["qemu-aarch64-static", "-L", str(root), "-0", f"{root}/opt/tinyml-gateway/bin/python",
         f"{root}/usr/bin/python3.11", *args],
        capture_output=True, text=True, timeout=300, **kw,
    )  # type: ignore[call-overload]  # fmt: skip


def test_the_arm64_package_imports_and_answers_under_qemu(arm64_root: Path) -> None:
    r = arm64_python(
        arm64_root,
        "-c",
        "import platform, sys, gateway, pydantic_core, dbus_fast, bleak, numpy; "
        "import ai_edge_litert.interpreter; print(platform.machine(), sys.version.split()[0],"
        " sys.prefix)",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    machine, version, prefix = r.stdout.split()
    assert machine == "aarch64" and version.startswith("3.11.")
    assert prefix == f"{arm64_root}/opt/tinyml-gateway"
    r = arm64_python(arm64_root, "-m", "gateway", "--version")
    assert r.returncode == 0 and r.stdout.startswith("tinyml-gateway "), r.stderr


def test_the_arm64_daemon_reaches_ready_under_qemu(arm64_root: Path, tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[gateway]\nid = "gw"\ndata_dir = "{tmp_path / "data"}"\n'
        'clock_check = "assume-synced"\n[mqtt]\nenabled = false\n'
    )
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(120)
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify.sock")}
    proc = subprocess.Popen(
        ["qemu-aarch64-static", "-L", str(arm64_root), "-0",
         f"{arm64_root}/opt/tinyml-gateway/bin/python", f"{arm64_root}/usr/bin/python3.11",
         "-m", "gateway", "run", "-c", str(config)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        seen = ""
        while "READY=1" not in seen:
            seen += sock.recv(4096).decode()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
    assert proc.returncode == 0 and "stopped" in err and "Traceback" not in err, err


def test_dbus_daemon_loads_the_bluez_policy(tmp_path: Path) -> None:
    """The policy file as a bus loads it (a private bus: the system bus is not ours)."""
    need("dbus-daemon")
    policy = ROOT / "packaging/dbus/tinyml-gateway.conf"
    config = tmp_path / "bus.conf"
    config.write_text(
        '<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"'
        ' "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">\n'
        f"<busconfig><type>custom</type><listen>unix:path={tmp_path}/bus</listen>"
        '<auth>EXTERNAL</auth><policy context="default"><allow user="*"/></policy>'
        f"<include>{policy}</include></busconfig>\n"
    )
    proc = subprocess.Popen(
        ["dbus-daemon", f"--config-file={config}", "--nofork", "--print-address"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        address = proc.stdout.readline()  # printed once the configuration is loaded
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert address.startswith(f"unix:path={tmp_path}/bus"), err
