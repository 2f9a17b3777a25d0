"""`python -m bench compare --quick` end to end: both gateways, every scenario, so the
comparison cannot rot. Nothing here is about speed: only that every figure was produced,
that the counter counted the events it was sent, and that ours lost none.

The peer (ThingsBoard IoT Gateway) lives in .venv-peer, which scripts/setup.sh test
creates; when it is missing this test fails and says why, rather than skipping.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.compare import report
from bench.compare.peer import PEER_VERSION, PeerEnv

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(900)  # the module's one quick run happens in the first test

# figures that may be missing, and when: a drain time needs every event of the outage
MAY_BE_NONE = {"outage": lambda r: r["lost_of_outage"] > 0}


@pytest.fixture(scope="module")
def doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    env = PeerEnv()
    if not env.installed():
        pytest.fail(
            f"the peer's venv {env.venv} has no thingsboard-gateway {PEER_VERSION}: run"
            " scripts/setup.sh test, whose output says why it could not be installed"
        )
    tmp = tmp_path_factory.mktemp("compare")
    out, work = tmp / "out", tmp / "work"
    argv = ["-m", "bench", "compare", "--quick", "--out", str(out), "--work", str(work)]
    done = subprocess.run(
        [sys.executable, *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=840,  # a hang guard: the quick run takes about two minutes
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    progress = [ln for ln in done.stdout.splitlines() if ln.startswith("[")]
    assert len(progress) == len(report.RUNS), done.stdout
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "compare.md").read_text() == report.table(
        json.loads((out / "compare.json").read_text())
    )
    return json.loads((out / "compare.json").read_text())  # type: ignore[no-any-return]


def test_every_figure_of_every_scenario_was_produced(doc: dict[str, Any]) -> None:
    results = doc["results"]
    for label, scenario, _, read, _ in report.ROWS:
        for kind in report.RUNS[scenario]:
            r = results[kind][scenario]
            value = read(r)
            if value is None and scenario in MAY_BE_NONE:
                assert MAY_BE_NONE[scenario](r), (kind, label, r)
                continue
            assert isinstance(value, int | float), (kind, label, r)
    assert doc["versions"]["thingsboard-gateway"] == PEER_VERSION
    assert doc["machine"]["cores"] >= 1 and doc["machine"]["cpu"]


def test_the_counter_counted_what_was_sent(doc: dict[str, Any]) -> None:
    for kind, scenarios in doc["results"].items():
        for name, r in scenarios.items():
            sent = r.get("sent", r.get("backlog"))
            if sent is None:  # start-up: the first of its own events; no one else's came
                assert r["strays"] == 0, (kind, name, r)
                continue
            # lost is what did not arrive; more arrived than sent would be counted twice
            assert r["lost"] == sent - r["events"], (kind, name, r)
    burst = doc["results"][report.OURS]["burst"]
    assert burst["devices"] == 4


def test_ours_lost_nothing_anywhere(doc: dict[str, Any]) -> None:
    for name, r in doc["results"][report.OURS].items():
        if "lost" in r:
            assert r["lost"] == 0, (name, r)
    assert doc["results"][report.OURS]["burst"]["points"] == doc["sizes"]["burst"]
