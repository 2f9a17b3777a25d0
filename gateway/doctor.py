"""``tinyml-gateway doctor``: checks a live install and prints what to fix, one line each.

Every check says OK or FAIL with the fix; the exit code is 0 when nothing failed, 1
otherwise (78 when the configuration itself does not load). Access is checked for the
user the service runs as (``--user``, default ``tinyml-gateway`` when that user exists),
not for whoever runs the doctor: root can open every device, the service cannot.
"""

from __future__ import annotations

import asyncio
import dataclasses
import glob
import grp
import os
import pwd
import shutil
import ssl
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiomqtt

from gateway.clock import Clock
from gateway.config import Config
from gateway.errors import ConfigError
from gateway.sinks.links import nodered_link, thingsboard_link
from gateway.sinks.mqtt import LINK_ERRORS, MqttLink, MqttSession, auth_refused

SERVICE_USER = "tinyml-gateway"
MIN_FREE_MB = 100.0
BROKER_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Check:
    ok: bool
    what: str
    fix: str = ""

    def line(self) -> str:
        if self.ok:
            return f"OK    {self.what}"
        return f"FAIL  {self.what}" + (f"; fix: {self.fix}" if self.fix else "")


@dataclass(frozen=True, slots=True)
class User:
    name: str
    uid: int
    gids: frozenset[int]

    @classmethod
    def named(cls, name: str | None) -> User:
        if name is None:
            try:
                pw = pwd.getpwnam(SERVICE_USER)
            except KeyError:
                pw = pwd.getpwuid(os.geteuid())
        else:
            pw = pwd.getpwnam(name)
        groups = {g.gr_gid for g in grp.getgrall() if pw.pw_name in g.gr_mem}
        return cls(pw.pw_name, pw.pw_uid, frozenset({pw.pw_gid, *groups}))

    def can(self, path: Path, want: int) -> bool:
        """Whether this user has ``want`` (os.R_OK | os.W_OK ...) on ``path`` by its mode."""
        if self.uid == 0:
            return True
        st = path.stat()
        mode = stat.S_IMODE(st.st_mode)
        if st.st_uid == self.uid:
            bits = mode >> 6
        elif st.st_gid in self.gids:
            bits = mode >> 3
        else:
            bits = mode
        return bits & want == want


def serial(cfg: Config, user: User) -> Iterator[Check]:
    for section in cfg.serial:
        matches = (
            sorted(glob.glob(section.path)) if glob.has_magic(section.path) else [section.path]
        )
        present = [Path(m) for m in matches if Path(m).exists()]
        if not present:
            yield Check(
                False,
                f"serial {section.path}: no such device",
                "plug the node in, or correct [[serial]] path (ls /dev/serial/by-id/)",
            )
            continue
        for path in present:
            real = path.resolve()
            if user.can(real, os.R_OK | os.W_OK):
                yield Check(True, f"serial {path}: present, readable and writable by {user.name}")
            else:
                group = grp.getgrgid(real.stat().st_gid).gr_name
                yield Check(
                    False,
                    f"serial {path}: {user.name} cannot read and write {real}",
                    f"add {user.name} to the group {group} (sudo usermod -aG {group} {user.name})",
                )


def outbox(cfg: Config, user: User) -> Iterator[Check]:
    folder = cfg.outbox_path.parent
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not (existing.is_dir() and user.can(existing, os.W_OK | os.X_OK)) or (
        os.statvfs(existing).f_flag & os.ST_RDONLY
    ):
        yield Check(
            False,
            f"outbox {cfg.outbox_path}: {existing} is not writable by {user.name}",
            f"sudo chown {user.name}: {existing}, or set [gateway] data_dir to a folder it owns",
        )
        return
    free_mb = shutil.disk_usage(existing).free / 1e6
    need = max(MIN_FREE_MB, cfg.outbox.max_size_mb)
    if free_mb < need:
        yield Check(
            False,
            f"outbox {cfg.outbox_path}: {free_mb:.0f} MB free, under {need:.0f} MB",
            "free space there, or lower [outbox] max_size_mb",
        )
        return
    yield Check(True, f"outbox {cfg.outbox_path}: writable by {user.name}, {free_mb:.0f} MB free")


def clock(cfg: Config) -> Check:
    if Clock(cfg.gateway.clock_check).synced():
        return Check(True, f"clock synchronised ({cfg.gateway.clock_check})")
    return Check(
        False,
        f"clock not synchronised ({cfg.gateway.clock_check}): events are stamped with the"
        " arrival time and marked unsynced",
        "enable systemd-timesyncd or chrony (timedatectl set-ntp true)",
    )


async def broker(name: str, link: MqttLink) -> Check:
    where = f"{name} broker {link.host}:{link.port}" + (" (TLS)" if link.ca_file else "")
    # its own client id: the running gateway's session must not be taken over
    probe = dataclasses.replace(link, client_id=f"{link.client_id}-doctor")
    try:
        async with asyncio.timeout(BROKER_TIMEOUT_S):
            async with MqttSession(name, probe).connect():  # the path the gateway uses
                pass
    except ssl.SSLError as exc:
        return _tls_failed(where, name, exc)
    except (*LINK_ERRORS, OSError, TimeoutError) as exc:
        if isinstance(exc.__cause__, ssl.SSLError):
            return _tls_failed(where, name, exc.__cause__)
        if auth_refused(exc) or isinstance(exc, aiomqtt.MqttCodeError):
            return Check(
                False,
                f"{where}: refused the connection ({exc})",
                f"check the credentials in [{name}] (username/password, or token)",
            )
        return Check(
            False,
            f"{where}: not reachable ({exc or 'timed out'})",
            f"check [{name}] host and port, and that the broker runs",
        )
    return Check(True, f"{where}: connected with the configured credentials")


def _tls_failed(where: str, name: str, exc: ssl.SSLError) -> Check:
    return Check(False, f"{where}: TLS failed ({exc})", f"check [{name}.tls] ca_file")


async def bluez(cfg: Config) -> Check:
    try:
        from dbus_fast import BusType, Message, MessageType
        from dbus_fast.aio import MessageBus
    except ImportError:
        return Check(
            False, "BLE: the ble extra is not installed", "pip install 'tinyml-gateway[ble]'"
        )
    path = f"/org/bluez/{cfg.ble.adapter}"
    try:
        async with asyncio.timeout(BROKER_TIMEOUT_S):
            bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
            try:
                reply = await bus.call(
                    Message(
                        destination="org.bluez",
                        path=path,
                        interface="org.freedesktop.DBus.Properties",
                        member="Get",
                        signature="ss",
                        body=["org.bluez.Adapter1", "Powered"],
                    )
                )
            finally:
                bus.disconnect()
    except (OSError, TimeoutError) as exc:
        return Check(False, f"BLE: the system D-Bus is not reachable ({exc})", "start dbus")
    if reply.message_type == MessageType.ERROR:
        return Check(
            False,
            f"BLE: BlueZ has no adapter {cfg.ble.adapter} ({reply.error_name})",
            "start bluetoothd (systemctl start bluetooth), or set [ble] adapter",
        )
    if not reply.body[0].value:
        return Check(False, f"BLE: adapter {cfg.ble.adapter} is off", "bluetoothctl power on")
    return Check(True, f"BLE: BlueZ reachable, adapter {cfg.ble.adapter} powered")


def models(cfg: Config) -> Check:
    from gateway.verify.registry import check_models

    try:
        found = check_models(cfg.verify)
    except ConfigError as exc:
        field, msg, hint = exc.problems[0]
        return Check(False, f"models: {field}: {msg}", hint)
    return Check(True, f"models: {len(found)} loaded and checked")


async def checks(cfg: Config, user: User) -> list[Check]:
    out = [Check(True, "configuration valid")]
    out += serial(cfg, user)
    if cfg.ble.enabled:
        out.append(await bluez(cfg))
    if cfg.mqtt.enabled:
        out.append(await broker("mqtt", nodered_link(cfg)))
    if cfg.thingsboard.enabled:
        out.append(await broker("thingsboard", thingsboard_link(cfg)))
    out += outbox(cfg, user)
    out.append(clock(cfg))
    if cfg.verify.enabled:
        out.append(models(cfg))
    return out


def run(cfg: Config, user_name: str | None) -> int:
    try:
        user = User.named(user_name)
    except KeyError:
        print(f"FAIL  no user {user_name!r}; fix: name the service's user with --user")
        return 1
    print(f"checking as the service user {user.name}")
    results = asyncio.run(checks(cfg, user))
    for check in results:
        print(check.line())
    return 0 if all(c.ok for c in results) else 1
