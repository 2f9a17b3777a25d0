"""Writes thingsboard_rules/reference/thingsboard.json from a ThingsBoard source tree.

    python thingsboard_rules/reference/extract.py /path/to/thingsboard [--commit SHA]

What the tests check the shipped rule chains and dashboards against, taken from
ThingsBoard's own source (no server runs here): every rule node class with its outputs
(its ``@RuleNode`` relation types, as ``AnnotationComponentDiscoveryService`` completes
them: ``Failure`` always, the message types for the message type switch) and the fields
its configuration class has; the message types; the system widget types. Reads Java
source as text (the annotations and field declarations), standard library only.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
from pathlib import Path
from typing import Any

COMPONENTS = "rule-engine/rule-engine-components/src/main/java"
API = "rule-engine/rule-engine-api/src/main/java"  # configuration classes shared by nodes
WIDGETS = "application/src/main/data/json/system/widget_types"
MSG_TYPE = "common/data/src/main/java/org/thingsboard/server/common/data/msg/TbMsgType.java"
CONNECTION = (
    "common/data/src/main/java/org/thingsboard/server/common/data/msg/TbNodeConnectionType.java"
)
OUT = Path(__file__).resolve().parent / "thingsboard.json"


def _balanced(text: str, start: int) -> str:
    """The text inside the parentheses opening at ``start``, strings respected."""
    depth, i, quote = 0, start, None
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i]
        i += 1
    raise ValueError("unbalanced annotation")


def _connection_names(root: Path) -> dict[str, str]:
    text = (root / CONNECTION).read_text()
    return dict(re.findall(r'String\s+(\w+)\s*=\s*"([^"]+)"', text))


def _relations(block: str, names: dict[str, str]) -> list[str]:
    """The relation types of an annotation's list: string literals and TbNodeConnectionType.X."""
    items = re.findall(r'"(?:[^"\\]|\\.)*"|TbNodeConnectionType\.\w+', block)
    return [i[1:-1] if i.startswith('"') else names[i.split(".")[1]] for i in items]


def _message_types(root: Path) -> list[str]:
    text = (root / MSG_TYPE).read_text()
    return re.findall(r'^\s+[A-Z_]+\("([^"]+)"', text, re.M)


def _java_files(root: Path) -> dict[str, Path]:
    return {p.stem: p for d in (API, COMPONENTS) for p in (root / d).rglob("*.java")}


def _fields(name: str, files: dict[str, Path], seen: set[str] | None = None) -> list[str]:
    """Instance fields of a configuration class and its superclasses (Lombok @Data)."""
    seen = seen or set()
    path = files.get(name)
    if path is None or name in seen:
        return []
    seen.add(name)
    text = path.read_text()
    own = re.findall(
        r"^\s+private\s+(?!static)(?:final\s+)?[\w<>, ?\[\]]+\s+(\w+)\s*(?:=[^;]*)?;", text, re.M
    )
    parent = re.search(rf"class\s+{name}\b[^{{]*?\bextends\s+(\w+)", text)
    inherited = _fields(parent.group(1), files, seen) if parent else []
    return sorted(set(own) | set(inherited))


def rule_nodes(root: Path) -> dict[str, dict[str, Any]]:
    files = _java_files(root)
    msg_types = _message_types(root)
    names = _connection_names(root)
    out: dict[str, dict[str, Any]] = {}
    for path in sorted((root / COMPONENTS).rglob("*.java")):
        text = path.read_text()
        at = text.find("@RuleNode(")
        if at < 0:
            continue
        body = _balanced(text, at + len("@RuleNode"))
        package = re.search(r"^package\s+([\w.]+);", text, re.M).group(1)  # type: ignore[union-attr]
        cls = re.search(r"public\s+(?:final\s+)?class\s+(\w+)", text[at:]).group(1)  # type: ignore[union-attr]
        rel = re.search(r"relationTypes\s*=\s*\{([^}]*)\}", body)
        relations = _relations(rel.group(1), names) if rel else ["Success", "Failure"]
        if cls == "TbMsgTypeSwitchNode":
            relations += [*msg_types, "Other"]
        if "Failure" not in relations:
            relations.append("Failure")
        config = re.search(r"configClazz\s*=\s*(\w+)\.class", body)
        version = re.search(r"\bversion\s*=\s*(\d+)", body)
        kind = re.search(r"type\s*=\s*ComponentType\.(\w+)", body)
        out[f"{package}.{cls}"] = {
            "type": kind.group(1) if kind else None,
            "relation_types": relations,
            "custom_relations": bool(re.search(r"customRelations\s*=\s*true", body)),
            "configuration_version": int(version.group(1)) if version else 0,
            "configuration_fields": _fields(config.group(1), files) if config else [],
        }
    return out


def widget_types(root: Path) -> list[str]:
    fqns = []
    for path in sorted((root / WIDGETS).glob("*.json")):
        data = json.loads(path.read_text())
        if not data.get("deprecated"):
            fqns.append(f"system.{data['fqn']}")
    return fqns


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("source", type=Path, help="a checkout of thingsboard/thingsboard")
    ap.add_argument("--commit", help="the commit checked out (default: git rev-parse HEAD)")
    args = ap.parse_args()
    root: Path = args.source
    commit = (
        args.commit
        or subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    pom = (root / "pom.xml").read_text()
    version = re.search(r"<artifactId>thingsboard</artifactId>\s*<version>([^<]+)</version>", pom)
    data = {
        "source": "thingsboard/thingsboard",
        "commit": commit,
        "version": version.group(1) if version else None,
        "message_types": _message_types(root),
        "rule_nodes": rule_nodes(root),
        "widget_types": widget_types(root),
    }
    OUT.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"{OUT}: {len(data['rule_nodes'])} rule nodes, {len(data['widget_types'])} widget types")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
