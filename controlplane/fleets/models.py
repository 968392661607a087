"""The fleet: the unit of policy and permission.

It lives apart from the domain apps so that RBAC (controlplane/accounts) and the audit trail
(controlplane/audit) can name it without importing `controlplane.nodes`, which depends on both.
Its table is still `edgenodes_fleet`, where it was created (the move was state-only, migration
fleets 0001).
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from wire.schemas import (
    CloudBudgets,
    ComplianceMode,
    CompliancePolicy,
    ComplianceSettings,
    PhiAction,
    choices,
)


class Fleet(models.Model):
    slug = models.SlugField(max_length=63, unique=True)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    # Seconds between polls handed to this fleet's nodes; null means the global default. Raising it
    # is how an admin slows a whole fleet down.
    poll_interval_s = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Compliance (see docs/compliance.md): the fields of wire.schemas.ComplianceSettings. Changed
    # only through do_set_compliance, which audits the change and pushes it to the fleet's nodes in
    # their desired state.
    compliance_mode = models.CharField(
        max_length=8, choices=choices(ComplianceMode), default=ComplianceMode.NONE
    )
    phi_action = models.CharField(
        max_length=8, choices=choices(PhiAction), default=PhiAction.REDACT
    )
    # Content (prompts, answers, tool arguments) stored centrally: null = the mode's default (yes
    # with no mode, no under GDPR unless opted in); never under HIPAA.
    store_content = models.BooleanField(null=True, blank=True)
    allowed_regions = models.JSONField(default=list, blank=True)
    cloud_endpoints = models.JSONField(default=list, blank=True)
    events_retention_days = models.PositiveIntegerField(null=True, blank=True)
    # Edge data subjects erased (GDPR), for the nodes: [{"subject": sha256 of the `user` value,
    # "at": ISO time}], kept ERASURE_NOTICE_DAYS so that every node hears of it.
    erased_subjects = models.JSONField(default=list, blank=True)
    # Alert thresholds for the fleet overview (over the last minutes of metrics).
    alert_p95_latency_ms = models.FloatField(default=2000)
    alert_error_rate = models.FloatField(default=0.05)
    alert_memory_fraction = models.FloatField(default=0.85)
    # Cloud spending limits: the fields of wire.schemas.CloudBudgets (do_set_cloud_budgets).
    cloud_budgets = models.JSONField(default=dict, blank=True)

    fleet_field = (
        "id"  # how access.restrict reaches the fleet (see controlplane/accounts/access.py)
    )

    class Meta:
        db_table = "edgenodes_fleet"

    def __str__(self) -> str:
        return self.slug

    def compliance_settings(self) -> ComplianceSettings:
        """The one projection of the compliance fields (API, audit snapshots, policy)."""
        return ComplianceSettings.model_validate(
            {
                "mode": self.compliance_mode,
                "phi_action": self.phi_action,
                "store_content": self.store_content,
                "allowed_regions": self.allowed_regions,
                "cloud_endpoints": self.cloud_endpoints,
                "events_retention_days": self.events_retention_days,
            }
        )

    def budgets(self) -> CloudBudgets:
        return CloudBudgets.model_validate(self.cloud_budgets or {})

    def compliance_policy(self, for_node: bool = False) -> CompliancePolicy:
        """The effective policy: enforced here, and (for_node) pushed to nodes."""
        return self.compliance_settings().policy(for_node=for_node)

    @property
    def events_retention(self) -> timedelta:
        return timedelta(
            days=self.events_retention_days or settings.EDGEFLEET["RETENTION_EVENTS_DAYS"]
        )

    @property
    def effective_poll_interval_s(self) -> int:
        return int(self.poll_interval_s or settings.EDGEFLEET["POLL_INTERVAL_S"])
