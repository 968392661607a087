"""Secrets for nodes: set and deleted by fleet admins, encrypted at rest, revealed only to a node
whose desired state names them (docs/models.md, "A node's OpenAI-compatible server").

The encryption key is derived (HKDF-SHA256) from the control plane's signing key, which lives in a
file outside the database (controlplane/signing.py): someone who reads the database reads only
ciphertext. Values are never returned by the admin API or the dashboard after they are set, and
never reach the audit trail, events or logs (the audit records the name and version).
"""

from __future__ import annotations

import base64
import re

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.db import transaction
from django.utils import timezone

from controlplane import signing
from controlplane.audit.services import record
from controlplane.errors import NotFound, ServiceError
from controlplane.events import publish_on_commit
from controlplane.fleets.models import Fleet
from controlplane.nodes import desired_state
from controlplane.nodes.models import Node, NodeSecret

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
MAX_VALUE = 4096


def _fernet() -> Fernet:
    raw = signing.private_key().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    key = HKDF(hashes.SHA256(), 32, salt=None, info=b"edgefleet node secrets").derive(raw)
    return Fernet(base64.urlsafe_b64encode(key))


@transaction.atomic
def do_set_secret(fleet: Fleet, name: str, value: str, *, actor, request=None) -> NodeSecret:
    """Create or replace a secret; the nodes whose desired state names it get a new revision."""
    if not NAME.match(name or ""):
        raise ServiceError(
            "a secret's name is 1 to 63 lower-case letters, digits, - or _", field="name"
        )
    if not value or len(value) > MAX_VALUE or "\x00" in value:
        raise ServiceError(
            f"a secret's value is 1 to {MAX_VALUE} characters (no NUL)", field="value"
        )
    ciphertext = _fernet().encrypt(value.encode())
    secret = NodeSecret.objects.select_for_update().filter(fleet=fleet, name=name).first()
    if secret is None:
        secret = NodeSecret.objects.create(fleet=fleet, name=name, ciphertext=ciphertext)
    else:
        secret.ciphertext = ciphertext
        secret.version += 1
        secret.updated_at = timezone.now()
        secret.save(update_fields=["ciphertext", "version", "updated_at"])
    record(
        "secret.set",
        secret,
        user=actor,
        fleet=fleet,
        after={"name": name, "version": secret.version},
        request=request,
    )
    changed = desired_state.refresh(fleet)
    publish_on_commit(
        fleet.pk, "desired_state.changed", layer=f"secret:{name}", nodes_changed=len(changed)
    )
    return secret


@transaction.atomic
def do_delete_secret(secret: NodeSecret, *, actor, request=None) -> int:
    """Delete a secret; nodes whose desired state names it report the assignment as an error."""
    fleet = secret.fleet
    record(
        "secret.delete",
        secret,
        user=actor,
        fleet=fleet,
        before={"name": secret.name, "version": secret.version},
        request=request,
    )
    secret.delete()
    return len(desired_state.refresh(fleet))


def reveal(node: Node, name: str) -> str:
    """The value for a node whose desired state names the secret; NotFound otherwise (the same
    answer for a secret that does not exist, so a node cannot probe for names)."""
    document = desired_state.document(node)
    named = {
        m.get("api_key_secret") for m in desired_state.layer_models(document) if isinstance(m, dict)
    }
    secret = NodeSecret.objects.filter(fleet_id=node.fleet_id, name=name).first()
    if name not in named or secret is None:
        raise NotFound(f"no secret '{name}' for this node")
    try:
        return _fernet().decrypt(bytes(secret.ciphertext)).decode()
    except InvalidToken:
        raise ServiceError(
            f"secret '{name}' cannot be decrypted with this control plane's key (set it again)"
        ) from None
