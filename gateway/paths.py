"""Whether the gateway can write where it keeps its data, and what to do when it cannot.

``check-config`` and ``run`` ask before opening the outbox, and the outbox asks
again when SQLite refuses to write, so that a read-only or permission problem
is never reported as a damaged database (the advice for that, moving the file
aside, would be wrong for a healthy one).
"""

from __future__ import annotations

import errno
import os
import pwd
from pathlib import Path


def _user() -> str:
    uid = os.geteuid()
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def unwritable(path: Path, what: str) -> tuple[str, str] | None:
    """(problem, fix) when the folder ``path`` cannot hold the gateway's files, else None.

    A folder that does not exist yet is fine when it can be created.
    """
    target = path
    while not target.exists():
        if target.parent == target:
            break
        target = target.parent
    if not target.is_dir():
        return (
            f"{target} is a file, not a folder",
            f"set {what} to a folder (it is created if missing)",
        )
    if os.access(target, os.W_OK | os.X_OK):
        return None
    created = "" if target == path else f" (it would be created in {target})"
    return _refused(path, target, what, created)


def turned_read_only(folder: Path) -> tuple[str, str] | None:
    """(problem, fix) when writes in ``folder`` fail with EROFS although its filesystem
    is mounted read-write: the kernel turned it read-only after an I/O error (ext4's
    ``errors=remount-ro``, Raspberry Pi OS's default); statvfs, access() and /proc/mounts
    still say rw. Found by creating (and removing) a file: nothing else tells."""
    probe = folder / f".tinyml-gateway-probe-{os.getpid()}"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as exc:
        if exc.errno != errno.EROFS:
            return None
        return (
            f"the filesystem under {folder} has turned read-only after an error (the kernel "
            "does this on an I/O error of the card or disk, and /proc/mounts may still say rw)",
            "see `dmesg` for the device's errors, check the filesystem (fsck, or reboot: "
            "Raspberry Pi OS checks it at boot) and mount it read-write again; replace a "
            "failing SD card. Nothing stored is lost: the nodes resend what was not "
            "acknowledged",
        )
    os.unlink(probe)
    return None


def unwritable_file(path: Path, what: str, *, probe: bool = False) -> tuple[str, str] | None:
    """The same for a file the gateway writes in place (the outbox and its WAL).

    ``probe``: when nothing else finds a problem, also try a write in its folder (for a
    write that has already failed: a filesystem turned read-only by an error looks
    writable to every other check). A configuration check never probes: a failed disk is
    not a configuration problem.
    """
    problem = unwritable(path.parent, what)
    if problem is not None:
        return problem
    if path.exists() and not os.access(path, os.W_OK):
        return _refused(path, path, what)
    return turned_read_only(path.parent) if probe and path.parent.is_dir() else None


def _refused(path: Path, target: Path, what: str, created: str = "") -> tuple[str, str]:
    """Why ``path`` cannot be written (``target``: what exists of it), and the fix."""
    if _read_only_fs(target):
        return (
            f"{path} is on a read-only filesystem{created}",
            f"remount it read-write, or set {what} to a place on a writable filesystem",
        )
    return (
        f"{path} cannot be written by {_user()}{created}",
        f"run as the user that owns it (the service's user), or give that user write "
        f"access: chown or chmod {target}",
    )
