"""A local stand-in for the part of ThingsBoard's REST API that thingsboard_rules/import.py
uses, applying its documented shapes (thingsboard/thingsboard, RuleChainController,
DeviceProfileController, DashboardController; login at /api/auth/login with the token in
``X-Authorization: Bearer``). It keeps what it is sent, so a test can look at it.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class RestStandIn:
    def __init__(self, user: str = "tenant@thingsboard.org", password: str = "tenant") -> None:
        self.user, self.password = user, password
        self.token = uuid.uuid4().hex
        self.rule_chains: dict[str, dict[str, Any]] = {}
        self.metadata: dict[str, dict[str, Any]] = {}
        self.profiles: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, code: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                url = urllib.parse.urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                server.requests.append((method, url.path))
                code, answer = server.route(
                    method,
                    url.path,
                    urllib.parse.parse_qs(url.query),
                    body,
                    self.headers.get("X-Authorization"),
                )
                self._answer(code, answer)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    def __enter__(self) -> RestStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.shutdown()
        self.http.server_close()

    @staticmethod
    def _error(code: int, message: str) -> tuple[int, Any]:
        return code, {"status": code, "message": message, "errorCode": 10 if code == 401 else 31}

    def route(
        self, method: str, path: str, query: dict[str, list[str]], body: Any, auth: str | None
    ) -> tuple[int, Any]:
        if (method, path) == ("POST", "/api/auth/login"):
            if (
                not body
                or body.get("username") != self.user
                or body.get("password") != self.password
            ):
                return self._error(401, "Invalid username or password")
            return 200, {"token": self.token, "refreshToken": uuid.uuid4().hex}
        if auth != f"Bearer {self.token}":
            return self._error(401, "Authentication failed")
        listings = {
            "/api/ruleChains": self.rule_chains,
            "/api/deviceProfileInfos": self.profiles,
            "/api/tenant/dashboards": self.dashboards,
        }
        if method == "GET" and path in listings:
            if "pageSize" not in query or "page" not in query:
                return self._error(400, "Required request parameter 'pageSize' is not present")
            text = query.get("textSearch", [""])[0].lower()
            data = [
                e
                for e in listings[path].values()
                if text in e.get("name", e.get("title", "")).lower()
            ]
            return 200, {
                "data": data,
                "totalPages": 1,
                "totalElements": len(data),
                "hasNext": False,
            }
        if (method, path) == ("POST", "/api/ruleChain"):
            return self._save(self.rule_chains, body, "RULE_CHAIN", ("name", "type"))
        if (method, path) == ("POST", "/api/ruleChain/metadata"):
            chain_id = (body or {}).get("ruleChainId", {}).get("id")
            if chain_id not in self.rule_chains:
                return self._error(404, "Requested item wasn't found!")
            nodes = body.get("nodes", [])
            for c in body.get("connections", []):
                if not (0 <= c["fromIndex"] < len(nodes) and 0 <= c["toIndex"] < len(nodes)):
                    return self._error(400, f"connection {c} refers to no node")
            self.metadata[chain_id] = body
            return 200, body
        if (method, path) == ("POST", "/api/deviceProfile"):
            rc = (body or {}).get("defaultRuleChainId")
            if rc is not None and rc.get("id") not in self.rule_chains:
                return self._error(400, "Can't assign non-existent rule chain!")
            return self._save(
                self.profiles,
                body,
                "DEVICE_PROFILE",
                ("name", "type", "transportType", "profileData"),
            )
        if (method, path) == ("POST", "/api/dashboard"):
            return self._save(self.dashboards, body, "DASHBOARD", ("title", "configuration"))
        return self._error(404, f"no such endpoint: {method} {path}")

    def _save(
        self, store: dict[str, dict[str, Any]], body: Any, kind: str, required: tuple[str, ...]
    ) -> tuple[int, Any]:
        if not isinstance(body, dict) or any(body.get(k) is None for k in required):
            return self._error(400, f"{kind}: {', '.join(required)} are required")
        name = body.get("name", body.get("title"))
        if "id" in body:
            entity_id = body["id"]["id"]
            if entity_id not in store:
                return self._error(404, "Requested item wasn't found!")
        else:
            if any(e.get("name", e.get("title")) == name for e in store.values()):
                return self._error(400, f"{kind} with such name already exists!")
            entity_id = str(uuid.uuid4())
        saved = {**body, "id": {"entityType": kind, "id": entity_id}}
        store[entity_id] = saved
        return 200, saved
