"""Logging setup, and a limiter so that bad input gives one clear line, not a flood."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections import Counter
from typing import Final

_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "ts": round(record.created, 3),
                "level": record.levelname.lower(),
                "logger": record.name,
                "msg": record.getMessage(),
            }
        )


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    """Plain lines (or JSON) on stderr; under systemd, structured entries to journald."""
    from gateway import journal

    handler: logging.Handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    if journal.wanted(os.environ, sys.stderr):
        handler = journal.JournalHandler(fallback=handler)
        handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    set_level(level)


def set_level(level: str) -> None:
    """The root level; paho and aiomqtt narrate every packet at DEBUG: kept at WARNING.

    aiomqtt logs as "mqtt" and hands that logger to paho."""
    logging.getLogger().setLevel(_LEVELS[level])
    for noisy in ("mqtt", "aiomqtt", "paho", "amqtt", "transitions"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, _LEVELS[level]))


class RateLimitedLog:
    """Logs the first occurrence of each key, then at most once per interval.

    Suppressed occurrences are counted and reported with the next line, so
    a flood of garbage on a serial port costs one line a minute.
    """

    def __init__(self, logger: logging.Logger, interval_s: float) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, msg: str, *args: object) -> None:
        self.log(logging.WARNING, key, msg, *args)

    def info(self, key: str, msg: str, *args: object) -> None:
        self.log(logging.INFO, key, msg, *args)

    def log(self, level: int, key: str, msg: str, *args: object) -> None:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self._interval_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._last[key] = now
        skipped = self._suppressed.pop(key, 0)
        if skipped:
            msg += f" ({skipped} more since the last report)"
        self._logger.log(level, msg, *args)


class BadInput:
    """Counts one kind of bad input and logs it, rate-limited per key, in one call."""

    def __init__(self, counters: Counter[str], log: RateLimitedLog) -> None:
        self._c = counters
        self._log = log

    @property
    def counters(self) -> Counter[str]:
        return self._c

    def __call__(self, counter: str, key: str, msg: str, *args: object, count: int = 1) -> None:
        self._c[counter] += count
        self._log.warning(key, msg, *args)
