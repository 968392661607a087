"""Every action the audit trail can hold, declared once with a label (as Zulip's
AuditLogEventType): `services.entry` refuses an undeclared one, so a typo cannot create a new
action, and the audit browser lists and filters by these.

Control-plane actions are written by the service functions. Edge actions are the kinds of the
audited node events (controlplane.nodes.services.AUDITED_EVENTS): a node names them, so each family
is
declared by its prefix, with labels for the kinds today's agent sends.
"""

from __future__ import annotations

ACTIONS: dict[str, str] = {
    # accounts and sign-in
    "auth.login": "Signed in",
    "auth.login_failed": "Failed sign-in",
    "auth.guessing": "An address blocked for guessing tokens",
    "auth.account_guessed": "Failed sign-ins to an account: its password may be being guessed",
    "membership.set": "Role in a fleet set or removed",
    "user.invite": "Account created by invitation",
    "personal_token.create": "Personal API token created",
    "personal_token.revoke": "Personal API token revoked",
    # fleets, nodes, tokens, desired state
    "fleet.create": "Fleet created",
    "fleet.update": "Fleet settings changed",
    "fleet.compliance": "Compliance settings changed",
    "fleet.budgets": "Cloud budgets changed",
    "enrollment_token.create": "Enrollment token created",
    "enrollment_token.revoke": "Enrollment token revoked",
    "node.enroll": "Node enrolled",
    "node.update": "Node renamed or relabelled",
    "node.revoke": "Node credentials revoked",
    "node.credential_rotate": "Node rotated its credential",
    "node.report": "Node reported a new state",
    "node.hardware": "Node reported new hardware",
    "secret.set": "Node secret set",
    "secret.delete": "Node secret deleted",
    "layer.put": "Desired-state layer written",
    "layer.delete": "Desired-state layer deleted",
    # approvals
    "approval.request": "Tool call awaits approval",
    "approval.approved": "Tool call approved",
    "approval.denied": "Tool call denied",
    # model registry and rollouts
    "artifact.register": "Model file registered",
    "router.register": "Router registered",
    "artifact.quantize": "Quantization queued",
    "artifact.quantize_failed": "Quantization failed",
    "rollout.start": "Rollout started",
    "rollout.wave": "Rollout advanced a wave",
    "rollout.pause": "Rollout paused",
    "rollout.resume": "Rollout resumed",
    "rollout.abort": "Rollout aborted",
    "rollout.halt": "Rollout halted by a gate",
    "rollout.complete": "Rollout completed",
    # escalation through the control plane
    "escalation.forward": "Escalation forwarded to a cloud endpoint",
    "escalation.refused": "Escalation refused by policy",
    "escalation.failed": "Escalation failed upstream",
    # audit and privacy
    "audit.export": "Audit log exported",
    "privacy.erase": "Data subject erased",
    # what nodes report (edge actions)
    "tool.allowed": "Tool call allowed on a node",
    "tool.approved": "Tool call run after approval",
    "tool.denied": "Tool call denied on a node",
    "tool.failed": "Tool call failed on a node",
    "model.swap": "Node switched models",
    "model.refused": "Node refused a model (verification)",
    "apply.failed": "Node could not apply its desired state",
    "escalation.sent": "Node escalated to the cloud",
    "phi.redacted": "Node redacted PHI before escalating",
    "phi.mismatch": "Node's and control plane's PHI counts disagree",
}

# Edge families: any kind a node sends under these prefixes is an audited edge action.
EDGE_FAMILIES: dict[str, str] = {
    "tool.": "Tool calls on nodes",
    "escalation.": "Escalations",
    "model.": "Models on nodes",
    "apply.": "Desired state applied on nodes",
    "phi.": "PHI handling on nodes",
}


def label(action: str) -> str:
    if action in ACTIONS:
        return ACTIONS[action]
    family = next((p for p in EDGE_FAMILIES if action.startswith(p)), None)
    return f"{EDGE_FAMILIES[family]}: {action}" if family else action


def check(action: str, *, edge: bool = False) -> str:
    """The action if it is declared (or, for a node's event, in a declared family)."""
    if action in ACTIONS or (edge and action.startswith(tuple(EDGE_FAMILIES))):
        return action
    raise ValueError(f"undeclared audit action {action!r}: add it to controlplane/audit/actions.py")
