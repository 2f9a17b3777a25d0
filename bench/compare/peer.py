"""The peer: ThingsBoard IoT Gateway from PyPI, in its own virtual environment.

``.venv-peer`` beside the project's ``.venv`` (never inside it), created on first use with
the pinned release. Its configuration is the one the release ships (tb_gateway.json,
logs.json, read from the installed package), changed only where the bench must: the
server's address and access token, the storage under test, and one MQTT connector.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PEER_VERSION = "3.8.5"
# what the connector maps from each event's JSON (feed.event_json); "ts" is read by its
# JSON converter as the entry's timestamp
TIMESERIES = [
    ("label", "string"),
    ("label_index", "integer"),
    ("score", "double"),
    ("inference_us", "integer"),
    ("boot", "integer"),
    ("seq", "integer"),
    ("uptime_ms", "integer"),
]


class PeerUnavailable(RuntimeError):
    pass


@dataclass
class PeerEnv:
    venv: Path = ROOT / ".venv-peer"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def _ask(self, code: str) -> str | None:
        """What one line of Python prints in the peer's venv; None when it fails."""
        done = subprocess.run(
            [str(self.python), "-c", code], capture_output=True, text=True, check=False
        )
        return done.stdout.strip() if done.returncode == 0 else None

    def installed(self) -> bool:
        if not self.python.exists():
            return False
        code = "import importlib.metadata as m; print(m.version('thingsboard-gateway'))"
        return self._ask(code) == PEER_VERSION

    def ensure(self) -> float | None:
        """Creates the venv when it is missing; returns the seconds it took, or None."""
        if self.installed():
            return None
        t0 = time.monotonic()
        steps = [
            [sys.executable, "-m", "venv", "--clear", str(self.venv)],
            [
                str(self.python),
                "-m",
                "pip",
                "install",
                "-q",
                f"thingsboard-gateway=={PEER_VERSION}",
            ],
        ]
        for argv in steps:
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
                raise PeerUnavailable(
                    f"cannot install thingsboard-gateway=={PEER_VERSION} into {self.venv}: "
                    + " / ".join(tail)
                )
        return time.monotonic() - t0

    def package_dir(self) -> Path:
        out = self._ask("import thingsboard_gateway as t, os; print(os.path.dirname(t.__file__))")
        if out is None:
            raise PeerUnavailable(f"thingsboard_gateway does not import in {self.venv}")
        return Path(out)

    def python_version(self) -> str:
        return self._ask("import sys; print(sys.version.split()[0])") or "?"

    def argv(self) -> list[str]:
        # what its `thingsboard-gateway` script runs, with TB_GW_CONFIG_DIR set
        return [
            str(self.python),
            "-c",
            "from thingsboard_gateway.tb_gateway import daemon; daemon()",
        ]

    def write_config(
        self,
        config: Path,
        *,
        tb_port: int,
        field_port: int,
        storage: str,
        data: Path,
        client_id: str,
    ) -> None:
        shipped = self.package_dir() / "config"
        config.mkdir(parents=True)
        (config / "logs.json").write_text((shipped / "logs.json").read_text())
        main: dict[str, Any] = json.loads((shipped / "tb_gateway.json").read_text())
        main["thingsboard"].update(
            host="127.0.0.1",
            port=tb_port,
            security={"type": "accessToken", "accessToken": "peer"},
        )
        data.mkdir(parents=True, exist_ok=True)
        if storage == "sqlite":
            main["storage"] = {
                "type": "sqlite",
                "data_file_path": str(data / "data.db"),
                "messages_ttl_check_in_hours": 1,
                "messages_ttl_in_days": 7,
            }
        else:  # the shipped memory storage, as it comes
            main["storage"]["type"] = "memory"
        main["connectors"] = [{"type": "mqtt", "name": "nodes", "configuration": "nodes.json"}]
        (config / "tb_gateway.json").write_text(json.dumps(main, indent=1))
        broker = json.loads((shipped / "mqtt.json").read_text())["broker"]
        # one client id per subject: its restarts resume its session on the field broker,
        # as a real install's would, but no other subject inherits what it left unacked
        broker.update(host="127.0.0.1", port=field_port, clientId=client_id)
        (config / "nodes.json").write_text(json.dumps(_connector(broker), indent=1))


def _connector(broker: dict[str, Any]) -> dict[str, Any]:
    """The shipped example's broker settings, one mapping: the events' topic and fields."""
    return {
        "broker": broker,
        "mapping": [
            {
                "topicFilter": "nodes/+/event",
                "subscriptionQos": 1,
                "converter": {
                    "type": "json",
                    "deviceInfo": {
                        "deviceNameExpressionSource": "message",
                        "deviceNameExpression": "${node}",
                        "deviceProfileExpressionSource": "constant",
                        "deviceProfileExpression": "tinyml-node",
                    },
                    "sendDataOnlyOnChange": False,
                    "timeout": 60000,
                    "attributes": [],
                    "timeseries": [
                        {"type": t, "key": k, "value": "${" + k + "}"} for k, t in TIMESERIES
                    ],
                },
            }
        ],
    }
