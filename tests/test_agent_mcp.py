"""Tools from MCP servers behind the node's tool gate, against real servers: `mcp-server-time`
(from PyPI, over stdio) and the official SDK's MCPServer over streamable HTTP (tests/mcp_desk.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from agents.mcp import COMMANDS_ENV
from agents.runtime import Runtime, StateDir

from .agent_helpers import free_port, offline_node, sha256, wait_for
from .test_agent_crash import document

TIME = [sys.executable, "-m", "mcp_server_time", "--local-timezone", "UTC"]


@pytest.fixture
def desk(tmp_path):
    """The service desk's MCP server on a loopback port; yields (URL, its ticket directory)."""
    tickets = tmp_path / "tickets"
    tickets.mkdir()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("mcp_desk.py")), str(port), str(tickets)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def up() -> bool:
        try:
            httpx.get(f"http://127.0.0.1:{port}/mcp", timeout=1)
        except httpx.TransportError:
            return False
        return True

    wait_for(up, 60, "the MCP server to listen")
    yield f"http://127.0.0.1:{port}/mcp", tickets
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture
def node(tmp_path, model_file, monkeypatch):
    """A runtime with no control plane whose events are read from its outbox; `apply(tools)`
    applies the tiny model with an `ops` agent and the given tools section."""
    monkeypatch.setenv(COMMANDS_ENV, sys.executable)
    state = StateDir(tmp_path / "state").ensure()
    offline_node(state)
    runtime = Runtime(state)
    approvals: list[str] = []
    runtime.approvals = lambda tool, agent, args, timeout_s: approvals.append(tool) or True
    revision = iter(range(1, 100))

    def apply(tools: dict, agent_tools: list[str]) -> None:
        n = next(revision)
        doc = document(n, model_file.as_uri(), sha256(model_file))
        doc["agents"]["ops"] = {"tools": agent_tools}
        doc["tools"] = tools
        runtime.applier.apply(doc, f'"{n}"')

    yield runtime, apply, approvals
    runtime.shutdown(flush_timeout_s=0)


def _tool_events(runtime: Runtime) -> list[tuple[str, str]]:
    batch = runtime.outbox.peek("events", 1000)
    events = batch.items if batch else []
    return [(e["kind"], e["data"]["tool"]) for e in events if e["kind"].startswith("tool.")]


def test_a_stdio_mcp_servers_tools_pass_the_gate_and_are_audited(node):
    runtime, apply, approvals = node
    apply(
        {"default": "deny", "mcp": {"time": {"command": TIME}}, "rules": {}},
        ["time-get_current_time"],
    )
    assert runtime.applier.last_error == ""
    gate = runtime.active.runner.gate
    assert {"time-get_current_time", "time-convert_time"} <= set(gate.tools)
    call = ("ops", ["time-get_current_time"], "time-get_current_time", {"timezone": "UTC"})
    denied = gate.call(*call)  # the fleet's default is deny, and no rule names it
    assert not denied.ok and "denied by policy" in denied.content

    apply(
        {
            "default": "deny",
            "mcp": {"time": {"command": TIME}},
            "rules": {"time-get_current_time": {"mode": "allow"}},
        },
        ["time-get_current_time"],
    )
    gate = runtime.active.runner.gate
    result = gate.call(*call)
    assert result.ok and result.decision == "allowed"
    assert json.loads(result.content)["timezone"] == "UTC"
    bad = gate.call("ops", ["time-get_current_time"], "time-get_current_time", {"zone": 1})
    assert not bad.ok and "invalid arguments" in bad.content  # the tool's own schema
    kinds = _tool_events(runtime)
    assert ("tool.denied", "time-get_current_time") in kinds
    assert ("tool.allowed", "time-get_current_time") in kinds
    assert approvals == []  # read-only tools: no approval asked


def test_an_http_mcp_tool_that_is_not_annotated_asks_for_approval(node, desk):
    runtime, apply, approvals = node
    url, tickets = desk
    tools = ["desk-lookup_room", "desk-file_ticket"]
    apply({"default": "allow", "mcp": {"desk": {"url": url}}}, tools)
    assert runtime.applier.last_error == ""
    gate = runtime.active.runner.gate
    looked = gate.call("ops", tools, "desk-lookup_room", {"room": 2})
    assert looked.decision == "allowed" and "extension 202" in looked.content
    filed = gate.call("ops", tools, "desk-file_ticket", {"title": "printer in room 2"})
    assert filed.decision == "approved" and approvals == ["desk-file_ticket"]
    ticket = json.loads(filed.content)["ticket"]
    assert json.loads((tickets / f"{ticket}.json").read_text())["title"] == "printer in room 2"
    assert ("tool.approved", "desk-file_ticket") in _tool_events(runtime)
    # An explicit rule still decides: deny it, and nothing is filed.
    apply(
        {
            "default": "allow",
            "mcp": {"desk": {"url": url}},
            "rules": {"desk-file_ticket": {"mode": "deny"}},
        },
        tools,
    )
    refused = runtime.active.runner.gate.call("ops", tools, "desk-file_ticket", {"title": "x"})
    assert not refused.ok and len(list(tickets.iterdir())) == 1


def test_an_mcp_server_the_node_does_not_allow_is_refused_and_the_node_keeps_serving(
    node, monkeypatch
):
    runtime, apply, _ = node
    apply({"default": "deny"}, [])
    monkeypatch.setenv(COMMANDS_ENV, "")
    apply({"mcp": {"time": {"command": TIME}}}, [])
    assert "is not allowed on this node" in runtime.applier.last_error
    assert runtime.active.revision == 1
    apply({"mcp": {"far": {"url": "https://tools.example.com/mcp"}}}, [])
    assert "is not this machine" in runtime.applier.last_error
    # A server that is not there: a clear error, not a hang.
    port = free_port()
    apply({"mcp": {"gone": {"url": f"http://127.0.0.1:{port}/mcp", "timeout_s": 5}}}, [])
    assert "MCP server 'gone' could not be used" in runtime.applier.last_error
    assert runtime.active.revision == 1
