"""controlplane.relay.api"""

from __future__ import annotations

from typing import Annotated, Literal

from django.http import HttpResponse
from ninja import Field, Query, Router, Schema

from controlplane.accounts.access import ADMINISTER, VIEW, VIEW_AUDIT, access_fleet
from controlplane.errors import ERRORS
from controlplane.nodes.models import (
    Fleet,
)
from controlplane.pagination import PageQuery, headers, offset_page
from controlplane.relay import queries as relay_queries
from controlplane.relay import services as escalation
from controlplane.schemas import In, IsoDate
from wire.schemas import (
    CloudBudgets,
)

router = Router(tags=["cloud relay"])


class RedactionPreviewIn(In):
    text: Annotated[str, Field(min_length=1, max_length=20_000)]


class PreviewFinding(Schema):
    kind: str
    value: str


class RedactionPreviewOut(Schema):
    verdict: Literal["as_is", "redacted", "refused"] = Field(
        description="as_is: the fleet is not in HIPAA mode, its endpoints get the text as it is "
        "(`sent` shows what HIPAA mode would send); redacted: what an endpoint without a BAA "
        "receives; refused: nothing would be sent (`reason`)"
    )
    sent: str
    counts: dict[str, int]
    findings: list[PreviewFinding]
    reason: str = ""


@router.post(
    "/fleets/{slug}/compliance/redaction-preview",
    response={200: RedactionPreviewOut, **ERRORS},
)
def redaction_preview(request, response: HttpResponse, slug: str, payload: RedactionPreviewIn):
    """What a cloud endpoint without a BAA would receive of `text` from this fleet's nodes: the
    node's own detector and placeholders, run here. Nothing is stored or logged."""
    fleet = access_fleet(request.auth, slug, VIEW_AUDIT)
    preview = escalation.redaction_preview(fleet, text=payload.text)
    response["Cache-Control"] = "no-store"
    return RedactionPreviewOut(
        verdict=preview.verdict,  # type: ignore[arg-type]
        sent=preview.sent,
        counts=preview.counts,
        findings=[PreviewFinding(kind=k, value=v) for k, v in preview.findings],
        reason=preview.reason,
    )


class BudgetsOut(CloudBudgets):
    used: dict[str, float] = Field(
        description="the fleet's usage so far today and this month (fleet_day_usd, ...)"
    )


class UsageQuery(Schema):
    by: Literal["node", "agent", "endpoint", "day"] = "node"
    since: IsoDate | None = Field(None, description="first UTC day (default: 30 days ago)")
    until: IsoDate | None = Field(None, description="last UTC day (default: today)")


class UsageOut(Schema):
    key: str = Field(description="the node's name, the agent, the endpoint or the day")
    requests: int
    failures: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


def _budgets_out(fleet: Fleet) -> BudgetsOut:
    used = {
        k: v for k, v in relay_queries.cloud_usage_so_far(fleet).items() if k.startswith("fleet_")
    }
    return BudgetsOut(**fleet.budgets().model_dump(), used=used)


@router.get("/fleets/{slug}/budgets", response={200: BudgetsOut, **ERRORS})
def get_budgets(request, slug: str):
    """The fleet's cloud budgets (null: no limit) and what it used so far."""
    return _budgets_out(access_fleet(request.auth, slug, VIEW))


@router.put("/fleets/{slug}/budgets", response={200: BudgetsOut, **ERRORS})
def set_budgets(request, slug: str, payload: CloudBudgets):
    """Replace the fleet's cloud budgets (a limit left out is no limit). Audited."""
    fleet = access_fleet(request.auth, slug, ADMINISTER)
    escalation.do_set_cloud_budgets(
        fleet, budgets=payload.model_dump(), actor=request.auth, request=request
    )
    return _budgets_out(fleet)


@router.get("/fleets/{slug}/cloud-usage", response={200: list[UsageOut], **ERRORS})
def cloud_usage(
    request, response: HttpResponse, slug: str, q: Query[UsageQuery], page: Query[PageQuery]
):
    """Relayed cloud calls summed per node, agent, endpoint or day, most expensive first."""
    fleet = access_fleet(request.auth, slug, VIEW)
    since, until = relay_queries.usage_window(q.since, q.until)
    rows = headers(
        request,
        response,
        offset_page(
            relay_queries.cloud_usage(fleet, by=q.by, since=since, until=until),
            limit=page.limit,
            offset=page.offset,
        ),
    )
    key = relay_queries.USAGE_GROUPS[q.by]
    return [UsageOut(key=str(r[key]), **{k: v for k, v in r.items() if k != key}) for r in rows]


class LocalUsageQuery(Schema):
    by: Literal["node", "agent"] = "node"
    since: IsoDate | None = Field(None, description="first UTC day (default: 30 days ago)")
    until: IsoDate | None = Field(None, description="last UTC day (default: today)")


class LocalUsageOut(Schema):
    key: str = Field(description="the node's name or the agent")
    tokens: int = Field(description="completion tokens generated on the nodes")
    requests: int = Field(description="answers that reported them")


@router.get("/fleets/{slug}/local-usage", response={200: list[LocalUsageOut], **ERRORS})
def local_usage(
    request, response: HttpResponse, slug: str, q: Query[LocalUsageQuery], page: Query[PageQuery]
):
    """Tokens generated locally, per node or per agent, most first (beside cloud-usage)."""
    fleet = access_fleet(request.auth, slug, VIEW)
    since, until = relay_queries.usage_window(q.since, q.until)
    rows = relay_queries.local_tokens(fleet, by=q.by, since=since, until=until)
    return headers(request, response, offset_page(rows, limit=page.limit, offset=page.offset))
