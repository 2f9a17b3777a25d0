"""The durable outbox: SQLite in WAL mode, the only buffer in the gateway that grows.

Every record is committed before its node is acknowledged and before any sink
sees it. Each sink has a cursor (``acked``): every record with an id at or
below it is confirmed by that sink. A record is deleted once every configured
sink's cursor has passed it. Per-node sequence state (dedup, replay, ACK
frontier, time offset) is written in the same transaction as the records, so
a crash at any point leaves the two consistent.

All database work runs on one worker thread with one connection, so the event
loop never waits on an fsync and SQLite never sees two threads. Batches go in and out
in a few statements each (``gateway.bulk``): per-row steps would make that thread wait
for the GIL once per row while the event loop is busy.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import sqlite3
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

from gateway.bulk import insert_rows, select_rows
from gateway.clock import Clock
from gateway.errors import OutboxError, OutboxFullError
from gateway.model import Record, RecordKind
from gateway.paths import unwritable_file
from gateway.protocol import SequenceState
from gateway.protocol.value import value

log = logging.getLogger(__name__)
_PROTOCOL_RETRIES: Final = 5
BUSY_WAIT_S = 300.0  # how long a statement waits for another connection's write lock

SCHEMA_VERSION: Final = 5
_T = TypeVar("_T")

_KIND_CODES: Final = {
    RecordKind.EVENT: 1,
    RecordKind.HEARTBEAT: 2,
    RecordKind.INFO: 3,
    RecordKind.LOG: 4,
    RecordKind.STATUS: 5,
}
_KINDS: Final = {v: k for k, v in _KIND_CODES.items()}


def to_i64(n: int) -> int:
    """SQLite integers are signed 64-bit; node ids use all 64 bits."""
    return n - (1 << 64) if n >= 1 << 63 else n


def _from_i64(n: int) -> int:
    return n + (1 << 64) if n < 0 else n


# Each entry migrates from version (index) to version (index + 1).
_MIGRATIONS: Final[list[str]] = [
    """
    CREATE TABLE records (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind INTEGER NOT NULL,
        node INTEGER NOT NULL,
        boot INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        uptime INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        unsynced TEXT,           -- kernel boot id when stamped by an unsynchronised clock
        transport TEXT NOT NULL,
        data BLOB NOT NULL
    );
    CREATE INDEX records_unsynced ON records(unsynced) WHERE unsynced IS NOT NULL;
    CREATE TABLE sinks (name TEXT PRIMARY KEY, acked INTEGER NOT NULL);
    CREATE TABLE nodes (
        node INTEGER PRIMARY KEY,
        boot INTEGER NOT NULL,
        contiguous INTEGER NOT NULL,
        above TEXT NOT NULL,
        control TEXT NOT NULL,
        offset_ms INTEGER,
        downlink_seq INTEGER NOT NULL,
        info BLOB
    );
    CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
    """,
    # 2: a sink's own small state, written with its cursor (ThingsBoard: last ts per device)
    """
    CREATE TABLE sink_state (
        sink TEXT NOT NULL,
        key TEXT NOT NULL,
        value INTEGER NOT NULL,
        PRIMARY KEY (sink, key)
    );
    """,
    # 3: when the gateway stored each record, by its own clock: the age limit counts from
    # it, never from a time derived from what a node said (older rows: their ts)
    """
    ALTER TABLE records ADD COLUMN stored INTEGER;
    UPDATE records SET stored = ts;
    """,
    # 4: boots confirmed before they are adopted, a dedup epoch that a boot-counter reset
    # or an operator's "node forget" moves on (stored nodes count as confirmed), the RSSI
    # of BLE nodes, and the operator's requests to a running gateway
    """
    ALTER TABLE records ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE records ADD COLUMN rssi INTEGER;
    ALTER TABLE nodes ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE nodes ADD COLUMN boot_messages INTEGER NOT NULL DEFAULT 2;
    CREATE TABLE requests (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        action TEXT NOT NULL,
        node INTEGER NOT NULL
    );
    """,
    # 5: the gateway's verdict on an EVENT's window, stored with the event (JSON)
    """
    ALTER TABLE records ADD COLUMN verdict TEXT;
    """,
]


@dataclass(slots=True)
class NodeState:
    """What the outbox keeps per node, beside its records."""

    seq: SequenceState = field(default_factory=SequenceState)
    offset_ms: int | None = None  # wall clock minus node uptime, for seq.boot_id
    downlink_seq: int = 0
    info: bytes | None = None  # the node's last INFO message, raw
    # when offset_ms was last set (gateway wall clock); not stored: unknown after a restart
    offset_at_ms: int | None = field(default=None, compare=False)
    offset_boot: int | None = field(default=None, compare=False)  # None: seq.boot_id


@value
class NewRecord:
    kind: RecordKind
    node_id: int
    boot_id: int
    seq: int
    uptime_ms: int
    ts_ms: int
    unsynced: str | None
    transport: str
    data: bytes
    epoch: int = 0
    rssi: int | None = None
    verdict: str | None = None  # JSON: the verification stage's fields (events only)


@dataclass(slots=True)
class OutboxStats:
    used_bytes: int = 0
    dropped_cap: int = 0  # records deleted by the size cap before every sink had them
    expired: int = 0  # records deleted by max age before every sink had them
    disk_full: bool = False
    # persisted counters (dropped_events:<sink>, dropped_records:<sink>), as of the last
    # limits pass: what users ask about, kept across restarts
    persisted: dict[str, int] = field(default_factory=dict)


class Outbox:
    def __init__(
        self,
        path: Path,
        *,
        max_size_bytes: int,
        max_age_ms: int,
        sync: str = "full",
    ) -> None:
        self.path = path
        self.max_size_bytes = max_size_bytes
        self.max_age_ms = max_age_ms
        self._sync = sync
        self._db: sqlite3.Connection | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        self._sinks: list[str] = []
        self.stats = OutboxStats()

    # ---- plumbing ------------------------------------------------------------------

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise OutboxError("outbox is not open")
        return self._db

    def _write(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """Runs ``fn`` in one transaction; maps disk-full and corruption to typed errors.

        ``fn`` changes nothing but the database: a transaction that SQLite refuses with
        SQLITE_PROTOCOL (its WAL lock handshake lost a race, which SQLite documents as
        worth retrying) is rolled back and run again, up to ``_PROTOCOL_RETRIES`` times.
        """
        db = self.db
        try:
            for attempt in itertools.count(1):
                try:
                    with db:
                        result = fn(db)
                    break
                except sqlite3.OperationalError as exc:
                    if _code(exc) != sqlite3.SQLITE_PROTOCOL or attempt >= _PROTOCOL_RETRIES:
                        raise
                    log.debug("outbox %s: %s; transaction retried", self.path, exc)
                    time.sleep(0.01 * attempt)
        except sqlite3.OperationalError as exc:
            if _is_full(exc):
                if not self.stats.disk_full:
                    log.error(
                        "outbox %s: disk full; new events are not acknowledged and stay on "
                        "the nodes until space is freed; nothing stored is deleted",
                        self.path,
                    )
                self.stats.disk_full = True
                raise OutboxFullError(str(exc)) from None
            raise self._failed(exc) from None
        except sqlite3.DatabaseError as exc:
            raise OutboxError(f"outbox {self.path} failed: {exc}") from None
        if self.stats.disk_full:
            log.warning("outbox %s: disk has space again; acknowledging resumes", self.path)
            self.stats.disk_full = False
        return result

    # ---- open / close ------------------------------------------------------------

    async def open(self, sinks: Sequence[str]) -> dict[int, NodeState]:
        """Opens (creating or migrating) the database; returns the stored node states."""
        self._sinks = list(sinks)
        return await self._run(self._open)

    def _open(self) -> dict[int, NodeState]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # a tool holding the write lock a while (node forget) makes a commit wait, not
            # fail; a lock never released is the supervisor's (health.stall_s)
            db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=BUSY_WAIT_S
            )
        except (OSError, sqlite3.Error) as exc:
            raise self._cannot_write(exc) or OutboxError(
                f"cannot open outbox {self.path}: {exc}"
            ) from None
        try:
            db.execute("PRAGMA journal_mode=WAL").fetchone()
            db.execute(f"PRAGMA synchronous={'FULL' if self._sync == 'full' else 'NORMAL'}")
            db.isolation_level = "DEFERRED"
            self._db = db
            self._migrate(db)
            self._register_sinks(db)
            nodes = self._load_nodes(db)
            self._refresh_stats(db)
        except sqlite3.DatabaseError as exc:
            db.close()
            self._db = None
            if _is_full(exc):
                raise OutboxFullError(f"outbox {self.path}: disk full at start: {exc}") from None
            access = self._cannot_write(exc)
            if access is not None:
                raise access from None
            raise OutboxError(
                f"outbox {self.path} is not a usable SQLite database ({exc}); the gateway "
                f"will not overwrite it: move it aside (mv {self.path} {self.path}.bad) and "
                "start again, or restore it from a backup"
            ) from None
        return nodes

    def _failed(self, exc: sqlite3.OperationalError) -> OutboxError:
        """A write that failed for another reason than a full disk, named for the user:
        a filesystem turned read-only, a permission, or an I/O error of the device."""
        access = self._cannot_write(exc)
        if access is not None:
            return access
        name = getattr(exc, "sqlite_errorname", "") or type(exc).__name__
        return OutboxError(
            f"outbox {self.path} cannot be written: the disk reported an error ({exc}, "
            f"{name}); see `dmesg` for the device's errors and check the filesystem (fsck). "
            "Nothing stored is lost: the nodes resend what was not acknowledged"
        )

    def _cannot_write(self, exc: Exception) -> OutboxError | None:
        """A read-only or permission problem, told apart from a damaged file."""
        problem = unwritable_file(self.path, "gateway.data_dir (or outbox.path)", probe=True)
        name = getattr(exc, "sqlite_errorname", "")
        if problem is None and not name.startswith(_ACCESS_ERRORS):
            return None
        what, fix = problem or (
            f"SQLite cannot write it or its -wal and -shm files ({exc})",
            "check the permissions of the file, those files and their folder",
        )
        return OutboxError(
            f"outbox {self.path} cannot be written: {what}. The file is not damaged; {fix}"
        )

    def _migrate(self, db: sqlite3.Connection) -> None:
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise OutboxError(
                f"outbox {self.path} has schema {version}, newer than this gateway's "
                f"{SCHEMA_VERSION}: upgrade the gateway, or move the file aside"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            script = _MIGRATIONS[target - 1]
            # executescript commits first; the version bump is in the script's own
            # transaction so a crash mid-migration re-runs it from the start.
            db.executescript(f"BEGIN; {script}; PRAGMA user_version={target}; COMMIT;")
            log.info("outbox %s: schema migrated to %d", self.path, target)

    def _register_sinks(self, db: sqlite3.Connection) -> None:
        with db:
            # a new sink starts from what is stored now, so it gets the backlog too
            floor = db.execute("SELECT coalesce(min(id), 0) - 1 FROM records").fetchone()[0]
            floor = max(floor, 0)
            for name in self._sinks:
                db.execute("INSERT OR IGNORE INTO sinks(name, acked) VALUES (?, ?)", (name, floor))
            marks = ",".join("?" * len(self._sinks))
            db.execute(f"DELETE FROM sinks WHERE name NOT IN ({marks})", self._sinks)  # noqa: S608
            db.execute(f"DELETE FROM sink_state WHERE sink NOT IN ({marks})", self._sinks)  # noqa: S608

    def _load_nodes(self, db: sqlite3.Connection) -> dict[int, NodeState]:
        out: dict[int, NodeState] = {}
        rows = db.execute(
            "SELECT node, boot, contiguous, above, control, offset_ms, downlink_seq, info, "
            "epoch, boot_messages FROM nodes"
        )
        for (
            node,
            boot,
            contiguous,
            above,
            control,
            offset_ms,
            downlink_seq,
            info,
            epoch,
            heard,
        ) in rows:
            seq = SequenceState(
                boot_id=boot,
                contiguous=contiguous,
                above=set(json.loads(above)),
                control_uptime={int(k): v for k, v in json.loads(control).items()},
                boot_messages=heard,
                epoch=epoch,
            )
            out[_from_i64(node)] = NodeState(seq, offset_ms, downlink_seq, info)
        return out

    async def close(self) -> None:
        if self._db is not None:
            await self._run(self._close)
        self._pool.shutdown(wait=True)

    def _close(self) -> None:
        if self._db is not None:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                log.warning("outbox %s: checkpoint at close failed: %s", self.path, exc)
            self._db.close()
            self._db = None

    # ---- writes ------------------------------------------------------------------

    async def commit(
        self,
        records: Sequence[NewRecord],
        nodes: dict[int, NodeState],
        forget: Collection[int] = (),
    ) -> None:
        """Stores records and the given node states, and deletes the state of the nodes in
        ``forget``, atomically (one fsync)."""
        await self._run(self._write, lambda db: self._commit(db, records, nodes, forget))

    @staticmethod
    def _commit(
        db: sqlite3.Connection,
        records: Sequence[NewRecord],
        nodes: dict[int, NodeState],
        forget: Collection[int],
    ) -> None:
        stored = Clock.now_ms()
        insert_rows(
            db,
            "INSERT INTO records(kind, node, boot, seq, uptime, ts, unsynced, transport, data, "
            "stored, epoch, rssi, verdict) VALUES",
            13,
            [
                (
                    _KIND_CODES[r.kind],
                    to_i64(r.node_id),
                    r.boot_id,
                    r.seq,
                    r.uptime_ms,
                    r.ts_ms,
                    r.unsynced,
                    r.transport,
                    r.data,
                    stored,
                    r.epoch,
                    r.rssi,
                    r.verdict,
                )
                for r in records
            ],
        )
        insert_rows(
            db,
            "INSERT OR REPLACE INTO nodes(node, boot, contiguous, above, control, offset_ms, "
            "downlink_seq, info, epoch, boot_messages) VALUES",
            10,
            [
                (
                    to_i64(node),
                    st.seq.boot_id,
                    st.seq.contiguous,
                    json.dumps(sorted(st.seq.above)),
                    json.dumps(st.seq.control_uptime),
                    st.offset_ms,
                    st.downlink_seq,
                    st.info,
                    st.seq.epoch,
                    st.seq.boot_messages,
                )
                for node, st in nodes.items()
            ],
        )
        if forget:
            db.executemany("DELETE FROM nodes WHERE node = ?", [(to_i64(n),) for n in forget])

    async def ack(self, sink: str, upto_id: int, state: Mapping[str, int] | None = None) -> None:
        """Records that ``sink`` has every record up to ``upto_id``; deletes what all sinks have.

        ``state`` (the sink's own values as of that position) is stored in the
        same transaction, so the two never disagree after a crash.
        """
        await self._run(self._write, lambda db: self._ack(db, sink, upto_id, state or {}))

    @staticmethod
    def _ack(db: sqlite3.Connection, sink: str, upto_id: int, state: Mapping[str, int]) -> None:
        db.execute("UPDATE sinks SET acked = max(acked, ?) WHERE name = ?", (upto_id, sink))
        db.execute("DELETE FROM records WHERE id <= (SELECT min(acked) FROM sinks)")
        insert_rows(
            db,
            "INSERT OR REPLACE INTO sink_state(sink, key, value) VALUES",
            3,
            [(sink, k, v) for k, v in state.items()],
        )

    async def restamp(self, kernel_boot: str, correction_ms: int) -> int:
        """Moves records stamped by an unsynchronised clock (this boot) onto the synced one."""

        def fix(db: sqlite3.Connection) -> int:
            cur = db.execute(
                "UPDATE records SET ts = ts + ?, stored = stored + ?, unsynced = NULL "
                "WHERE unsynced = ?",
                (correction_ms, correction_ms, kernel_boot),
            )
            db.execute(
                "UPDATE nodes SET offset_ms = offset_ms + ? WHERE offset_ms IS NOT NULL",
                (correction_ms,),
            )
            return int(cur.rowcount)

        return await self._run(self._write, fix)

    # ---- reads -------------------------------------------------------------------

    async def cursor(self, sink: str) -> int:
        def get(db: sqlite3.Connection) -> int:
            row = db.execute("SELECT acked FROM sinks WHERE name = ?", (sink,)).fetchone()
            return int(row[0]) if row else 0

        return await self._run(get, self.db)

    async def sink_state(self, sink: str) -> dict[str, int]:
        def get(db: sqlite3.Connection) -> dict[str, int]:
            rows = db.execute("SELECT key, value FROM sink_state WHERE sink = ?", (sink,))
            return {str(k): int(v) for k, v in rows}

        return await self._run(get, self.db)

    async def fetch(self, after_id: int, limit: int) -> list[Record]:
        return await self._run(self._fetch, after_id, limit)

    def _fetch(self, after_id: int, limit: int) -> list[Record]:
        rows = select_rows(
            self.db,
            "id, kind, node, boot, seq, uptime, ts, unsynced IS NULL, transport, hex(data), "
            "epoch, rssi, verdict",
            "SELECT * FROM records WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, limit),
        )
        return [
            Record(i, _KINDS[k], _from_i64(n), b, s, u, ts, bool(sy), tr, bytes.fromhex(d), e, r, v)
            for i, k, n, b, s, u, ts, sy, tr, d, e, r, v in rows
        ]

    async def pending(self, sink: str) -> int:
        """Records the sink has not confirmed yet."""

        def count(db: sqlite3.Connection) -> int:
            row = db.execute(
                "SELECT count(*) FROM records WHERE id > (SELECT acked FROM sinks WHERE name = ?)",
                (sink,),
            ).fetchone()
            return int(row[0])

        return await self._run(count, self.db)

    # ---- limits ------------------------------------------------------------------

    async def enforce_limits(self, now_ms: int) -> tuple[dict[str, int], dict[str, int]]:
        """Applies max age, then the size cap. Returns records lost per sink (cap, age)."""
        try:
            cap, expired = await self._run(self._write, lambda db: self._enforce(db, now_ms))
        finally:
            await self._run(self._refresh_stats, self.db)
        # counted once the transaction is committed (a retried one must not count twice)
        self.stats.dropped_cap += _report(
            cap, f"over its cap of {self.max_size_bytes / 1e6:.1f} MB: dropped the oldest records"
        )
        self.stats.expired += _report(
            expired, f"dropped records older than {self.max_age_ms / 3.6e6:.1f} h"
        )
        return cap, expired

    def _enforce(
        self, db: sqlite3.Connection, now_ms: int
    ) -> tuple[dict[str, int], dict[str, int]]:
        # by the gateway's own storage time; an unsynchronised one says nothing about
        # age, so those wait for the clock
        expired = self._drop(db, "stored < ? AND unsynced IS NULL", (now_ms - self.max_age_ms,))
        cap: dict[str, int] = {}
        # Deleting rows frees pages only as whole pages empty, so repeat (a few
        # rounds at most) until the used pages fit under the cap.
        for _ in range(20):
            used = _used_bytes(db)
            count = db.execute("SELECT count(*) FROM records").fetchone()[0]
            if used <= self.max_size_bytes or not count:
                break
            # free down to 90% of the cap, estimating from the average row
            n = min(count, max(1, math.ceil((used - 0.9 * self.max_size_bytes) * count / used)))
            cut = db.execute(
                "SELECT id FROM records ORDER BY id LIMIT 1 OFFSET ?", (n - 1,)
            ).fetchone()[0]
            for name, lost in self._drop(db, "id <= ?", (cut,)).items():
                cap[name] = cap.get(name, 0) + lost
        return cap, expired

    @staticmethod
    def _drop(db: sqlite3.Connection, where: str, params: tuple[int, ...]) -> dict[str, int]:
        """Deletes the records matching ``where``; counts, per sink, those it never confirmed.

        Returns records lost per sink; the counters table also keeps events lost
        per sink (``dropped_events:<sink>``), the figure users ask about.
        """
        lost = {}
        event = _KIND_CODES[RecordKind.EVENT]
        for name, acked in db.execute("SELECT name, acked FROM sinks").fetchall():
            n, events = db.execute(
                "SELECT count(*), coalesce(sum(kind = ?), 0) FROM records "  # noqa: S608
                f"WHERE id > ? AND {where}",
                (event, acked, *params),
            ).fetchone()
            if n:
                lost[name] = int(n)
                for counter, value in (
                    (f"dropped_records:{name}", n),
                    (f"dropped_events:{name}", events),
                ):
                    db.execute(
                        "INSERT INTO counters(name, value) VALUES (?, ?) "
                        "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                        (counter, int(value)),
                    )
        db.execute(f"DELETE FROM records WHERE {where}", params)  # noqa: S608 (fixed SQL)
        return lost

    def _refresh_stats(self, db: sqlite3.Connection) -> None:
        self.stats.used_bytes = _used_bytes(db)
        self.stats.persisted = self._counters(db)

    @staticmethod
    def _counters(db: sqlite3.Connection) -> dict[str, int]:
        return dict(db.execute("SELECT name, value FROM counters").fetchall())

    async def counters(self) -> dict[str, int]:
        return await self._run(self._counters, self.db)

    # ---- operator requests (tinyml-gateway node forget) --------------------------------

    async def requests(self) -> list[tuple[int, str, int]]:
        """``(id, action, node)`` of what an operator asked for, oldest first."""

        def get(db: sqlite3.Connection) -> list[tuple[int, str, int]]:
            rows = db.execute("SELECT id, action, node FROM requests ORDER BY id")
            return [(int(i), str(a), _from_i64(n)) for i, a, n in rows]

        return await self._run(get, self.db)

    async def request_done(self, request_id: int) -> None:
        await self._run(
            self._write, lambda db: db.execute("DELETE FROM requests WHERE id = ?", (request_id,))
        )


def _report(lost: dict[str, int], what: str) -> int:
    """Logs one line for records lost per sink; returns how many records were lost."""
    if not lost:
        return 0
    log.warning("outbox %s (%s)", what, ", ".join(f"{k}: {v}" for k, v in lost.items()))
    # per sink, lost records are a prefix of what it had left; the largest count is the total
    return max(lost.values())


def _used_bytes(db: sqlite3.Connection) -> int:
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    free = db.execute("PRAGMA freelist_count").fetchone()[0]
    size = db.execute("PRAGMA page_size").fetchone()[0]
    return int((pages - free) * size)


# SQLite result codes that mean "not allowed to write here", not "damaged"
_ACCESS_ERRORS: Final = ("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")


def _code(exc: sqlite3.Error) -> int | None:
    """The primary result code (extended codes keep it in the low byte)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


def _is_full(exc: sqlite3.Error) -> bool:
    # SQLite's unix VFS reports ENOSPC as SQLITE_FULL
    return _code(exc) == sqlite3.SQLITE_FULL
