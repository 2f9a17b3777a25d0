"""``tinyml-gateway demo`` as a newcomer runs it: piped to another program, then Ctrl-C.

The demo runs as a real process with its embedded broker and simulated nodes;
TMPDIR points at the test's folder, so whether the demo removed its data folder
can be seen.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.peers import env_without_coverage

ROOT = Path(__file__).resolve().parent.parent
DEMO = (sys.executable, "-m", "gateway", "demo")


def _start(tmp: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "gateway", "demo", "--port", "0", "--nodes", "2", "--rate", "5"],
        cwd=ROOT,
        env={**env_without_coverage(), "TMPDIR": str(tmp)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # Ctrl-C reaches the whole pipeline, as in a terminal
    )


def _lines_until(proc: subprocess.Popen[bytes], text: str) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    while not any(text in line for line in lines):
        line = proc.stdout.readline().decode()
        assert line, f"the demo ended before printing {text!r}: {lines}"
        lines.append(line)
    return lines


def test_piped_output_explains_the_demo_and_ctrl_c_ends_it_cleanly(tmp_path: Path) -> None:
    proc = _start(tmp_path)
    try:
        lines = _lines_until(proc, "subscriber got")  # the first summary: events flow
    finally:
        os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    text = "".join(lines) + out.decode()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert "simulated TinyML nodes" in text
    assert "Node-RED: 'mqtt in' node" in text and "tinyml/demo/+/event" in text
    assert "Ctrl-C to stop." in text
    # the nodes send real windows and the gateway checks them with the shipped model
    assert "events checked by the gateway's model" in text
    assert "Traceback" not in err.decode()
    assert list(tmp_path.iterdir()) == []  # its data folder is gone


def test_a_reader_that_goes_away_is_not_an_error(tmp_path: Path) -> None:
    """``demo | tee demo.log`` and Ctrl-C: tee ends first, then the demo prints into a
    closed pipe."""
    proc = _start(tmp_path)
    assert proc.stdout is not None
    try:
        _lines_until(proc, "Ctrl-C to stop.")
    finally:
        proc.stdout.close()  # the reader is gone
        os.killpg(proc.pid, signal.SIGINT)
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    assert proc.wait(60) == 0, err[-2000:]
    assert "Traceback" not in err and "BrokenPipeError" not in err
    assert list(tmp_path.iterdir()) == []


def test_the_ble_demo_adds_a_node_over_the_emulated_bluez(tmp_path: Path) -> None:
    r = subprocess.run(
        [
            *DEMO,
            "--ble",
            "--port",
            "0",
            "--nodes",
            "1",
            "--rate",
            "5",
            "--duration",
            "8",
            "--plain",
        ],
        cwd=ROOT,
        env={**env_without_coverage(), "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "ble: node a1b2c3d4e5f6b1e0 connected" in r.stderr
    assert "Traceback" not in r.stderr
    # the only warnings: the gateway's verdicts on the windows the demo's nodes corrupt
    warnings = [line for line in r.stderr.splitlines() if "WARNING" in line]
    assert [w for w in warnings if "the gateway's model" not in w] == []
    assert list(tmp_path.iterdir()) == []  # its data folder and the rig's are gone


def test_a_cancelled_connect_closing_later_is_not_a_traceback(caplog) -> None:  # type: ignore[no-untyped-def]
    """aiomqtt raises CancelledError inside the event loop when a client cancelled in the
    middle of its connect has its socket closed later (what a Ctrl-C of the demo met):
    the gateway's loop handler says it at DEBUG; any other error still reaches the log."""
    import asyncio
    import logging

    from gateway.sinks.mqtt import quiet_cancelled_connects

    namespace: dict[str, object] = {"asyncio": asyncio}
    code = "def _on_disconnect():\n    raise asyncio.CancelledError\n"
    exec(compile(code, "/site-packages/aiomqtt/client.py", "exec"), namespace)

    def raised(fn: object) -> BaseException:
        try:
            fn()  # type: ignore[operator]
        except BaseException as exc:
            return exc
        raise AssertionError("did not raise")

    loop = asyncio.new_event_loop()
    try:
        caplog.set_level(logging.DEBUG)
        quiet_cancelled_connects(
            loop,
            {"message": "Exception in callback", "exception": raised(namespace["_on_disconnect"])},
        )
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        code = "def _on_connect():\n    raise asyncio.InvalidStateError('invalid state')\n"
        exec(compile(code, "/site-packages/aiomqtt/client.py", "exec"), namespace)
        quiet_cancelled_connects(
            loop,
            {"message": "Exception in callback", "exception": raised(namespace["_on_connect"])},
        )
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        quiet_cancelled_connects(
            loop, {"message": "Exception in callback", "exception": raised(lambda: 1 / 0)}
        )
        assert [r for r in caplog.records if r.levelno >= logging.ERROR and r.name == "asyncio"]
    finally:
        loop.close()
