"""Wall-clock time, and whether it can be trusted yet.

A Raspberry Pi has no RTC: until NTP synchronises, its clock is wherever
fake-hwclock left it. Events stamped meanwhile are marked unsynchronised and
re-stamped by the outbox when the clock steps to the right time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from pathlib import Path
from typing import Final

_TIME_ERROR: Final = 5  # adjtimex(2): "clock not synchronized"
_TIMEX_SIZE: Final = 256  # struct timex is 208 bytes on 64-bit Linux; room to spare


def _kernel_synced() -> bool:
    """adjtimex(2) with modes=0 only reads the kernel's NTP state."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return True
    libc = ctypes.CDLL(libc_name, use_errno=True)
    buf = ctypes.create_string_buffer(_TIMEX_SIZE)  # zeroed: modes = 0
    state = int(libc.adjtimex(buf))
    return state not in (-1, _TIME_ERROR)


class Clock:
    """``check``: "kernel", "assume-synced", or a Path whose existence means synced."""

    def __init__(self, check: str | Path = "kernel", recheck_s: float = 1.0) -> None:
        self._check = check
        self._recheck_s = recheck_s
        self._synced = False
        self._checked_at = -1e18

    @staticmethod
    def now_ms() -> int:
        return time.time_ns() // 1_000_000

    @staticmethod
    def boottime_ms() -> int:
        """Milliseconds since the gateway booted: never steps, unlike the wall clock."""
        return time.clock_gettime_ns(time.CLOCK_BOOTTIME) // 1_000_000

    def wall_minus_boottime_ms(self) -> int:
        return self.now_ms() - self.boottime_ms()

    def synced(self) -> bool:
        now = time.monotonic()
        if now - self._checked_at >= self._recheck_s:
            self._checked_at = now
            self._synced = self._probe()
        return self._synced

    def _probe(self) -> bool:
        if self._check == "assume-synced":
            return True
        if self._check == "kernel":
            return _kernel_synced()
        return Path(self._check).exists()


def kernel_boot_id() -> str:
    """Changes at every gateway reboot; the boot-time clock restarts with it."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"
