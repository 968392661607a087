"""controlplane.relay.queries"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django.db import connection
from django.db.models import F, QuerySet, Sum, Value
from django.db.models.expressions import Combinable
from django.db.models.functions import Replace
from django.utils import timezone

from controlplane.nodes.models import (
    CloudUsage,
    Fleet,
    MetricRollup,
    Node,
)

USAGE_GROUPS = {"node": "node__name", "agent": "agent", "endpoint": "endpoint", "day": "day"}


_USAGE_SO_FAR_SQL = """
SELECT SUM(cost_usd), SUM(prompt_tokens + completion_tokens),
       SUM(CASE WHEN day = %(day)s THEN cost_usd END),
       SUM(CASE WHEN day = %(day)s THEN prompt_tokens + completion_tokens END),
       SUM(CASE WHEN node_id = %(node)s THEN cost_usd END),
       SUM(CASE WHEN node_id = %(node)s THEN prompt_tokens + completion_tokens END),
       SUM(CASE WHEN day = %(day)s AND node_id = %(node)s THEN cost_usd END),
       SUM(CASE WHEN day = %(day)s AND node_id = %(node)s
                THEN prompt_tokens + completion_tokens END)
FROM {table} WHERE fleet_id = %(fleet)s AND day >= %(month)s
"""


_USAGE_SO_FAR_KEYS = [
    f"{scope}_{period}_{unit}"
    for scope in ("fleet", "node")
    for period in ("month", "day")
    for unit in ("usd", "tokens")
]


def usage_window(since: date | None = None, until: date | None = None) -> tuple[date, date]:
    """The UTC days [since, until] of the usage reads: the last 30 days unless given."""
    until = until or timezone.now().date()
    if since is None:  # (30 days before 0001-01-30 do not exist: the window starts at 0001-01-01)
        since = until - timedelta(days=30) if until > date.min + timedelta(days=30) else date.min
    return since, until


def cloud_usage(fleet: Fleet, *, by: str, since, until) -> QuerySet:
    """Relayed cloud calls of `fleet` on UTC days [since, until], summed per node, agent, endpoint
    or day (one grouped query), most expensive first."""
    key = USAGE_GROUPS[by]
    return (
        CloudUsage.objects.filter(fleet=fleet, day__gte=since, day__lte=until)
        .values(key)
        .annotate(
            requests=Sum("requests"),
            failures=Sum("failures"),
            prompt_tokens=Sum("prompt_tokens"),
            completion_tokens=Sum("completion_tokens"),
            cost_usd=Sum("cost_usd"),
        )
        .order_by("-cost_usd", key)
    )


def local_tokens(fleet: Fleet, *, since, until, by: str = "node") -> QuerySet:
    """Tokens the fleet's nodes generated locally on UTC days [since, until], per node (from the
    per-minute rollups of `request.completion_tokens`) or per agent (of
    `agent.<agent>.completion_tokens`, agents.runtime.agent_metric), as rows of key, tokens and
    requests, most tokens first."""
    start = datetime.combine(since, datetime.min.time(), tzinfo=timezone.get_current_timezone())
    end = datetime.combine(until, datetime.max.time(), tzinfo=timezone.get_current_timezone())
    rows = MetricRollup.objects.filter(node__fleet=fleet, minute__gte=start, minute__lte=end)
    key: Combinable
    if by == "agent":
        rows = rows.filter(name__startswith="agent.", name__endswith=".completion_tokens")
        key = Replace(Replace("name", Value("agent.")), Value(".completion_tokens"))
    else:
        rows, key = rows.filter(name="request.completion_tokens"), F("node__name")
    return (
        rows.values(key=key)
        .annotate(tokens=Sum("total"), requests=Sum("count"))
        .order_by("-tokens", "key")
    )


def cloud_usage_so_far(
    fleet: Fleet, node: Node | None = None, today: date | None = None
) -> dict[str, float]:
    """This fleet's (and this node's) cloud usage today and this month: one query, in plain SQL
    because the relay asks it before every escalation (the ORM spent 4 ms building it)."""
    today = today or timezone.now().date()
    ops = connection.ops
    params = {
        "fleet": fleet.pk,
        "node": Node._meta.pk.get_db_prep_value(node.pk if node else None, connection),
        "day": ops.adapt_datefield_value(today),
        "month": ops.adapt_datefield_value(today.replace(day=1)),
    }
    with connection.cursor() as cur:
        cur.execute(_USAGE_SO_FAR_SQL.format(table=CloudUsage._meta.db_table), params)
        row = cur.fetchone()
    return {k: float(v or 0) for k, v in zip(_USAGE_SO_FAR_KEYS, row, strict=True)}
