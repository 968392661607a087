"""GDPR: erasure of a data subject by crypto-shredding, and the records of processing (Art. 30)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone

from controlplane.accounts.access import is_global_admin
from controlplane.accounts.auth import username_hash
from controlplane.accounts.models import LoginFailure
from controlplane.audit.models import AuditRecord, SubjectKey
from controlplane.audit.services import forget_user_ref, record
from controlplane.errors import Forbidden, NotFound, ServiceError


def _forget_sources_of(actor: str) -> int:
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute(
                "SELECT edgefleet_audit_forget_sources(%s, %s)",
                [timezone.now() + timedelta(days=1), actor],
            )
            return int(cur.fetchone()[0])
    return AuditRecord.objects.filter(actor=actor, source_ip__isnull=False).update(source_ip=None)


# Who else holds data that names an edge data subject: the domain apps register a function here
# (the nodes room: its node events, and the nodes' own conversations) that deletes what names the
# subject in the fleet (by the pseudonym, and the `user` value itself for the nodes to find it)
# and says how many rows went. The audit app never imports them.
SubjectDataEraser = Callable[[Any, str, str], int]
SUBJECT_DATA: list[SubjectDataEraser] = []


@transaction.atomic
def do_erase_user(*, actor, username: str, request=None) -> str:
    """Erase a person with an account: anonymise the account, drop their access, and destroy their
    pseudonym key. Their audit records stay (and verify) but no longer lead to them. Only global
    admins erase accounts (an account belongs to no fleet), never their own."""
    if actor is not None and not is_global_admin(actor):
        raise Forbidden("only global admins erase accounts")
    target = get_user_model().objects.filter(username=username).first()
    if target is None:
        raise NotFound(f"user '{username}' not found")
    if actor is not None and target.pk == actor.pk:
        raise ServiceError("you cannot erase your own account")
    key = SubjectKey.objects.select_for_update().filter(kind="user", ref=str(target.pk)).first()
    pseud = key.pseudonym if key else ""
    if key is not None:
        _forget_sources_of(f"user:{pseud}")
    LoginFailure.objects.filter(username_hash=username_hash(target.username)).delete()
    target.memberships.all().delete()
    target.api_tokens.all().delete()
    target.username = f"erased-{uuid.uuid4().hex[:12]}"
    target.first_name = target.last_name = target.email = ""
    target.is_active = target.is_staff = target.is_superuser = False
    target.set_unusable_password()
    target.save()
    if key is not None:
        key.delete()
    forget_user_ref(target.pk)
    record(
        "privacy.erase",
        ("subject", pseud or "none"),
        user=actor,
        after={"kind": "user", "had_pseudonym": bool(pseud)},
        request=request,
    )
    return pseud


@transaction.atomic
def do_erase_subject(fleet, ref: str, *, actor, request=None) -> str:
    """Erase a data subject the edge reported (the `user` a node's agent served): delete the events
    that name them (SUBJECT_DATA) and destroy their pseudonym key."""
    key = (
        SubjectKey.objects.select_for_update()
        .filter(kind="subject", ref=f"{fleet.pk}:{ref}")
        .first()
    )
    if key is None:
        raise NotFound(f"no data subject '{ref}' is known in fleet '{fleet.slug}'")
    pseud = key.pseudonym
    deleted = sum(erase(fleet, f"subject:{pseud}", ref) for erase in SUBJECT_DATA)
    key.delete()
    record(
        "privacy.erase",
        ("subject", pseud),
        user=actor,
        fleet=fleet,
        after={"kind": "subject", "events_deleted": deleted},
        request=request,
    )
    return pseud


def records_of_processing(fleets) -> dict[str, Any]:
    """The GDPR Art. 30 record of processing activities, from each fleet's actual configuration."""
    cfg = settings.EDGEFLEET
    activities = []
    for fleet in fleets:
        policy = fleet.compliance_policy()
        recipients = [
            {
                "endpoint": e.name,
                "region": e.region,
                "baa": e.baa,
                "transfer_outside_allow_list": bool(policy.regions)
                and e.region not in policy.regions,
            }
            for e in policy.endpoints
        ]
        activities.append(
            {
                "fleet": fleet.slug,
                "name": f"Edge AI agents of fleet '{fleet.name}'",
                "compliance_mode": policy.mode,
                "purposes": [
                    "answering users' requests with language models on edge devices",
                    "operating and securing the devices (telemetry, audit trail)",
                    *(["escalating hard requests to a cloud LLM"] if recipients else []),
                ],
                "data_subjects": [
                    "staff with dashboard accounts",
                    "end users served by the agents",
                ],
                "personal_data": {
                    "accounts": "username, e-mail, role memberships",
                    "audit trail": "keyed pseudonyms of actors; source IP addresses",
                    "node events": "pseudonymised end-user identifiers; "
                    + ("request content" if policy.store_content else "no content (hashes only)"),
                    "metrics": "none (device figures)",
                },
                "content_stored_centrally": policy.store_content,
                "recipients": recipients,
                "cloud_region_allow_list": policy.regions,
                "retention": {
                    "audit_records_days": cfg["AUDIT_RETENTION_DAYS"],
                    "audit_source_addresses_days": cfg["RETENTION_SOURCE_IP_DAYS"],
                    "node_events_days": fleet.events_retention.days,
                    "raw_metrics_hours": cfg["METRICS_RAW_RETENTION_H"],
                    "metric_rollups_days": cfg["METRICS_ROLLUP_RETENTION_DAYS"],
                    "login_failures_days": cfg["RETENTION_LOGIN_FAILURES_DAYS"],
                },
                "security_measures": [
                    "role-based access per fleet; hashed, expiring, revocable tokens",
                    "hash-chained audit trail with Ed25519-signed checkpoints",
                    "pseudonymisation with per-subject keys; erasure by key destruction",
                    "PHI/personal data redaction before cloud escalation (HIPAA mode)",
                ],
            }
        )
    return {
        "controller": {"name": cfg["CONTROLLER_NAME"], "contact": cfg["CONTROLLER_CONTACT"]},
        "generated_at": timezone.now().isoformat(),
        "activities": activities,
    }
