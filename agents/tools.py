"""Edge tools and the gate that enforces tool permissions from desired state.

A tool is a name, a description, a JSON schema for its arguments and a function. The built-in
library: `clock`, `read_file` (inside a sandbox directory), `http_get` (allow-listed hosts only),
`sql_query` (read-only, on a configured SQLite database) and `create_ticket` (a local queue
directory). Sites add their own through the `edgefleet.tools` entry-point group: each entry point
names a `Tool`.

Every call goes through `ToolGate.call`: the tool must exist, be in the agent's tool list and be
allowed (or approved) by the policy; its arguments must match its schema and the rule's constraints
(path prefix, host allow-list, rate per minute). A refusal returns an explanation for the model and
records an audit event, as does every allowed or approved call.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema

from wire.schemas import ToolPolicy, ToolRule

MAX_RESULT_CHARS = 4000


class ToolError(Exception):
    """The tool ran but failed (bad file, HTTP error); the message goes back to the model."""


@dataclass
class ToolContext:
    sandbox: Path
    rule: ToolRule


@dataclass
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    run: Callable[[ToolContext, dict[str, Any]], Any]
    # Where no rule names the tool and the policy's default is "allow", this mode instead: an MCP
    # tool annotated destructive, or not annotated, asks for approval (agents/mcp.py).
    default_mode: str | None = None
    validator: Any = field(init=False, repr=False)

    def __post_init__(self):
        jsonschema.Draft202012Validator.check_schema(self.parameters)
        self.validator = jsonschema.Draft202012Validator(self.parameters)

    def openai_spec(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


# --- built-in tools -------------------------------------------------------------------------------


def _clock(ctx: ToolContext, args: dict) -> dict:
    now = datetime.now(UTC)
    return {
        "utc": now.isoformat(timespec="seconds"),
        "local": datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def _sandbox_root(ctx: ToolContext) -> Path:
    return (ctx.sandbox / ctx.rule.settings.get("root", "")).resolve()


def resolve_in_sandbox(ctx: ToolContext, relative: str) -> Path:
    root = _sandbox_root(ctx)
    target = (root / relative).resolve()
    if target != root and root not in target.parents:
        raise PermissionError(f"path '{relative}' escapes the sandbox")
    return target


def _read_file(ctx: ToolContext, args: dict) -> str:
    path = resolve_in_sandbox(ctx, args["path"])
    if not path.is_file():
        raise ToolError(f"no such file: {args['path']}")
    return path.read_text(errors="replace")[: args.get("max_chars", MAX_RESULT_CHARS)]


def _http_get(ctx: ToolContext, args: dict) -> dict:
    import httpx

    try:
        with httpx.Client(timeout=10, follow_redirects=False) as client:
            r = client.get(args["url"])
    except httpx.HTTPError as exc:
        raise ToolError(f"request failed: {exc}") from exc
    return {"status": r.status_code, "body": r.text[:MAX_RESULT_CHARS]}


_READ_ONLY_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION}


def _sql_query(ctx: ToolContext, args: dict) -> dict:
    database = ctx.rule.settings.get("database")
    if not database:
        raise ToolError("no database is configured for sql_query on this node")
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
    # Belt and braces: a read-only connection, and an authorizer that refuses anything but reads.
    conn.set_authorizer(
        lambda action, *_: (
            sqlite3.SQLITE_OK if action in _READ_ONLY_ACTIONS else sqlite3.SQLITE_DENY
        )
    )
    try:
        cur = conn.execute(args["query"])
        columns = [d[0] for d in cur.description or []]
        rows = cur.fetchmany(args.get("limit", 50))
    except sqlite3.Error as exc:
        raise ToolError(f"query refused or failed: {exc}") from exc
    finally:
        conn.close()
    return {"columns": columns, "rows": [list(r) for r in rows]}


def _create_ticket(ctx: ToolContext, args: dict) -> dict:
    queue = resolve_in_sandbox(ctx, ctx.rule.settings.get("queue", "tickets"))
    queue.mkdir(parents=True, exist_ok=True)
    ticket_id = uuid.uuid4().hex[:12]
    ticket = {"id": ticket_id, "created": datetime.now(UTC).isoformat(), **args}
    tmp = queue / f".{ticket_id}.tmp"
    tmp.write_text(json.dumps(ticket))
    tmp.rename(queue / f"{ticket_id}.json")
    return {"ticket": ticket_id}


BUILTIN = [
    Tool(
        "clock",
        "Current date and time (UTC and local).",
        {"type": "object", "properties": {}, "additionalProperties": False},
        _clock,
    ),
    Tool(
        "read_file",
        "Read a text file inside the node's sandbox directory.",
        {
            "type": "object",
            "properties": {
                "path": {"type": "string", "minLength": 1, "maxLength": 300},
                "max_chars": {"type": "integer", "minimum": 1, "maximum": MAX_RESULT_CHARS},
            },
            "required": ["path"],
            "additionalProperties": False,
        },
        _read_file,
    ),
    Tool(
        "http_get",
        "HTTP GET a URL on an allow-listed host.",
        {
            "type": "object",
            "properties": {"url": {"type": "string", "pattern": "^https?://", "maxLength": 2000}},
            "required": ["url"],
            "additionalProperties": False,
        },
        _http_get,
    ),
    Tool(
        "sql_query",
        "Run a read-only SQL query on the node's configured SQLite database.",
        {
            "type": "object",
            "properties": {
                "query": {"type": "string", "minLength": 1, "maxLength": 2000},
                "limit": {"type": "integer", "minimum": 1, "maximum": 500},
            },
            "required": ["query"],
            "additionalProperties": False,
        },
        _sql_query,
    ),
    Tool(
        "create_ticket",
        "File a ticket in the node's local queue for a person to handle.",
        {
            "type": "object",
            "properties": {
                "title": {"type": "string", "minLength": 1, "maxLength": 200},
                "body": {"type": "string", "maxLength": 4000},
                "priority": {"type": "string", "enum": ["low", "normal", "high"]},
            },
            "required": ["title"],
            "additionalProperties": False,
        },
        _create_ticket,
    ),
]


def registry() -> dict[str, Tool]:
    """Built-in tools plus those installed under the `edgefleet.tools` entry-point group."""
    tools = {t.name: t for t in BUILTIN}
    for ep in entry_points(group="edgefleet.tools"):
        tool = ep.load()
        if isinstance(tool, Tool):
            tools[tool.name] = tool
    return tools


# --- the gate -------------------------------------------------------------------------------------


@dataclass
class Decision:
    allowed: bool
    mode: str  # allow, deny, approval
    reason: str = ""


@dataclass
class ToolResult:
    ok: bool
    content: str
    decision: str  # allowed, denied, approved, failed
    waited_s: float = 0.0  # time spent waiting for a person's decision


Approver = Callable[[str, str, dict[str, Any], int], bool]
Auditor = Callable[[str, dict[str, Any]], None]


class ToolGate:
    def __init__(
        self,
        policy: ToolPolicy,
        tools: dict[str, Tool],
        sandbox: Path,
        *,
        approver: Approver | None = None,
        audit: Auditor | None = None,
    ):
        self.policy = policy
        self.tools = tools
        self.sandbox = sandbox
        self.approver = approver
        self.audit = audit or (lambda kind, data: None)
        self._calls: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def rule(self, tool: str) -> ToolRule:
        rule = self.policy.rules.get(tool)
        if rule is not None:
            return rule
        known = self.tools.get(tool)
        if self.policy.default == "allow" and known is not None and known.default_mode:
            return ToolRule(mode=known.default_mode)  # type: ignore[arg-type]
        return ToolRule(mode=self.policy.default)

    def check(self, agent: str, agent_tools: list[str], tool: str, args: Any) -> Decision:
        """Decide without running anything. Cheap: no I/O, measured in bench/agent.py."""
        if tool not in self.tools:
            return Decision(False, "deny", f"unknown tool '{tool}'")
        if tool not in agent_tools:
            return Decision(False, "deny", f"agent '{agent}' may not use tool '{tool}'")
        rule = self.rule(tool)
        if rule.mode == "deny":
            return Decision(False, "deny", f"tool '{tool}' is denied by policy")
        if not isinstance(args, dict):
            return Decision(False, "deny", "tool arguments must be a JSON object")
        error = next(iter(self.tools[tool].validator.iter_errors(args)), None)
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "arguments"
            return Decision(
                False, "deny", f"invalid arguments for '{tool}': {where}: {error.message}"
            )
        problem = self._constraint_problem(rule, args)
        if problem:
            return Decision(False, "deny", problem)
        if rule.rate_per_min and not self._within_rate(tool, rule.rate_per_min):
            return Decision(
                False,
                "deny",
                f"tool '{tool}' is over its rate of {rule.rate_per_min} calls per minute",
            )
        return Decision(True, rule.mode)

    def _constraint_problem(self, rule: ToolRule, args: dict) -> str:
        if "path" in args:
            path = str(args["path"])
            ctx = ToolContext(self.sandbox, rule)
            try:
                resolved = resolve_in_sandbox(ctx, path)
            except PermissionError as exc:
                return str(exc)
            if rule.path_prefix is not None:
                allowed = (_sandbox_root(ctx) / rule.path_prefix.lstrip("/")).resolve()
                if resolved != allowed and allowed not in resolved.parents:
                    return f"path '{path}' is outside the allowed prefix '{rule.path_prefix}'"
        if "url" in args:
            host = (urlsplit(str(args["url"])).hostname or "").lower()
            if rule.hosts is None or host not in {h.lower() for h in rule.hosts}:
                return f"host '{host}' is not on the allow-list"
        return ""

    def _within_rate(self, tool: str, per_min: int) -> bool:
        now = time.monotonic()
        with self._lock:
            calls = self._calls[tool]
            while calls and calls[0] <= now - 60:
                calls.popleft()
            if len(calls) >= per_min:
                return False
            calls.append(now)
            return True

    def call(self, agent: str, agent_tools: list[str], tool: str, args: Any) -> ToolResult:
        decision = self.check(agent, agent_tools, tool, args)
        event = {"agent": agent, "tool": tool, "arguments": args if isinstance(args, dict) else {}}
        if not decision.allowed:
            self.audit("tool.denied", {**event, "reason": decision.reason})
            return ToolResult(False, f"DENIED: {decision.reason}", "denied")
        verdict, waited = "allowed", 0.0
        if decision.mode == "approval":
            rule = self.rule(tool)
            asked = time.monotonic()
            approved = bool(
                self.approver and self.approver(tool, agent, args, rule.approval_timeout_s)
            )
            waited = time.monotonic() - asked
            if not approved:
                reason = (
                    "approval was denied or timed out"
                    if self.approver
                    else "approval is required but unavailable"
                )
                self.audit("tool.denied", {**event, "reason": reason})
                return ToolResult(False, f"DENIED: {reason}", "denied", waited)
            verdict = "approved"
        self.audit(f"tool.{verdict}", event)
        try:
            value = self.tools[tool].run(ToolContext(self.sandbox, self.rule(tool)), args)
        except (ToolError, PermissionError, OSError) as exc:
            self.audit("tool.failed", {**event, "error": str(exc)[:500]})
            return ToolResult(False, f"ERROR: {exc}", "failed", waited)
        content = value if isinstance(value, str) else json.dumps(value, default=str)
        return ToolResult(True, content[:MAX_RESULT_CHARS], verdict, waited)
