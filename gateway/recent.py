"""The records committed last, kept in memory for the sinks that keep up.

A sink that keeps up asks the outbox for what was committed a moment ago; answering from
here saves the query, the row conversion and the trip to the outbox's thread, and the
records keep the message ingest decoded, so a sink renders them without decoding again.
Only the newest records are held, with no gap: every commit adds its records, and anything
that changes or deletes stored records (size cap, max age, re-stamping) holds this empty
while it runs, so a read then goes to SQLite, which is always right; what every sink has
acknowledged is deleted here as there.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
from collections.abc import Iterator, Sequence

from gateway.model import Record


class RecentRecords:
    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._q: collections.deque[Record] = collections.deque()
        self._held = 0

    def __len__(self) -> int:
        return len(self._q)

    def add(self, records: Sequence[Record]) -> None:
        """The records of one commit, in id order; their ids follow the last ones held."""
        q = self._q
        if self._held or not records:
            return
        if q and q[-1].id + 1 != records[0].id:  # not contiguous: start again from these
            q.clear()
        q.extend(records)
        while len(q) > self._limit:
            q.popleft()

    def drop_upto(self, record_id: int) -> None:
        """Records up to ``record_id`` were deleted (every sink has them)."""
        q = self._q
        while q and q[0].id <= record_id:
            q.popleft()

    def after(self, after_id: int, limit: int) -> list[Record] | None:
        """Up to ``limit`` records after ``after_id``, or None when not all are held."""
        q = self._q
        if self._held or not q or q[0].id > after_id + 1:
            return None
        start = after_id + 1 - q[0].id
        return list(itertools.islice(q, start, start + limit))

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Empty and unused while stored records change under it."""
        self._held += 1
        self._q.clear()
        try:
            yield
        finally:
            self._held -= 1
