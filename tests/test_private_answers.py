"""Answers for a signed-in person or a token holder are not kept by a browser's or a proxy's cache
(a clinic's shared computer), every answer switches off the browser features no page uses, and
every page runs only the dashboard's own scripts and style sheets (Content-Security-Policy; in a
real browser: tests/test_csp_browser.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.test import Client

from controlplane.accounts.services import do_create_personal_token
from controlplane.middleware import CONTENT_SECURITY_POLICY, PERMISSIONS_POLICY
from controlplane.nodes.models import Node

from .test_pages import client_for

pytestmark = pytest.mark.django_db

TEMPLATES = Path(__file__).resolve().parent.parent / "controlplane" / "dashboard" / "templates"


def test_a_signed_in_persons_pages_are_not_kept_by_the_browser(world, victor, carol):
    node = Node.objects.get(fleet__slug="north")
    for client, path in (
        (client_for(victor), f"/nodes/{node.pk}/"),
        (client_for(victor), "/approvals/"),
        (client_for(carol), "/audit/?fleet=north"),
    ):
        r = client.get(path)
        assert r.status_code == 200, path
        assert r["Cache-Control"] == "no-store", path
        assert r["Permissions-Policy"] == PERMISSIONS_POLICY


def test_an_api_answer_to_a_token_is_not_kept(alice, north, admin_api, north_node, node_api):
    _, plaintext = do_create_personal_token(alice, name="cli")
    r = admin_api(bearer=plaintext).get("/fleets/north")
    assert r.status_code == 200 and r["Cache-Control"] == "no-store"
    _, credential = north_node
    r = node_api(credential).get("/signing-key")
    assert r.status_code == 200 and r["Cache-Control"] == "no-store"
    # The desired state keeps its own policy: revalidated with its ETag on every poll.
    r = node_api(credential).get("/desired-state")
    assert r.status_code == 200 and "no-cache" in r["Cache-Control"]


def test_a_public_page_still_says_which_features_it_does_not_use(db):
    r = Client().get("/accounts/login/")
    assert r.status_code == 200 and r["Permissions-Policy"] == PERMISSIONS_POLICY


def directives(policy: str) -> dict[str, list[str]]:
    return {d.split()[0]: d.split()[1:] for d in policy.split(";") if d.strip()}


def test_every_page_runs_only_the_dashboards_own_scripts_and_styles(world, alice, carol):
    node = Node.objects.get(fleet__slug="north")
    for client, path in (
        (client_for(alice), "/"),
        (client_for(alice), f"/nodes/{node.pk}/"),
        (client_for(alice), "/enrollment/?fleet=north"),
        (client_for(alice), "/approvals/"),
        (client_for(carol), "/audit/?fleet=north"),
        (client_for(alice), "/nodes/no-such-node/"),  # the error page too
        (Client(), "/accounts/login/"),
    ):
        r = client.get(path)
        assert r["Content-Type"].startswith("text/html"), path
        assert r["Content-Security-Policy"] == CONTENT_SECURITY_POLICY, path
    csp = directives(CONTENT_SECURITY_POLICY)
    assert csp["default-src"] == csp["script-src"] == csp["style-src"] == ["'self'"]
    assert "'unsafe-eval'" not in CONTENT_SECURITY_POLICY
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
    assert csp["object-src"] == csp["base-uri"] == csp["frame-ancestors"] == ["'none'"]
    assert csp["form-action"] == csp["connect-src"] == ["'self'"]


def test_an_api_answer_opened_in_a_browser_runs_nothing(alice, north, admin_api):
    r = admin_api(user=alice).get("/fleets/north")
    assert r.status_code == 200 and r["Content-Type"].startswith("application/json")
    assert r["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"


def test_the_api_docs_page_gets_the_dashboards_policy(alice):
    r = client_for(alice).get("/api/v1/docs")
    assert r.status_code == 200 and r["Content-Security-Policy"] == CONTENT_SECURITY_POLICY


INLINE = [
    # (what, pattern): what a template must not hold, since the policy refuses it
    ("an inline <script>", re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>")),
    ("a <style> element", re.compile(r"<style\b")),
    ("a style= attribute", re.compile(r"\sstyle\s*=")),
    ("an on...= event handler attribute", re.compile(r"\son[a-z]+\s*=", re.I)),
    ("an hx-on handler", re.compile(r"\shx-on")),
    ("a javascript: URL or js: value", re.compile(r"javascript:|[\"']js:")),
]


def test_no_template_holds_inline_script_or_style():
    found = [
        f"{path.relative_to(TEMPLATES.parent)}:{n}: {what}"
        for path in sorted(TEMPLATES.rglob("*.html"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        for what, pattern in INLINE
        if pattern.search(line)
    ]
    assert not found, "\n".join(found)
