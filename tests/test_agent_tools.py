"""Tool permissions enforced on the node: allow, deny, approval, argument constraints, audit."""

from __future__ import annotations

import json
import sqlite3

import pytest

from agents.tools import ToolGate, registry
from wire.schemas import ToolPolicy

ALL = ["clock", "read_file", "http_get", "sql_query", "create_ticket"]


@pytest.fixture
def sandbox(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "shift.txt").write_text("night shift: 2 nurses")
    (tmp_path / "secret.txt").write_text("do not read")
    db = tmp_path / "inventory.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE item (name TEXT, qty INTEGER)")
        conn.execute("INSERT INTO item VALUES ('gloves', 40)")
    return tmp_path


def make_gate(sandbox, rules, approver=None, default="deny"):
    events = []
    policy = ToolPolicy.model_validate({"default": default, "rules": rules})
    g = ToolGate(
        policy, registry(), sandbox, approver=approver, audit=lambda k, d: events.append((k, d))
    )
    return g, events


def test_an_allowed_call_runs_and_is_audited(sandbox):
    g, events = make_gate(sandbox, {"read_file": {"mode": "allow", "path_prefix": "notes"}})
    r = g.call("ops", ALL, "read_file", {"path": "notes/shift.txt"})
    assert r.ok and r.content == "night shift: 2 nurses"
    assert events == [
        (
            "tool.allowed",
            {"agent": "ops", "tool": "read_file", "arguments": {"path": "notes/shift.txt"}},
        )
    ]


@pytest.mark.parametrize(
    "tool, args, reason",
    [
        ("teleport", {}, "unknown tool 'teleport'"),
        ("read_file", {"path": "../../etc/passwd"}, "escapes the sandbox"),
        ("read_file", {"path": "/etc/passwd"}, "escapes the sandbox"),
        ("read_file", {"path": "secret.txt"}, "outside the allowed prefix"),
        ("read_file", {"path": "notes/../secret.txt"}, "outside the allowed prefix"),
        ("read_file", {"file": "notes/shift.txt"}, "'path' is a required property"),
        ("read_file", {"path": "notes/shift.txt", "extra": 1}, "Additional properties"),
        ("read_file", "notes/shift.txt", "must be a JSON object"),
        (
            "http_get",
            {"url": "http://evil.example/steal"},
            "host 'evil.example' is not on the allow-list",
        ),
        ("http_get", {"url": "ftp://intranet/x"}, "does not match"),
        ("sql_query", {"query": "select 1"}, "denied by policy"),
    ],
)
def test_a_refused_call_explains_why_and_records_an_audit_event(sandbox, tool, args, reason):
    g, events = make_gate(
        sandbox,
        {
            "read_file": {"mode": "allow", "path_prefix": "notes"},
            "http_get": {"mode": "allow", "hosts": ["intranet.local"]},
        },
    )
    r = g.call("ops", ALL + ["teleport"], tool, args)
    assert not r.ok and r.decision == "denied"
    assert r.content.startswith("DENIED: ") and reason in r.content
    assert events[-1][0] == "tool.denied" and reason in events[-1][1]["reason"]


def test_a_tool_the_agent_was_not_given_is_refused_even_if_policy_allows_it(sandbox):
    g, _ = make_gate(sandbox, {"clock": {"mode": "allow"}})
    r = g.call("helper", ["read_file"], "clock", {})
    assert "agent 'helper' may not use tool 'clock'" in r.content


def test_a_rate_limited_tool_is_refused_past_its_rate(sandbox):
    g, _ = make_gate(sandbox, {"clock": {"mode": "allow", "rate_per_min": 3}})
    decisions = [g.call("ops", ALL, "clock", {}).decision for _ in range(5)]
    assert decisions == ["allowed"] * 3 + ["denied"] * 2


def test_sql_is_read_only_even_when_allowed(sandbox):
    g, _ = make_gate(
        sandbox,
        {"sql_query": {"mode": "allow", "settings": {"database": str(sandbox / "inventory.db")}}},
    )
    r = g.call("ops", ALL, "sql_query", {"query": "select name, qty from item"})
    assert json.loads(r.content) == {"columns": ["name", "qty"], "rows": [["gloves", 40]]}
    r = g.call("ops", ALL, "sql_query", {"query": "delete from item"})
    assert r.decision == "failed" and "refused or failed" in r.content
    with sqlite3.connect(sandbox / "inventory.db") as conn:
        assert conn.execute("select count(*) from item").fetchone() == (1,)


def test_a_ticket_lands_in_the_local_queue(sandbox):
    g, _ = make_gate(
        sandbox, {"create_ticket": {"mode": "allow", "settings": {"queue": "tickets"}}}
    )
    r = g.call("ops", ALL, "create_ticket", {"title": "fridge 3 warm", "priority": "high"})
    ticket_id = json.loads(r.content)["ticket"]
    assert (
        json.loads((sandbox / "tickets" / f"{ticket_id}.json").read_text())["title"]
        == "fridge 3 warm"
    )


@pytest.mark.parametrize("answer, decision", [(True, "approved"), (False, "denied")])
def test_a_call_that_needs_approval_waits_for_the_answer(sandbox, answer, decision):
    asked = []

    def approver(tool, agent, args, timeout_s):
        asked.append((tool, agent, args, timeout_s))
        return answer

    g, events = make_gate(
        sandbox, {"clock": {"mode": "approval", "approval_timeout_s": 30}}, approver
    )
    r = g.call("ops", ALL, "clock", {})
    assert r.decision == decision
    assert asked == [("clock", "ops", {}, 30)]
    assert events[-1][0] == f"tool.{decision}"


def test_approval_without_a_way_to_ask_means_deny(sandbox):
    g, _ = make_gate(sandbox, {"clock": {"mode": "approval"}})
    assert g.call("ops", ALL, "clock", {}).decision == "denied"


ECHO = None  # set below; loaded through an entry point by the test


def _echo(ctx, args):
    return {"echo": args["text"]}


def test_a_site_tool_from_the_entry_point_group_is_available_and_gated(sandbox, monkeypatch):
    from importlib.metadata import EntryPoint

    import agents.tools as tools_module
    from agents.tools import Tool

    global ECHO
    ECHO = Tool(
        "echo",
        "Echo text back.",
        {
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"],
            "additionalProperties": False,
        },
        _echo,
    )
    ep = EntryPoint(name="echo", value="tests.test_agent_tools:ECHO", group="edgefleet.tools")
    monkeypatch.setattr(
        tools_module, "entry_points", lambda group: [ep] if group == "edgefleet.tools" else []
    )
    g, events = make_gate(sandbox, {"echo": {"mode": "allow"}})
    assert "echo" in g.tools
    assert json.loads(g.call("ops", ["echo"], "echo", {"text": "hi"}).content) == {"echo": "hi"}
    assert g.call("ops", ["echo"], "echo", {"txt": "hi"}).decision == "denied"
