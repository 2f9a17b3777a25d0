"""Imports thingsboard_rules/ into a ThingsBoard server through its REST API.

    python thingsboard_rules/import.py --url http://localhost:8080 --user tenant@thingsboard.org
        [--password-env TB_PASSWORD] [--no-dashboards]

Order: the rule chains (each created, then its nodes and connections saved), then the
device profiles with their default rule chain set to the chain of the same name, then
the dashboards. Running it again updates what it
imported before (matched by name) instead of adding copies. Standard library only.
Exits 1 with one line saying what failed: a refused login, a server that cannot be
reached, or a request the server refused (with its message).
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PROFILE_CHAINS = {"tinyml-node": "TinyML node", "tinyml-gateway": "TinyML gateway"}


class ImportFailed(Exception):
    """What the user reads, in one line."""


class Server:
    def __init__(self, url: str, timeout_s: float = 30.0) -> None:
        if urllib.parse.urlparse(url).scheme not in ("http", "https"):
            raise ImportFailed(f"{url} is not an http:// or https:// address")
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.token: str | None = None

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}/api{path}", data=data, method=method)  # noqa: S310 - http(s) only, checked above
        req.add_header("Content-Type", "application/json")
        req.add_header("Accept", "application/json")
        if self.token:
            req.add_header("X-Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as r:  # noqa: S310 - the user's server
                text = r.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            with contextlib.suppress(ValueError):
                detail = json.loads(detail).get("message", detail)
            raise ImportFailed(
                f"{method} {path}: the server answered {exc.code}: {detail}"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ImportFailed(f"cannot reach ThingsBoard at {self.url}: {reason}") from None
        return json.loads(text) if text else None

    def login(self, user: str, password: str) -> None:
        try:
            answer = self.call("POST", "/auth/login", {"username": user, "password": password})
        except ImportFailed as exc:
            if " 401" in str(exc):
                raise ImportFailed(
                    f"ThingsBoard refused the login of {user}: check the user and password"
                ) from None
            raise
        self.token = answer["token"]

    def find(self, listing: str, name: str) -> dict[str, Any] | None:
        query = urllib.parse.urlencode({"pageSize": 100, "page": 0, "textSearch": name})
        page = self.call("GET", f"{listing}?{query}")
        return next(
            (e for e in page.get("data", []) if e.get("name", e.get("title")) == name), None
        )


def import_rule_chain(server: Server, path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    chain = dict(data["ruleChain"])
    existing = server.find("/ruleChains", chain["name"])
    if existing is not None:
        chain["id"] = existing["id"]
    saved = server.call("POST", "/ruleChain", chain)
    metadata = {"ruleChainId": saved["id"], **data["metadata"]}
    server.call("POST", "/ruleChain/metadata", metadata)
    return saved


def import_profile(server: Server, path: Path, chains: dict[str, dict[str, Any]]) -> dict[str, Any]:
    profile = json.loads(path.read_text())
    chain = chains.get(PROFILE_CHAINS.get(profile["name"], ""))
    if chain is not None:
        profile["defaultRuleChainId"] = chain["id"]
    existing = server.find("/deviceProfileInfos", profile["name"])
    if existing is not None:
        profile["id"] = existing["id"]
    saved: dict[str, Any] = server.call("POST", "/deviceProfile", profile)
    return saved


def import_dashboard(server: Server, path: Path) -> dict[str, Any]:
    dashboard = json.loads(path.read_text())
    existing = server.find("/tenant/dashboards", dashboard["title"])
    if existing is not None:
        dashboard["id"] = existing["id"]
    saved: dict[str, Any] = server.call("POST", "/dashboard", dashboard)
    return saved


def run(url: str, user: str, password: str, dashboards: bool) -> list[str]:
    server = Server(url)
    server.login(user, password)
    done = []
    chains = {}
    for path in sorted((HERE / "rule_chains").glob("*.json")):
        saved = import_rule_chain(server, path)
        chains[saved["name"]] = saved
        done.append(f"rule chain {saved['name']}")
    for path in sorted((HERE / "device_profiles").glob("*.json")):
        saved = import_profile(server, path, chains)
        done.append(f"device profile {saved['name']}")
    if dashboards:
        for path in sorted((HERE / "dashboards").glob("*.json")):
            saved = import_dashboard(server, path)
            done.append(f"dashboard {saved['title']}")
    return done


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--url", required=True, help="the server, e.g. http://localhost:8080")
    ap.add_argument("--user", required=True, help="a tenant administrator")
    ap.add_argument(
        "--password-env",
        default="TB_PASSWORD",
        help="the variable holding the password (default TB_PASSWORD); asked for when unset",
    )
    ap.add_argument("--no-dashboards", action="store_true", help="leave dashboards/ out")
    args = ap.parse_args(argv)
    password = os.environ.get(args.password_env) or getpass.getpass(f"password of {args.user}: ")
    try:
        for line in run(args.url, args.user, password, not args.no_dashboards):
            print(f"imported {line}")
    except ImportFailed as exc:
        print(f"import: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
