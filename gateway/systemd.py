"""sd_notify without a dependency: one datagram to $NOTIFY_SOCKET (sd_notify(3))."""

from __future__ import annotations

import os
import socket


def datagram_socket() -> socket.socket:
    """A non-blocking AF_UNIX datagram socket, for systemd's and journald's sockets: a
    receiver that stopped reading costs a message, never the event loop."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    sock.setblocking(False)
    return sock


def notify(state: str) -> bool:
    """Sends e.g. "READY=1"; returns False when not run by systemd (no socket)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    with datagram_socket() as sock:
        try:
            sock.sendto(state.encode(), address)
        except OSError:  # BlockingIOError included
            return False
    return True


def watchdog_interval_s() -> float | None:
    """Half of WatchdogSec when systemd asks this process for keep-alives."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2e6
    except ValueError:
        return None
