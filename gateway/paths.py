"""Whether the gateway can write where it keeps its data, and what to do when it cannot.

``check-config`` and ``run`` ask before opening the outbox, and the outbox asks
again when SQLite refuses to write, so that a read-only or permission problem
is never reported as a damaged database (the advice for that, moving the file
aside, would be wrong for a healthy one).
"""

from __future__ import annotations

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


def unwritable_file(path: Path, what: str) -> tuple[str, str] | None:
    """The same for a file the gateway writes in place (the outbox and its WAL)."""
    problem = unwritable(path.parent, what)
    if problem is not None or not path.exists() or os.access(path, os.W_OK):
        return problem
    return _refused(path, path, what)


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
