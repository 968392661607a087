"""The agent's state directory (see agents/runtime.py for its layout): written atomically, 0600."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def default_state_dir() -> Path:
    base = os.environ.get("EDGEFLEET_AGENT_STATE") or os.path.join(
        os.environ.get("XDG_STATE_HOME", os.path.expanduser("~/.local/state")), "edgefleet-agent"
    )
    return Path(base)


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write, fsync, rename, fsync the directory. The temporary file's name is unique (mkstemp,
    mode 600): two threads saving the same file at once (the poll loop's status and shutdown's)
    must not rename each other's file away; the last rename wins."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    if os.name == "nt":  # Windows cannot open a directory to sync it; NTFS journals the rename
        return
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class StateDirError(Exception):
    """The state directory cannot be used: a file, a path that cannot be created, an unreadable
    file in it. The message is the one line the command line prints (exit status 2)."""


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    except OSError as exc:
        raise StateDirError(f"cannot read {path}: {exc.strerror or exc}") from None


class StateDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def check(self) -> StateDir:
        """Refuse a path that cannot be a directory: one that is a file, or under one. A
        directory that does not exist yet is fine (`ensure` makes it)."""
        for path in (self.path, *self.path.parents):
            try:
                if path.is_dir():
                    return self
                if path.exists():
                    where = "is" if path == self.path else f"is under {path}, which is"
                    raise StateDirError(
                        f"the state directory {self.path} {where} a file, not a directory"
                    )
            except PermissionError as exc:
                why = exc.strerror or exc
                raise StateDirError(f"cannot use the state directory {self.path}: {why}") from None
        return self

    def ensure(self) -> StateDir:
        self.check()
        try:
            self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(self.path, 0o700)
            for sub in ("models", "sandbox"):
                (self.path / sub).mkdir(exist_ok=True, mode=0o700)
            if not os.access(self.path, os.W_OK | os.X_OK):
                raise PermissionError(13, "Permission denied")
        except OSError as exc:
            raise StateDirError(
                f"cannot create the state directory {self.path}: {exc.strerror or exc}"
            ) from None
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
