"""The table (Markdown), the JSON with every figure, and the plot (PNG)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

OURS, OURS_NR = "ours", "ours+nodered"
PEERS = ("peer-sqlite", "peer-memory")
# who runs each scenario: the Node-RED bridge changes only the load figures
_ALL, _CORE = (OURS, OURS_NR, *PEERS), (OURS, *PEERS)
RUNS: dict[str, tuple[str, ...]] = {
    "throughput": _ALL,
    "steady": _ALL,
    "startup": _CORE,
    "outage": _CORE,
    "sigterm": _CORE,
    "sigkill": _CORE,
    "burst": _CORE,
}
COLUMNS = {
    OURS: "tinyml-gateway",
    OURS_NR: "tinyml-gateway + Node-RED bridge",
    "peer-sqlite": "tb-gateway, SQLite storage",
    "peer-memory": "tb-gateway, memory storage",
}

Row = tuple[str, str, str, Callable[[dict[str, Any]], Any], str]
# label, scenario, unit, how to read the figure, how the ratio reads ("x" ours/peer, "/" peer/ours)
ROWS: list[Row] = [
    ("throughput", "throughput", "events/s", lambda r: r["events_per_s"], "x"),
    ("CPU per 1,000 events at full speed", "throughput", "ms", lambda r: r["cpu_ms_per_1000"], "/"),
    ("latency p50 at 500 ev/s", "steady", "ms", lambda r: r["p50_ms"], "/"),
    ("latency p99 at 500 ev/s", "steady", "ms", lambda r: r["p99_ms"], "/"),
    ("CPU at 500 ev/s", "steady", "% of a core", lambda r: r["cpu_pct"], "/"),
    ("resident memory, idle", "steady", "MB", lambda r: r["rss_idle_mb"], "/"),
    ("resident memory, 500 ev/s", "steady", "MB", lambda r: r["rss_load_mb"], "/"),
    ("threads, 500 ev/s", "steady", "", lambda r: r["threads_load"], "/"),
    ("start-up to first delivered event", "startup", "s", lambda r: r["first_event_s"], "/"),
    ("outage: events lost", "outage", "", lambda r: r["lost"], ""),
    ("outage: duplicates", "outage", "", lambda r: r["duplicates"], ""),
    ("outage: drain after the server is back", "outage", "s", lambda r: r["drain_s"], "/"),
    ("SIGTERM with a backlog: lost", "sigterm", "", lambda r: r["lost"], ""),
    ("SIGKILL with a backlog: lost", "sigkill", "", lambda r: r["lost"], ""),
    ("same-ms burst: distinct points kept", "burst", "", lambda r: r["points"], "x"),
]


def figure(
    results: dict[str, Any], subject: str, scenario: str, read: Callable[[dict[str, Any]], Any]
) -> Any:
    r = results.get(subject, {}).get(scenario)
    return None if r is None else read(r)


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}" if abs(v) < 10 else f"{v:.1f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _ratio(ours: Any, peer: Any, how: str) -> str:
    if not how or not isinstance(ours, int | float) or not isinstance(peer, int | float):
        return ""
    a, b = (ours, peer) if how == "x" else (peer, ours)
    return f"{a / b:.1f}x" if b else ""


def table(doc: dict[str, Any]) -> str:
    results = doc["results"]
    cols = [c for c in COLUMNS if c in results]
    head = ["", *(COLUMNS[c] for c in cols), "ours vs peer (SQLite / memory)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, scenario, unit, read, how in ROWS:
        vals = {c: figure(results, c, scenario, read) for c in cols}
        ratios = [_ratio(vals.get(OURS), vals.get(p), how) for p in PEERS if p in vals]
        name = f"{label} ({unit})" if unit else label
        cells = [name, *(_fmt(vals[c]) for c in cols), " / ".join(r for r in ratios if r)]
        lines.append("| " + " | ".join(cells) + " |")
    m = doc["machine"]
    lines.append("")
    lines.append(
        f"{m['cores']} cores ({m['cpu']}), {doc['date']}, `{doc['command']}`, "
        f"{doc['mode']} run in {doc['seconds']:.0f} s; versions: "
        + ", ".join(f"{k} {v}" for k, v in doc["versions"].items())
    )
    return "\n".join(lines) + "\n"


def plot(doc: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = doc["results"]
    cols = [c for c in COLUMNS if c in results]
    names = [COLUMNS[c].replace(", ", "\n").replace(" + ", "\n+ ") for c in cols]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    tput = [figure(results, c, "throughput", lambda r: r["events_per_s"]) or 0 for c in cols]
    a.bar(names, tput, color=["#2a7", "#5b9", "#c63", "#e96"][: len(cols)])
    a.set_title("sustained throughput to ThingsBoard's gateway API")
    a.set_ylabel("events/s")
    steady = [c for c in cols if results[c].get("steady")]
    x = range(len(steady))
    p50 = [results[c]["steady"]["p50_ms"] or 0 for c in steady]
    p99 = [results[c]["steady"]["p99_ms"] or 0 for c in steady]
    b.bar([i - 0.2 for i in x], p50, width=0.4, label="p50")
    b.bar([i + 0.2 for i in x], p99, width=0.4, label="p99")
    b.set_xticks(list(x), [names[cols.index(c)] for c in steady])
    b.set_title(
        f"latency at {results[steady[0]]['steady']['rate']:.0f} events/s" if steady else "latency"
    )
    b.set_ylabel("ms, source write to server receipt")
    b.set_yscale("log")
    b.legend()
    for ax in (a, b):
        ax.tick_params(axis="x", labelsize=8)
    fig.suptitle(f"{doc['date']}, {doc['machine']['cores']} cores: {doc['command']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(doc: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(doc, indent=1) + "\n")
    (out / "compare.md").write_text(table(doc))
    plot(doc, out / "compare.png")
