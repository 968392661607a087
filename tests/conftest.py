"""Named personas and the fixtures every test file shares.

alice: global admin. fiona: admin of "north" only (not a superuser). olivia: operator of "north".
carol: compliance officer of "north". victor: viewer of "north". mallory: no role anywhere.
"south" is the other fleet, for wrong-fleet tests.
"""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
import uvicorn
from django.contrib.auth import get_user_model
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client

from controlplane.accounts import guesses
from controlplane.accounts.models import Membership, Role
from controlplane.approvals import services as approvals_services
from controlplane.audit import services as audit_services
from controlplane.audit.services import pseudonym
from controlplane.nodes import layers, secrets, services
from controlplane.nodes.models import EnrollmentToken, Fleet, Node, Rollout, ToolApproval
from controlplane.registry.quantize import quantize
from controlplane.registry.tinymodel import serve_openai, write_tiny_llama
from controlplane.rollouts import services as rollouts
from edgefleet.asgi import application
from wire.schemas import ApprovalIn, EnrollIn, HardwareProfile

from .agent_helpers import free_port, wait_for

HARDWARE = HardwareProfile(
    cpu_model="Test CPU",
    cpu_flags=["avx2", "fma"],
    cpu_cores=4,
    ram_mb=8192,
    os="linux",
    arch="x86_64",
    runtime_versions={"llama_cpp": "0.3.36"},
)


@pytest.fixture(scope="session")
def artifact_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture(autouse=True)
def test_settings(settings, artifact_dir, tmp_path):
    """PBKDF2 is slow by design; tests do not need that. Contacts are written through (no buffer
    delay) unless a test asks for the buffered steady state. Registered models go to a temporary
    directory."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(artifact_dir)},
        },
    }
    # Tests present many unknown tokens from 127.0.0.1 (the fuzz, every 401 test): no address
    # is blocked for guessing unless a test lowers the limit (tests/test_token_guessing.py).
    settings.EDGEFLEET = {
        **settings.EDGEFLEET,
        "CONTACT_FLUSH_S": 0,
        "TOKEN_FAILURE_LIMIT": 10**9,
        # Each test's audit checkpoints are anchored in its own file: a chain built from scratch
        # never meets another test's anchors.
        "AUDIT_ANCHOR_FILE": str(tmp_path / "var" / "audit-anchors.jsonl"),
        "AUDIT_ANCHOR_URL": "",
    }
    settings.VAR_DIR = tmp_path / "var"  # uploads in progress, demo files
    # Each test's database starts over (and reuses primary keys): so does the actor cache.
    audit_services._actor_refs.clear()
    guesses._blocked.clear()


@pytest.fixture
def north(db) -> Fleet:
    return Fleet.objects.create(slug="north", name="North clinics")


@pytest.fixture
def south(db) -> Fleet:
    return Fleet.objects.create(slug="south", name="South warehouses")


def _user(username: str, **extra):
    return get_user_model().objects.create_user(
        username=username, password="correct horse battery staple", **extra
    )


@pytest.fixture
def alice(db):
    return _user("alice", is_superuser=True, is_staff=True)


@pytest.fixture
def fiona(north):
    user = _user("fiona")
    Membership.objects.create(user=user, fleet=north, role=Role.ADMIN)
    return user


@pytest.fixture
def olivia(north):
    user = _user("olivia")
    Membership.objects.create(user=user, fleet=north, role=Role.OPERATOR)
    return user


@pytest.fixture
def carol(north):
    user = _user("carol")
    Membership.objects.create(user=user, fleet=north, role=Role.COMPLIANCE)
    return user


@pytest.fixture
def victor(north):
    user = _user("victor")
    Membership.objects.create(user=user, fleet=north, role=Role.VIEWER)
    return user


@pytest.fixture
def mallory(db):
    return _user("mallory")


@pytest.fixture
def persona(request, alice, fiona, olivia, carol, victor, mallory):
    """Parametrize indirectly with a persona name."""
    people = [alice, fiona, olivia, carol, victor, mallory]
    return {user.username: user for user in people}[request.param]


class Api:
    """A JSON client for one API prefix, logged in as a user or carrying a bearer token."""

    def __init__(self, prefix: str, user=None, bearer: str | None = None):
        self.client = Client()
        self.prefix = prefix
        self.headers = {}
        if user is not None:
            self.client.force_login(user)
        if bearer:
            self.headers["Authorization"] = f"Bearer {bearer}"

    def call(self, method: str, path: str, body=None, **headers):
        kwargs = {"headers": {**self.headers, **headers}}
        if body is not None:
            kwargs["data"] = body if isinstance(body, (str, bytes)) else json.dumps(body)
            kwargs["content_type"] = "application/json"
        return getattr(self.client, method)(self.prefix + path, **kwargs)

    def get(self, path, **h):
        return self.call("get", path, **h)

    def post(self, path, body=None, **h):
        return self.call("post", path, body if body is not None else {}, **h)

    def put(self, path, body, **h):
        return self.call("put", path, body, **h)

    def patch(self, path, body, **h):
        return self.call("patch", path, body, **h)

    def delete(self, path, **h):
        return self.call("delete", path, **h)


@pytest.fixture
def admin_api():
    return lambda user=None, bearer=None: Api("/api/v1", user=user, bearer=bearer)


def enroll(fleet: Fleet, name: str = "node-1", labels=None):
    """Enroll a node through the service layer; returns (node, credential)."""
    _, token = services.do_create_enrollment_token(fleet, labels=labels or {}, actor=None)
    return services.do_enroll_node(EnrollIn(token=token, name=name, hardware=HARDWARE))


@pytest.fixture
def north_node(north):
    return enroll(north, "north-1", {"site": "oslo"})


@pytest.fixture
def south_node(south):
    return enroll(south, "south-1")


@pytest.fixture
def node_api():
    return lambda credential=None: Api("/api/node/v1", bearer=credential)


@pytest.fixture(scope="session")
def cloud_llm(tmp_path_factory):
    """A real OpenAI-compatible server on loopback (llama_cpp.server on a generated tiny model):
    the stand-in for a cloud LLM, which cannot be reached here."""
    d = tmp_path_factory.mktemp("oai")
    model = quantize(write_tiny_llama(d / "f32.gguf"), d / "q8.gguf", "Q8_0")
    proc, url = serve_openai(model)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture
def model_file(tmp_path):
    """A generated tiny llama, quantized to Q4_K_M (what the end-to-end tests assign)."""
    f32 = write_tiny_llama(tmp_path / "f32.gguf")
    return quantize(f32, tmp_path / "tiny-Q4_K_M.gguf", "Q4_K_M")


@pytest.fixture(scope="session")
def tiny_f32(tmp_path_factory):
    """A generated F32 llama GGUF (random weights), written once per test session."""
    return write_tiny_llama(tmp_path_factory.mktemp("tiny") / "edgefleet-tiny-F32.gguf")


@pytest.fixture
def wsgi_in_test_transaction():
    """Like Django's test client: WSGI calls (the fuzz) must not close the test transaction's
    connection."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


# --- the permission matrix: every persona x own fleet / other fleet ---------------------------

VIEW, OPERATE, ADMINISTER, AUDIT, ERASE = "view", "operate", "administer", "view_audit", "erase"
RIGHTS = {
    "alice": {VIEW, OPERATE, ADMINISTER, AUDIT, ERASE},
    "fiona": {VIEW, OPERATE, ADMINISTER, AUDIT, ERASE},
    "olivia": {VIEW, OPERATE},
    "carol": {VIEW, AUDIT, ERASE},
    "victor": {VIEW},
    "mallory": set(),
}


def targets(fleet: Fleet):
    node = Node.objects.get(fleet=fleet)
    token = EnrollmentToken.objects.filter(fleet=fleet).first()
    approval = ToolApproval.objects.filter(fleet=fleet).first()
    rollout = Rollout.objects.filter(fleet=fleet).first()
    return {
        "slug": fleet.slug,
        "node": node.pk,
        "token": token.pk,
        "approval": approval.pk,
        "rollout": rollout.pk,
    }


def furnish(fleet: Fleet, admin) -> None:
    """One of everything in `fleet`: a node with a pending approval, an enrollment token, a
    layer and a node secret named "existing" (the permission matrices' and the browser checks'
    objects)."""
    node, _ = enroll(fleet, f"{fleet.slug}-1")
    approvals_services.do_request_approval(node, ApprovalIn(tool="clock", agent="ops"))
    services.do_create_enrollment_token(fleet, actor=admin)
    layers.do_put_layer(
        fleet,
        name="existing",
        scope="fleet",
        sections={"tools": {"rules": {"clock": {"mode": "allow"}}}},
        actor=admin,
    )
    secrets.do_set_secret(fleet, "existing", "a value", actor=admin)


@pytest.fixture
def world(north, south, alice):
    get_user_model().objects.create_user(username="bob", password="correct horse battery staple")
    for fleet in (north, south):
        furnish(fleet, alice)
        pseudonym("subject", f"{fleet.pk}:patient-7")  # a data subject the edge reported
        rollouts.do_start_rollout(fleet, model=ROLLOUT_MODEL, actor=alice)
    return {"north": north, "south": south}


ROLLOUT_MODEL = {"name": "custom", "url": "file:///models/custom.gguf", "sha256": "a" * 64}


@pytest.fixture
def asgi_server():
    """The ASGI application under uvicorn on loopback, in a thread of this process."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            application,
            host="127.0.0.1",
            port=port,
            lifespan="off",
            log_level="error",
            timeout_graceful_shutdown=1,  # held watches end with the server, as in production
        )
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    wait_for(lambda: server.started, 30, "uvicorn to start")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)
    assert not thread.is_alive()
