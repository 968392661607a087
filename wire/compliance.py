"""Compliance policy enforcement shared by the edge and the control plane (no Django).

The node applies it before anything leaves the device; the control plane applies it again before
forwarding to a cloud endpoint, so a modified node cannot get around it.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from wire import phi
from wire.schemas import CloudEndpoint, ComplianceMode, CompliancePolicy


class EscalationRefused(Exception):
    pass


class PhiRefused(EscalationRefused):
    """Refused for PHI (found, or detection could not run): the node answers locally instead."""


@dataclass
class Escalation:
    endpoint: CloudEndpoint
    messages: list[dict[str, Any]]
    redactions: dict[str, int] = field(default_factory=dict)
    # placeholder -> original, for the node to restore the answer; never sent, logged or stored
    mapping: dict[str, str] = field(default_factory=dict)


def _check_endpoint(policy: CompliancePolicy, endpoint_name: str) -> CloudEndpoint:
    endpoint = policy.endpoint(endpoint_name)
    if endpoint is None:
        raise EscalationRefused(
            f"cloud endpoint '{endpoint_name}' is not on this fleet's allow-list"
        )
    if policy.mode == ComplianceMode.GDPR and endpoint.region not in policy.regions:
        raise EscalationRefused(
            f"cloud endpoint '{endpoint_name}' is in region '{endpoint.region}', outside this "
            f"fleet's GDPR region allow-list {policy.regions}"
        )
    return endpoint


def _needs_phi_guard(policy: CompliancePolicy, endpoint: CloudEndpoint) -> bool:
    return policy.mode == ComplianceMode.HIPAA and not endpoint.baa


def _detect(text: str, endpoint_name: str) -> list[phi.Finding]:
    try:
        return phi.detect(text)
    except phi.DetectionError as exc:
        raise PhiRefused(
            f"HIPAA mode: {exc}, so nothing may go to cloud endpoint '{endpoint_name}', which has "
            "no business associate agreement"
        ) from None


def guard_escalation(
    policy: CompliancePolicy, endpoint_name: str, messages: list[dict[str, Any]]
) -> Escalation:
    """The node's pass: the messages that may go to `endpoint_name`, with PHI replaced by numbered
    placeholders where policy says (the mapping stays in the Escalation, on the node), or raise
    EscalationRefused with the reason (PhiRefused when PHI is why)."""
    endpoint = _check_endpoint(policy, endpoint_name)
    if not _needs_phi_guard(policy, endpoint):
        return Escalation(endpoint, messages)
    redactor = phi.Redactor()
    out = []
    for message in messages:
        text = message.get("content")
        if not isinstance(text, str):
            out.append(message)
            continue
        text = phi.neutralise(text)
        # Redact until the detector finds nothing more (at most three passes): what is sent is
        # then exactly what the control plane's second pass, the same detector, accepts.
        for _ in range(3):
            findings = _detect(text, endpoint_name)
            if not findings:
                break
            text = redactor.redact(text, findings)
        else:
            if _detect(text, endpoint_name):
                raise PhiRefused(
                    f"HIPAA mode: PHI could not be fully redacted for cloud endpoint "
                    f"'{endpoint_name}', which has no business associate agreement"
                )
        out.append({**message, "content": text})
    counts = placeholder_counts(out)
    if counts and policy.phi_action == "refuse":
        kinds = ", ".join(sorted(counts))
        raise PhiRefused(
            f"HIPAA mode: the request contains PHI ({kinds}) and cloud endpoint "
            f"'{endpoint_name}' has no business associate agreement"
        )
    return Escalation(endpoint, out, counts, redactor.mapping)


def check_escalation(
    policy: CompliancePolicy, endpoint_name: str, messages: list[dict[str, Any]]
) -> Escalation:
    """The control plane's pass over what a node sends: the same allow-list and region rules, and
    in HIPAA mode towards an endpoint without a BAA the same detector run again on the node's
    redacted messages. Anything it still finds refuses the escalation (PhiRefused): nothing is
    sent. Its counts are the node's placeholders per kind."""
    endpoint = _check_endpoint(policy, endpoint_name)
    if not _needs_phi_guard(policy, endpoint):
        return Escalation(endpoint, messages)
    for message in messages:
        text = message.get("content")
        if isinstance(text, str) and (findings := _detect(text, endpoint_name)):
            kinds = ", ".join(sorted({f.kind for f in findings}))
            raise PhiRefused(
                f"HIPAA mode: the control plane's second pass found PHI ({kinds}) in the request "
                f"for cloud endpoint '{endpoint_name}', which has no business associate "
                "agreement; nothing was sent"
            )
    counts = placeholder_counts(messages)
    if counts and policy.phi_action == "refuse":
        raise PhiRefused(
            f"HIPAA mode: the request carries redacted PHI and this fleet refuses PHI for cloud "
            f"endpoint '{endpoint_name}'"
        )
    return Escalation(endpoint, messages, counts)


def placeholder_counts(messages: list[dict[str, Any]]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for message in messages:
        if isinstance(message.get("content"), str):
            counts.update(phi.count_placeholders(message["content"]))
    return dict(sorted(counts.items()))


CONTENT_KEYS = ("arguments", "content", "prompt", "response", "messages")


def minimise(data: dict[str, Any], policy: CompliancePolicy) -> dict[str, Any]:
    """What of an event may be stored centrally: without content unless the fleet stores it.

    Content (tool arguments, prompts, answers) is replaced by its keys and a sha256, which lets an
    auditor match it against the node's local log without the control plane holding it."""
    if policy.store_content and policy.mode != ComplianceMode.HIPAA:
        return data
    out = dict(data)
    for key in CONTENT_KEYS:
        if key in out:
            value = out.pop(key)
            blob = json.dumps(value, sort_keys=True, default=str).encode()
            out[f"{key}_sha256"] = hashlib.sha256(blob).hexdigest()
            if isinstance(value, dict):
                out[f"{key}_keys"] = sorted(value)[:50]
    return out


def subject_digest(user: str) -> str:
    """How nodes and the control plane name an erased data subject to each other: the sha256 of
    the `user` value a node served them as (docs/compliance.md, "Privacy")."""
    return hashlib.sha256(user.encode()).hexdigest() if user else ""
