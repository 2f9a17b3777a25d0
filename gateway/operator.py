"""What an operator asks of a running gateway from the shell: ``tinyml-gateway node forget``.

The request is a row in the outbox's ``requests`` table; the gateway takes it
within a second (or at its next start) and deletes the row when it is done,
so the command can tell the two apart. The database is never written by two
owners of node state: only the gateway changes it.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Final

from gateway.model import node_hex

WAIT_S: Final = 10.0


def request_forget(outbox: Path, node_id: int, wait_s: float = WAIT_S) -> tuple[bool, str]:
    """Asks the gateway to forget a node's stored state. Returns (ok, what to print)."""
    from gateway.outbox import SCHEMA_VERSION, to_i64

    name = node_hex(node_id)
    if not outbox.exists():
        return False, f"no outbox at {outbox}: the gateway has stored nothing to forget"
    try:
        db = sqlite3.connect(f"file:{outbox}?mode=rw", uri=True, timeout=wait_s)
    except sqlite3.Error as exc:
        return False, f"cannot open {outbox}: {exc} (run as the gateway's user)"
    try:
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version != SCHEMA_VERSION:
            return False, (
                f"{outbox} has schema {version}, this command {SCHEMA_VERSION}: run the "
                "installed gateway's own command (or start it once to migrate the file)"
            )
        with db:
            rid = db.execute(
                "INSERT INTO requests(action, node) VALUES ('forget', ?)", (to_i64(node_id),)
            ).lastrowid
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if db.execute("SELECT 1 FROM requests WHERE id = ?", (rid,)).fetchone() is None:
                return True, f"the gateway forgot node {name}'s stored state"
            time.sleep(0.2)
    except sqlite3.Error as exc:
        return False, f"cannot write {outbox}: {exc} (run as the gateway's user)"
    finally:
        db.close()
    return True, (
        f"asked the gateway to forget node {name}: it is not running or did not answer "
        f"within {wait_s:g} s, and does it when it next runs"
    )
