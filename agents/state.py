"""The agent's state directory (see agents/runtime.py for its layout): written atomically, 0600."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def default_state_dir() -> Path:
    base = os.environ.get("EDGEFLEET_AGENT_STATE") or os.path.join(
        os.environ.get("XDG_STATE_HOME", os.path.expanduser("~/.local/state")), "edgefleet-agent"
    )
    return Path(base)


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


class StateDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def ensure(self) -> StateDir:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.path, 0o700)
        for sub in ("models", "sandbox"):
            (self.path / sub).mkdir(exist_ok=True, mode=0o700)
        return self

    node = property(lambda self: read_json(self.path / "node.json"))
    applied = property(lambda self: read_json(self.path / "applied.json"))
    status = property(lambda self: read_json(self.path / "status.json") or {})

    def save_node(self, data: dict[str, Any]) -> None:
        write_json_atomic(self.path / "node.json", data)

    def save_applied(self, data: dict[str, Any]) -> None:
        write_json_atomic(self.path / "applied.json", data)

    def save_status(self, data: dict[str, Any]) -> None:
        write_json_atomic(self.path / "status.json", data)
