"""A Debian 12 virtual machine with the project's package in it: a real systemd as PID 1,
a real kernel Bluetooth stack and bluetoothd (docs/testing.md, "The VM rig").

- ``rootfs()``: a minbase Debian root filesystem from debootstrap, cached outside the
  clone (``TGW_VM_CACHE``, default /var/cache/tinyml-gateway-vm), keyed by its package
  list: a machine that built it once pays only for the image and the boot.
- ``image()``: a copy of it with the freshly built .deb installed by dpkg in a chroot, a
  root autologin on the console, written into an ext4 image by ``mkfs.ext4 -d`` (no loop
  mount needed).
- ``Guest``: qemu-system-x86_64 under TCG (KVM does not work for guests on these
  machines), the console on a unix socket, the guest's ttyS1 a pseudo-terminal on this
  side; ``run()`` sends one shell command and returns its exit code and output.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

SUITE: Final = "bookworm"
PACKAGES: Final = (
    "systemd-sysv", "udev", "dbus", "bluez", "bluez-test-tools", "mosquitto",
    "mosquitto-clients", "python3.11", "kmod", "linux-image-amd64", "initramfs-tools",
    "iproute2", "procps",
)  # fmt: skip
CACHE: Final = Path(os.environ.get("TGW_VM_CACHE", "/var/cache/tinyml-gateway-vm"))
PROMPT_MARK: Final = "tgw-guest"
_RC = re.compile(rb"__RC_(\d+)__")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_PROMPT = re.compile(r"^root@" + PROMPT_MARK + r"[^#$\n]*[#$] ?", re.M)


class RigError(RuntimeError):
    """The rig cannot run here; the message says what is missing or what failed."""


def _mirror() -> str:
    """The Debian mirror this machine's apt uses (the guest needs no other network)."""
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        m = re.search(r"^URIs:\s*(\S+)", path.read_text(), re.M)
        if m:
            return m.group(1)
    sources = Path("/etc/apt/sources.list")
    if sources.exists():
        m = re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)", sources.read_text(), re.M)
        if m:
            return m.group(1)
    return "http://deb.debian.org/debian"


def _run(args: list[str], what: str, timeout: float = 900) -> None:
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RigError(f"{what} failed ({r.returncode}):\n{(r.stdout + r.stderr)[-3000:]}")


def rootfs() -> Path:
    """The cached root filesystem, made with debootstrap when missing."""
    if shutil.which("debootstrap") is None:
        raise RigError("debootstrap is not installed: run scripts/setup.sh test")
    key = hashlib.sha256(" ".join((SUITE, *PACKAGES)).encode()).hexdigest()[:16]
    root = CACHE / f"rootfs-{key}"
    if (root / ".complete").exists():
        return root
    CACHE.mkdir(parents=True, exist_ok=True)
    building = CACHE / f"rootfs-{key}.partial"
    shutil.rmtree(building, ignore_errors=True)
    _run(
        ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE,
         str(building), _mirror()],
        "debootstrap",
    )  # fmt: skip
    (building / ".complete").touch()
    shutil.rmtree(root, ignore_errors=True)
    building.rename(root)
    return root


_AUTOLOGIN: Final = """[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin root --noclear --keep-baud 115200 %I $TERM
"""


# the guest's end of QEMU's user network: the host reaches its broker by a forwarded port
_NETWORK: Final = """[Match]
Name=en* eth*
[Network]
Address=10.0.2.15/24
Gateway=10.0.2.2
"""
# Mosquitto 2 answers only on loopback unless told; the forwarded port arrives from outside
_BROKER: Final = "listener 1883\nallow_anonymous true\n"


def image(
    root: Path,
    deb: Path,
    work: Path,
    files: dict[str, str] | None = None,
    copies: dict[str, Path] | None = None,
    size: str = "3G",
) -> tuple[Path, Path, Path]:
    """(disk image, kernel, initrd) of the cached root with ``deb`` installed, ``files``
    (path in the guest: text) written and ``copies`` (path in the guest: a file here)
    copied."""
    tree = work / "root"
    _run(["cp", "-a", f"{root}/.", str(tree)], "copying the root filesystem")
    shutil.copy(deb, tree / "tmp" / deb.name)
    _run(["chroot", str(tree), "dpkg", "-i", f"/tmp/{deb.name}"], "dpkg -i in the guest root")
    (tree / "tmp" / deb.name).unlink()
    getty = tree / "etc/systemd/system/serial-getty@ttyS0.service.d"
    getty.mkdir(parents=True, exist_ok=True)
    (getty / "autologin.conf").write_text(_AUTOLOGIN)
    (tree / "etc/hostname").write_text(f"{PROMPT_MARK}\n")
    # a minbase root has none, and the shipped config's broker is "localhost"
    (tree / "etc/hosts").write_text(
        f"127.0.0.1 localhost\n::1 localhost\n127.0.1.1 {PROMPT_MARK}\n"
    )
    (tree / "etc/fstab").write_text("/dev/vda / ext4 rw,errors=remount-ro 0 1\n")
    wanted = tree / "etc/systemd/system/multi-user.target.wants"
    wanted.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        (wanted / "systemd-networkd.service").symlink_to(
            "/lib/systemd/system/systemd-networkd.service"
        )
    for path, text in {
        "etc/systemd/network/10-rig.network": _NETWORK,
        "etc/mosquitto/conf.d/rig.conf": _BROKER,
        **(files or {}),
    }.items():
        target = tree / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    for path, source in (copies or {}).items():
        shutil.copyfile(source, tree / path.lstrip("/"))
    boot = tree / "boot"
    kernel = next(iter(sorted(boot.glob("vmlinuz-*"))), None)
    initrd = next(iter(sorted(boot.glob("initrd.img-*"))), None)
    if kernel is None or initrd is None:
        raise RigError(f"no kernel or initrd in {boot}")
    kernel = Path(shutil.copy(kernel, work / "vmlinuz"))
    initrd = Path(shutil.copy(initrd, work / "initrd.img"))
    disk = work / "disk.img"
    _run(["mkfs.ext4", "-q", "-F", "-d", str(tree), str(disk), size], "mkfs.ext4 -d")
    shutil.rmtree(tree)
    return disk, kernel, initrd


@dataclass
class Guest:
    """One boot of the image. ``serial`` is the host side of the guest's ttyS1."""

    disk: Path
    kernel: Path
    initrd: Path
    cache: str = "directsync"  # what the guest flushed is on the image, nothing more
    broker_port: int = 0  # a port on 127.0.0.1 forwarded to the guest's Mosquitto
    proc: subprocess.Popen[bytes] | None = None
    serial: str = ""  # the guest's ttyS1
    usb_serial: str = ""  # a USB serial adapter in the guest (ttyUSB0, /dev/serial/by-id/)
    console: Path | None = None  # the guest's ttyS0, a root shell
    _sock: socket.socket | None = None
    _buf: bytes = b""

    def boot(self, timeout_s: float = 240) -> float:
        """Starts QEMU and waits for the root shell; returns the seconds it took."""
        if shutil.which("qemu-system-x86_64") is None:
            raise RigError("qemu-system-x86_64 is not installed: run scripts/setup.sh test")
        folder = Path(tempfile.mkdtemp(prefix="tgw-vm-"))
        console = self.console = folder / "console.sock"
        self._buf = b""  # a boot after a power cut must not see the last one's prompt
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [
                "qemu-system-x86_64", "-accel", "tcg,thread=multi", "-cpu", "max",
                "-m", "2048", "-smp", "2", "-machine", "q35", "-nographic", "-no-reboot",
                "-kernel", str(self.kernel), "-initrd", str(self.initrd),
                "-append", "root=/dev/vda rw console=ttyS0,115200 quiet",
                "-drive", f"file={self.disk},format=raw,if=virtio,cache={self.cache}",
                "-chardev", f"socket,id=con,path={console},server=on,wait=off",
                "-serial", "chardev:con",
                "-chardev", "pty,id=sim", "-serial", "chardev:sim",
                "-device", "qemu-xhci,id=xhci",
                "-chardev", "pty,id=usbsim", "-device", "usb-serial,bus=xhci.0,chardev=usbsim",
                "-monitor", "none",
                "-nic", self._nic(),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        ptys = self._ptys({"sim", "usbsim"})
        self.serial, self.usb_serial = ptys["sim"], ptys["usbsim"]
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError):
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self._sock.connect(str(console))
                break
            if time.monotonic() > deadline:
                raise RigError("QEMU's console socket did not appear")
            time.sleep(0.1)
        self._expect(re.compile(rb"root@" + PROMPT_MARK.encode() + rb"[^\n]*[#$] "), timeout_s)
        # no echo, no bracketed-paste escapes, no pager: output is the command's alone
        self.run(
            "stty -echo cols 500; bind 'set enable-bracketed-paste off' 2>/dev/null; "
            "export PAGER=cat SYSTEMD_PAGER=cat SYSTEMD_COLORS=0"
        )
        return time.monotonic() - t0

    def _nic(self) -> str:
        # the guest reaches this machine's loopback as 10.0.2.2 (a broker outside the
        # guest survives its power cuts); the forwarded port reaches the guest's Mosquitto
        nic = "user,model=virtio-net-pci"
        if self.broker_port:
            nic += f",hostfwd=tcp:127.0.0.1:{self.broker_port}-:1883"
        return nic

    def _ptys(self, labels: set[str]) -> dict[str, str]:
        """The host ends of QEMU's pty character devices, by label."""
        assert self.proc is not None and self.proc.stdout is not None
        found: dict[str, str] = {}
        deadline = time.monotonic() + 30
        line = b""
        while time.monotonic() < deadline and set(found) != labels:
            line = self.proc.stdout.readline()
            m = re.search(rb"char device redirected to (/dev/pts/\d+) \(label (\w+)\)", line)
            if m:
                found[m.group(2).decode()] = m.group(1).decode()
        if set(found) != labels:
            raise RigError(f"QEMU did not say where its ptys are ({found}, {line!r})")
        return found

    def _expect(self, pattern: re.Pattern[bytes], timeout_s: float) -> re.Match[bytes]:
        assert self._sock is not None
        deadline = time.monotonic() + timeout_s
        while True:
            m = pattern.search(self._buf)
            if m:
                self._buf = self._buf[m.end() :]
                return m
            left = deadline - time.monotonic()
            if left <= 0 or (self.proc is not None and self.proc.poll() is not None):
                raise RigError(
                    f"the guest did not print {pattern.pattern!r}: {self._buf[-2000:]!r}"
                )
            self._sock.settimeout(min(left, 1.0))
            with contextlib.suppress(TimeoutError):
                self._buf += self._sock.recv(65536)

    def run(self, command: str, timeout_s: float = 120) -> tuple[int, str]:
        """Runs ``command`` in the guest's root shell: (exit code, output)."""
        assert self._sock is not None
        self._buf = b""
        # the marker is assembled by the shell, so the echoed command never matches it
        self._sock.sendall(f'{command}; echo "__R""C_$?__"\n'.encode())
        m = self._expect(_RC, timeout_s)
        out = self._buf_before(m)
        return int(m.group(1)), out

    def must(self, command: str, timeout_s: float = 120) -> str:
        """``run``, for a command that has to succeed: fails the test with its output."""
        rc, out = self.run(command, timeout_s)
        if rc != 0:
            raise AssertionError(f"in the guest, `{command}` exited {rc}:\n{out[-3000:]}")
        return out

    def until(self, condition: str, timeout_s: float = 120) -> None:
        """Waits in the guest until the shell ``condition`` holds (a hang guard only)."""
        loop = shlex.quote(f"until {condition}; do sleep 1; done")
        self.must(f"timeout {timeout_s:.0f} sh -c {loop}", timeout_s + 30)

    async def must_async(self, command: str, timeout_s: float = 120) -> str:
        """``must`` in a thread: the event loop (subscribers, simulated nodes) goes on."""
        return await asyncio.to_thread(self.must, command, timeout_s)

    def write(self, path: str, text: str, mode: str = "0640") -> None:
        """Writes ``text`` to ``path`` in the guest (base64 over the console, in pieces
        under the tty's 4,096-byte line limit), keeping an existing file's owner."""
        data = base64.b64encode(text.encode()).decode()
        part = f"{path}.rig-part"
        self.run(f": > {part}")
        for i in range(0, len(data), 2000):
            self.run(f"printf %s '{data[i : i + 2000]}' >> {part}")
        rc, out = self.run(f"base64 -d {part} > {path} && chmod {mode} {path} && rm {part}")
        if rc != 0:
            raise RigError(f"writing {path} in the guest failed: {out}")

    def _buf_before(self, m: re.Match[bytes]) -> str:
        text = _ANSI.sub("", m.string[: m.start()].decode(errors="replace").replace("\r", ""))
        # with echo off a prompt and the output's first line share a line: drop the prompt
        return _PROMPT.sub("", text).strip("\n")

    def release_console(self) -> None:
        """Lets another client (socat) have the console: QEMU serves one at a time."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def cut_power(self) -> None:
        """Ends QEMU at once: what the guest had not flushed is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.release_console()

    def shutdown(self, timeout_s: float = 60) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(OSError, RigError):
            assert self._sock is not None
            self._sock.sendall(b"systemctl poweroff\n")
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.cut_power()


def main() -> None:
    """``python -m tests.vm.rig [DEB]``: boots a guest with DEB (default: a fresh build of
    the amd64 package) and keeps it up until Ctrl-C, for a shell on its console."""
    import sys

    from tests.packages import build_deb

    work = Path(tempfile.mkdtemp(prefix="tgw-vm-shell-"))
    deb = Path(sys.argv[1]) if len(sys.argv) > 1 else build_deb("amd64", work)
    guest = Guest(
        *image(rootfs(), deb, work), broker_port=int(os.environ.get("TGW_VM_BROKER_PORT", "18830"))
    )
    print(f"booted in {guest.boot():.0f} s", flush=True)
    guest.release_console()
    print(f"console:  socat -,raw,echo=0 UNIX-CONNECT:{guest.console}")
    print(f"ttyS1:    {guest.serial}   USB serial: {guest.usb_serial}")
    print(f"broker:   127.0.0.1:{guest.broker_port}   Ctrl-C powers it off", flush=True)
    try:
        assert guest.proc is not None
        guest.proc.wait()
    except KeyboardInterrupt:
        guest.shutdown()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
