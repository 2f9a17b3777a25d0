"""Many rows through SQLite in few statements: what keeps the outbox thread off the GIL.

The sqlite3 module lets go of the GIL for every step of a statement and takes it back
afterwards. ``executemany`` and ``fetchall`` step once per row, so a worker thread asks
for the GIL back twice per row, and while the event loop thread is busy each of those
waits for a switch interval (5 ms). ``bench/bench_sqlite_gil.py`` shows the effect:
2,000 rows inserted, or 1,000 read, take hundreds of times longer beside a busy thread
than alone. Here a batch is a handful of statements, each one step: one multi-row
``INSERT`` per chunk, and one aggregate ``SELECT`` that returns the rows as one JSON text.
"""

from __future__ import annotations

import functools
import json
import operator
import sqlite3
from collections.abc import Sequence
from typing import Any, Final

# at most 256 rows a statement: 256 x 13 columns stays far below SQLite's default limit
# of 32,766 bound parameters, and power-of-two chunks keep the distinct statements (and
# so the prepared-statement cache) to nine
_CHUNK: Final = 256


def insert_rows(
    db: sqlite3.Connection, head: str, width: int, rows: Sequence[Sequence[Any]]
) -> None:
    """Runs ``head`` (``INSERT ... INTO t(a, b, ...) VALUES``) for every row of ``width``
    values, in order, a chunk of rows per statement."""
    at = 0
    while at < len(rows):
        n = min(_CHUNK, 1 << ((len(rows) - at).bit_length() - 1))
        chunk = rows[at : at + n]
        db.execute(_values(head, width, n), [v for row in chunk for v in row])
        at += n


@functools.lru_cache(maxsize=64)
def _values(head: str, width: int, rows: int) -> str:
    one = "(" + ", ".join("?" * width) + ")"
    return f"{head} {', '.join([one] * rows)}"


def select_rows(
    db: sqlite3.Connection, columns: str, query: str, params: Sequence[Any]
) -> list[list[Any]]:
    """The rows of ``query``, each as the list of ``columns`` (SQL expressions over the
    query's result, as JSON values: hex() a BLOB), ordered by the first of them.

    SQLite does not promise the order in which an aggregate sees its rows, hence the
    sort; they come in order anyway, so sorting costs one pass.
    """
    sql = f"SELECT json_group_array(json_array({columns})) FROM ({query})"  # noqa: S608
    (text,) = db.execute(sql, params).fetchone()
    rows: list[list[Any]] = json.loads(text)
    rows.sort(key=operator.itemgetter(0))
    return rows
