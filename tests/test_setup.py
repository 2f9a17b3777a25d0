"""The setup script's apt helper against real apt locks (scripts/apt.sh).

apt takes its locks with fcntl (F_SETLK), which flock(1) cannot see; the holder here
locks the same files the same way, as unattended-upgrades' apt-get would. Nothing is
downloaded and nothing on the system changes: the package lists stay as they are and
the one package named is already installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOCKS = ("/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock", "/var/lib/apt/lists/lock")
HOLDER = """
import fcntl, os, sys
fds = [os.open(p, os.O_RDWR | os.O_CREAT, 0o640) for p in sys.argv[1:]]
for fd in fds:
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
print("locked", flush=True)
sys.stdin.read()  # holds the locks until the test closes stdin
"""
# `update` with no sources still takes the lists lock (List-Cleanup off: it keeps the
# machine's package lists as they are); `install --no-upgrade` of an installed package
# changes nothing and still takes the dpkg locks
APT_STEPS = (
    "source scripts/apt.sh && "
    "apt_get update -qq -o Dir::Etc::sourcelist=/dev/null -o Dir::Etc::sourceparts=/nonexistent"
    " -o APT::Get::List-Cleanup=false"
    " && apt_get install -y -qq --no-upgrade --no-install-recommends dpkg && echo done"
)


@pytest.fixture
def apt_lock():  # type: ignore[no-untyped-def]
    if os.geteuid() != 0 or not Path("/usr/bin/apt-get").exists():
        pytest.skip("needs root and apt-get: the apt locks belong to root")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, *LOCKS],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
    yield holder
    if holder.poll() is None:
        holder.kill()
    holder.wait()


def _run(timeout_s: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["bash", "-c", APT_STEPS],
        cwd=ROOT,
        env={**os.environ, "APT_LOCK_TIMEOUT_S": str(timeout_s)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_apt_waits_while_another_package_manager_holds_the_lock(apt_lock) -> None:  # type: ignore[no-untyped-def]
    proc = _run(600)
    assert proc.stderr is not None
    line = proc.stderr.readline()  # returns once apt_get has met the held lock
    assert "another package manager holds the apt lock; waiting" in line
    assert proc.poll() is None  # still waiting, not failed
    apt_lock.stdin.close()  # the other package manager finishes
    apt_lock.wait(30)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert out.strip().endswith("done")


def test_apt_gives_up_with_a_clear_message_when_the_lock_stays_held(apt_lock) -> None:  # type: ignore[no-untyped-def]
    out, err = _run(1).communicate(timeout=120)
    assert "done" not in out
    assert "the apt lock was still held after 1 s" in err
    assert "Traceback" not in err
