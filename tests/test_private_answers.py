"""Answers for a signed-in person or a token holder are not kept by a browser's or a proxy's cache
(a clinic's shared computer), and every answer switches off the browser features no page uses."""

from __future__ import annotations

import pytest
from django.test import Client

from controlplane.accounts.services import do_create_personal_token
from controlplane.middleware import PERMISSIONS_POLICY
from edgenodes.models import Node

from .test_pages import client_for

pytestmark = pytest.mark.django_db


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
