"""Escalation of a hard request from a node to a cloud LLM, through the control plane.

The fleet's compliance policy is applied here again (the node applied it already): allow-list,
GDPR regions, HIPAA business associate agreements and PHI redaction or refusal. The API key never
leaves the control plane. The audit record says who escalated what kind of request where, and
what was redacted, never the content.
"""

from __future__ import annotations

import os

from django.conf import settings

from agents import compliance, schemas
from controlplane.audit.services import record
from controlplane.errors import Forbidden, ServiceError

from .models import Node


class UpstreamError(ServiceError):
    status = 502


def do_escalate(node: Node, req: schemas.EscalateIn, *, request=None) -> schemas.EscalateOut:
    policy = node.fleet.compliance_policy()
    audit = {"agent": req.agent, "endpoint": req.endpoint, "messages": len(req.messages)}
    try:
        allowed = compliance.guard_escalation(
            policy, req.endpoint, [m.model_dump() for m in req.messages]
        )
    except compliance.EscalationRefused as exc:
        record(
            "escalation.refused",
            ("escalation", req.endpoint),
            node=node,
            fleet=node.fleet,
            after={**audit, "reason": str(exc)},
            request=request,
        )
        raise Forbidden(str(exc)) from None
    import openai  # imported on first use: it adds ~30 MB to every control-plane process otherwise

    endpoint = allowed.endpoint
    if not endpoint.base_url:
        raise ServiceError(f"cloud endpoint '{endpoint.name}' has no base_url configured")
    client = openai.OpenAI(
        base_url=endpoint.base_url,
        api_key=os.environ.get(endpoint.api_key_env or "", "") or "unset",
        timeout=settings.EDGEFLEET["CLOUD_TIMEOUT_S"],
        max_retries=1,
    )
    try:
        reply = client.chat.completions.create(
            model=endpoint.model or "default",
            messages=allowed.messages,  # type: ignore[arg-type]
            max_tokens=req.max_tokens,
        )
    except openai.OpenAIError as exc:
        record(
            "escalation.failed",
            ("escalation", endpoint.name),
            node=node,
            fleet=node.fleet,
            after={**audit, "error": type(exc).__name__},
            request=request,
        )
        raise UpstreamError(f"cloud endpoint '{endpoint.name}' failed: {exc}") from None
    usage = reply.usage
    record(
        "escalation.forward",
        ("escalation", endpoint.name),
        node=node,
        fleet=node.fleet,
        after={
            **audit,
            "region": endpoint.region,
            "baa": endpoint.baa,
            "redactions": allowed.redactions,
            "prompt_tokens": usage.prompt_tokens if usage else None,
            "completion_tokens": usage.completion_tokens if usage else None,
        },
        request=request,
    )
    return schemas.EscalateOut(
        content=reply.choices[0].message.content or "",
        endpoint=endpoint.name,
        model=reply.model,
        redactions=allowed.redactions,
    )
