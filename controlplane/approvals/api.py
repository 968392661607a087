"""controlplane.approvals.api"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from django.http import HttpResponse
from ninja import Field, Query, Router, Schema

from controlplane.accounts.access import OPERATE
from controlplane.approvals import queries as approvals_queries
from controlplane.approvals import services as approvals_services
from controlplane.errors import ERRORS
from controlplane.nodes.api import FleetFilter
from controlplane.nodes.models import (
    ToolApproval,
)
from controlplane.pagination import headers, offset_page
from controlplane.schemas import In
from wire.fields import SafeProse

router = Router(tags=["approvals"])


class ApprovalFilter(FleetFilter):
    pending: bool = False


class ApprovalOut(Schema):
    id: int
    fleet: str
    node: UUID
    node_name: str
    agent: str
    tool: str
    arguments: dict[str, Any]
    reason: str
    status: str
    created_at: datetime
    expires_at: datetime
    decided_by: str
    decision_reason: str

    @staticmethod
    def resolve_fleet(obj: ToolApproval) -> str:
        return obj.fleet.slug

    @staticmethod
    def resolve_node(obj: ToolApproval) -> UUID:
        return obj.node_id

    @staticmethod
    def resolve_node_name(obj: ToolApproval) -> str:
        return obj.node.name

    @staticmethod
    def resolve_decided_by(obj: ToolApproval) -> str:
        return obj.decided_by.username if obj.decided_by else ""


@router.get("/approvals", response={200: list[ApprovalOut], **ERRORS})
def list_approvals(request, response: HttpResponse, filters: Query[ApprovalFilter]):
    approvals = approvals_queries.approvals(
        request.auth, fleet=filters.fleet, pending=filters.pending
    )
    return headers(
        request, response, offset_page(approvals, limit=filters.limit, offset=filters.offset)
    )


class DecisionIn(In):
    reason: Annotated[SafeProse, Field(max_length=500)] = ""


@router.post("/approvals/{approval_id}/approve", response={200: ApprovalOut, **ERRORS})
def approve(request, approval_id: int, payload: DecisionIn | None = None):
    approval = approvals_queries.access_approval(request.auth, approval_id, OPERATE)
    reason = payload.reason if payload else ""
    return approvals_services.do_decide_approval(
        approval, approve=True, reason=reason, request=request, actor=request.auth
    )


@router.post("/approvals/{approval_id}/deny", response={200: ApprovalOut, **ERRORS})
def deny(request, approval_id: int, payload: DecisionIn | None = None):
    approval = approvals_queries.access_approval(request.auth, approval_id, OPERATE)
    reason = payload.reason if payload else ""
    return approvals_services.do_decide_approval(
        approval, approve=False, reason=reason, request=request, actor=request.auth
    )
