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

from . import phi
from .schemas import CloudEndpoint, ComplianceMode, CompliancePolicy


class EscalationRefused(Exception):
    pass


@dataclass
class Escalation:
    endpoint: CloudEndpoint
    messages: list[dict[str, Any]]
    redactions: dict[str, int] = field(default_factory=dict)


def guard_escalation(
    policy: CompliancePolicy, endpoint_name: str, messages: list[dict[str, Any]]
) -> Escalation:
    """The messages that may go to `endpoint_name` (redacted where policy says), or raise
    EscalationRefused with the reason."""
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
    if policy.mode != ComplianceMode.HIPAA or endpoint.baa:
        return Escalation(endpoint, messages)
    if not phi.available():
        raise EscalationRefused(
            "HIPAA mode: PHI detection is not installed on this host, so nothing may go to an "
            "endpoint without a business associate agreement"
        )
    counts: Counter[str] = Counter()
    out = []
    for message in messages:
        text = message.get("content")
        if not isinstance(text, str):
            out.append(message)
            continue
        findings = phi.detect(text)
        counts.update(f.kind for f in findings)
        out.append({**message, "content": phi.redact(text, findings)} if findings else message)
    if counts and policy.phi_action == "refuse":
        kinds = ", ".join(sorted(counts))
        raise EscalationRefused(
            f"HIPAA mode: the request contains PHI ({kinds}) and cloud endpoint "
            f"'{endpoint_name}' has no business associate agreement"
        )
    return Escalation(endpoint, out, dict(counts))


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
