"""Builds the Debian package for amd64 or arm64 on any Linux machine (docs/install.md).

    python packaging/deb/build.py --arch arm64 [--out build/deb]

The package holds a self-contained virtual environment in /opt/tinyml-gateway: the
project's wheel and the exact wheels of packaging/deb/requirements.txt for the target's
platform (CPython 3.11, manylinux, fetched with pip's --platform, so an arm64 package
builds on x86_64), byte-compiled, with bin/python linked to the target's
/usr/bin/python3.11. Beside it: the configuration as a conffile, the systemd unit,
sysusers and tmpfiles entries, the D-Bus policy for BlueZ, and the Node-RED flows and
ThingsBoard files under /usr/share/tinyml-gateway/.

Reproducible: every file's time is SOURCE_DATE_EPOCH (default: the last commit's time),
owners are root, the .pyc files use unchecked hashes with fixed paths, and dpkg-deb
writes the archive in a fixed order; the same commit and the same wheels give the same
bytes (tests/test_packaging.py builds twice and compares).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PYTHON = "3.11"
PREFIX = Path("opt/tinyml-gateway")
SITE = PREFIX / "lib" / f"python{PYTHON}" / "site-packages"
ARCHES = {"amd64": "x86_64", "arm64": "aarch64"}
# manylinux tags pip may take for a glibc 2.36 target (Debian 12, Raspberry Pi OS 12):
# pip does not widen a --platform tag, so every one is passed
MANYLINUX = [f"manylinux_2_{v}" for v in range(17, 37)] + ["manylinux2014"]

CONTROL = """Package: tinyml-gateway
Version: {version}
Architecture: {arch}
Maintainer: tinyml-gateway maintainers <maintainers@tinyml-gateway.invalid>
Installed-Size: {size}
Depends: python3.11 (>= 3.11.2), python3.11 (<< 3.12), libc6 (>= 2.28), systemd (>= 249)
Recommends: bluez, systemd-timesyncd | chrony | time-daemon
Section: net
Priority: optional
Homepage: https://github.com/tinyml-gateway/tinyml-gateway
Description: edge gateway for TinyML sensor fleets
 Collects inference events from microcontroller sensor nodes over serial and
 Bluetooth Low Energy, keeps every event in a durable outbox, and bridges them
 to ThingsBoard (gateway MQTT API, RPC back to nodes) and Node-RED (MQTT).
 Runs as a hardened systemd service; ships the Node-RED flows and the
 ThingsBoard rule chains, device profiles and dashboards.
"""


def run(*cmd: str | Path, **kw: object) -> None:
    subprocess.run([str(c) for c in cmd], check=True, **kw)  # type: ignore[call-overload]


def project_version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def source_date_epoch() -> int:
    if "SOURCE_DATE_EPOCH" in os.environ:
        return int(os.environ["SOURCE_DATE_EPOCH"])
    out = subprocess.run(
        ["git", "-C", str(ROOT), "log", "-1", "--format=%ct"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(out.stdout.strip())


def platform_args(arch: str) -> list[str]:
    machine = ARCHES[arch]
    args = [f"--platform={tag}_{machine}" for tag in MANYLINUX]
    return [*args, f"--python-version={PYTHON}", "--implementation=cp", "--abi=cp311",
            "--abi=abi3", "--abi=none", "--only-binary=:all:"]  # fmt: skip


def wheels(arch: str, work: Path) -> Path:
    """The project's wheel and the pinned dependencies' wheels for the target."""
    out = work / f"wheels-{arch}"
    out.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "-q"]
    run(*pip, "download", *platform_args(arch), "--no-deps", "-d", out,
        "-r", HERE / "requirements.txt")  # fmt: skip
    run(*pip, "wheel", "--no-deps", "-w", out, ROOT, env={**os.environ, "PIP_NO_CACHE_DIR": "1"})
    return out


def install_venv(arch: str, found: Path, root: Path) -> None:
    site = root / SITE
    names = [
        line.split("==")[0]
        for line in (HERE / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    # by name from --find-links, never by file path: a path would be recorded in
    # direct_url.json, and the package would hold the build machine's folders
    run(sys.executable, "-m", "pip", "-q", "install", "--no-deps", "--no-index",
        "--find-links", found, "--no-compile", "--target", site, *platform_args(arch),
        *names, f"tinyml-gateway=={project_version()}")  # fmt: skip
    shutil.rmtree(site / "bin", ignore_errors=True)  # pip's scripts name this machine's python
    for cache in site.rglob("__pycache__"):
        shutil.rmtree(cache)
    run(sys.executable, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode",
        "unchecked-hash", "-s", root, "-p", "/", site)  # fmt: skip
    prefix = root / PREFIX
    (prefix / "pyvenv.cfg").write_text(
        f"home = /usr/bin\ninclude-system-site-packages = false\nversion = {PYTHON}\n"
    )
    bindir = prefix / "bin"
    bindir.mkdir(parents=True)
    (bindir / "python").symlink_to(f"/usr/bin/python{PYTHON}")
    (bindir / f"python{PYTHON}").symlink_to("python")
    launcher = bindir / "tinyml-gateway"
    # relative to where it really lies, so that an unpacked tree runs as well
    launcher.write_text(
        '#!/bin/sh\nhere=$(dirname "$(readlink -f "$0")")\nexec "$here/python" -m gateway "$@"\n'
    )
    launcher.chmod(0o755)


def install_files(root: Path, version: str) -> None:
    def put(src: Path, dest: str, mode: int = 0o644) -> None:
        target = root / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
        target.chmod(mode)

    pkg = ROOT / "packaging"
    put(pkg / "config.example.toml", "etc/tinyml-gateway/config.toml", 0o640)
    put(pkg / "systemd/tinyml-gateway.service", "usr/lib/systemd/system/tinyml-gateway.service")
    put(pkg / "systemd/tinyml-gateway.sysusers", "usr/lib/sysusers.d/tinyml-gateway.conf")
    put(pkg / "systemd/tinyml-gateway.tmpfiles", "usr/lib/tmpfiles.d/tinyml-gateway.conf")
    put(pkg / "systemd/tinyml-gateway.modules-load", "usr/lib/modules-load.d/tinyml-gateway.conf")
    put(pkg / "dbus/tinyml-gateway.conf", "usr/share/dbus-1/system.d/tinyml-gateway.conf")
    put(HERE / "lintian-overrides", "usr/share/lintian/overrides/tinyml-gateway")
    share = "usr/share/tinyml-gateway"
    for src in sorted((ROOT / "nodered_flows" / "examples").glob("*.json")):
        put(src, f"{share}/nodered_flows/{src.name}")
    put(ROOT / "nodered_flows" / "README.md", f"{share}/nodered_flows/README.md")
    for folder in ("rule_chains", "device_profiles", "dashboards"):
        for src in sorted((ROOT / "thingsboard_rules" / folder).glob("*.json")):
            put(src, f"{share}/thingsboard_rules/{folder}/{src.name}")
    put(ROOT / "thingsboard_rules" / "README.md", f"{share}/thingsboard_rules/README.md")
    put(ROOT / "thingsboard_rules" / "import.py", f"{share}/thingsboard_rules/import.py")
    doc = root / "usr/share/doc/tinyml-gateway"
    doc.mkdir(parents=True)
    put(HERE / "copyright", "usr/share/doc/tinyml-gateway/copyright")
    for name in ("install.md", "configuration.md", "metrics.md"):
        if (ROOT / "docs" / name).exists():
            put(ROOT / "docs" / name, f"usr/share/doc/tinyml-gateway/{name}")
    changelog = (
        f"tinyml-gateway ({version}) stable; urgency=medium\n\n"
        "  * Release of the upstream version.\n\n"
        " -- tinyml-gateway maintainers <maintainers@tinyml-gateway.invalid>  "
        "Tue, 01 Dec 2026 00:00:00 +0000\n"
    )
    with (
        open(doc / "changelog.gz", "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0, filename="") as gz,
    ):
        gz.write(changelog.encode())
    usr_bin = root / "usr/bin"
    usr_bin.mkdir(parents=True)
    (usr_bin / "tinyml-gateway").symlink_to("/opt/tinyml-gateway/bin/tinyml-gateway")


def control(root: Path, arch: str, version: str) -> None:
    debian = root / "DEBIAN"
    debian.mkdir()
    size_kb = sum(p.lstat().st_size for p in root.rglob("*") if not p.is_dir()) // 1024 + 1
    (debian / "control").write_text(CONTROL.format(version=version, arch=arch, size=size_kb))
    (debian / "conffiles").write_text("/etc/tinyml-gateway/config.toml\n")
    for script in ("postinst", "prerm", "postrm"):
        shutil.copyfile(HERE / script, debian / script)
        (debian / script).chmod(0o755)
    sums = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        rel = path.relative_to(root)
        if rel.parts[0] != "DEBIAN":
            sums.append(f"{hashlib.md5(path.read_bytes()).hexdigest()}  {rel}\n")  # noqa: S324
    (debian / "md5sums").write_text("".join(sums))


def normalise(root: Path, epoch: int) -> None:
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            os.utime(path, (epoch, epoch), follow_symlinks=False)
            continue
        mode = path.stat().st_mode & 0o777
        if path.is_dir():
            path.chmod(0o755)
        elif path.parent.name != "DEBIAN" and not str(path).endswith("config.toml"):
            path.chmod(0o755 if mode & 0o100 else 0o644)
        os.utime(path, (epoch, epoch))


def build(arch: str, out: Path) -> Path:
    version = project_version()
    epoch = source_date_epoch()
    work = out / "work"
    found = wheels(arch, work)
    root = work / f"root-{arch}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    install_venv(arch, found, root)
    install_files(root, version)
    control(root, arch, version)
    normalise(root, epoch)
    deb = out / f"tinyml-gateway_{version}_{arch}.deb"
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch)}
    run("dpkg-deb", "--root-owner-group", "-Zxz", "--build", root, deb, env=env,
        stdout=subprocess.DEVNULL)  # fmt: skip
    return deb


def main() -> None:
    ap = argparse.ArgumentParser(description="Builds the tinyml-gateway Debian package.")
    ap.add_argument("--arch", choices=sorted(ARCHES), required=True)
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "deb")
    args = ap.parse_args()
    deb = build(args.arch, args.out.resolve())
    print(deb)


if __name__ == "__main__":
    main()
