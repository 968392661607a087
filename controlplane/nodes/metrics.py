"""Keep metric storage bounded: fold raw samples into per-minute rollups, then purge old raw rows.

Rollup cursors on the sample id (arrival order), so samples that arrive hours late from a node that
was offline are still folded into the right minute. Raw samples are deleted only once rolled up and
older than the raw retention window; rollups are deleted after their own, much longer, window.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from controlplane.nodes.models import MetricRollup, MetricSample, Node, RollupCursor
from controlplane.registry.resolver import hardware_class

BATCH = 50_000


@transaction.atomic
def rollup(batch: int = BATCH) -> int:
    """Fold up to `batch` not-yet-rolled-up samples into rollups. Returns how many were folded."""
    cursor, _ = RollupCursor.objects.select_for_update().get_or_create(pk=1)
    rows = list(
        MetricSample.objects.filter(id__gt=cursor.last_sample_id)
        .order_by("id")
        .values_list("id", "node_id", "name", "ts", "value")[:batch]
    )
    if not rows:
        return 0
    agg: dict[tuple, list[float]] = defaultdict(lambda: [0, 0.0, float("inf"), float("-inf")])
    for _id, node_id, name, ts, value in rows:
        a = agg[(node_id, name, ts.replace(second=0, microsecond=0))]
        a[0] += 1
        a[1] += value
        a[2] = min(a[2], value)
        a[3] = max(a[3], value)
    minutes = {k[2] for k in agg}
    existing = {
        (r.node_id, r.name, r.minute): r
        for r in MetricRollup.objects.filter(minute__in=minutes, node_id__in={k[0] for k in agg})
    }
    new, changed = [], []
    for key, (count, total, lo, hi) in agg.items():
        r = existing.get(key)
        if r is None:
            new.append(
                MetricRollup(
                    node_id=key[0],
                    name=key[1],
                    minute=key[2],
                    count=count,
                    total=total,
                    min=lo,
                    max=hi,
                )
            )
        else:
            r.count += count
            r.total += total
            r.min = min(r.min, lo)
            r.max = max(r.max, hi)
            changed.append(r)
    MetricRollup.objects.bulk_create(new, batch_size=1000)
    MetricRollup.objects.bulk_update(changed, ["count", "total", "min", "max"], batch_size=1000)
    cursor.last_sample_id = rows[-1][0]
    cursor.save(update_fields=["last_sample_id"])
    return len(rows)


def purge(now=None) -> tuple[int, int]:
    """Delete rolled-up raw samples past the raw window, and rollups past theirs."""
    now = now or timezone.now()
    cfg = settings.EDGEFLEET
    cursor = RollupCursor.objects.filter(pk=1).first()
    last = cursor.last_sample_id if cursor else 0
    raw_cut = now - timedelta(hours=cfg["METRICS_RAW_RETENTION_H"])
    raw, _ = MetricSample.objects.filter(id__lte=last, ts__lt=raw_cut).delete()
    roll_cut = now - timedelta(days=cfg["METRICS_ROLLUP_RETENTION_DAYS"])
    rolled, _ = MetricRollup.objects.filter(minute__lt=roll_cut).delete()
    return raw, rolled


def maintain() -> dict[str, int]:
    folded = 0
    while True:
        n = rollup()
        folded += n
        if n < BATCH:
            break
    raw, rolled = purge()
    return {"samples_rolled_up": folded, "raw_purged": raw, "rollups_purged": rolled}


SPEED_WINDOW = timedelta(hours=24)


def measured_speeds(fleet_id: int, now=None) -> dict[str, dict[str, float]]:
    """Tokens/s the fleet's nodes measured over the last SPEED_WINDOW, by hardware class and
    model (the first 12 characters of its sha256, as nodes name it: `model.<sha12>.tokens_per_s`):
    the median over the class's nodes of each node's mean (rollups, and the raw samples not
    rolled up yet). What "auto"'s `min_tokens_per_s` floor reads. A variant "auto" stopped
    choosing keeps its measurement for the window, then is tried (and measured) again."""
    since = (now or timezone.now()) - SPEED_WINDOW
    classes = {
        pk: hardware_class(hw or {})
        for pk, hw in Node.objects.filter(fleet_id=fleet_id).values_list("pk", "hardware")
    }
    named = {"name__startswith": "model.", "name__endswith": ".tokens_per_s"}
    sums: dict = defaultdict(lambda: [0.0, 0])
    rolled = (
        MetricRollup.objects.filter(node_id__in=classes, minute__gte=since, **named)
        .values("node_id", "name")
        .annotate(total=Sum("total"), count=Sum("count"))
    )
    for row in rolled:
        sums[(row["node_id"], row["name"])][0] += row["total"]
        sums[(row["node_id"], row["name"])][1] += row["count"]
    cursor = RollupCursor.objects.filter(pk=1).values_list("last_sample_id", flat=True).first()
    raw = MetricSample.objects.filter(
        node_id__in=classes, ts__gte=since, id__gt=cursor or 0, **named
    ).values_list("node_id", "name", "value")
    for node_id, name, value in raw:
        sums[(node_id, name)][0] += value
        sums[(node_id, name)][1] += 1
    per_class: dict = defaultdict(lambda: defaultdict(list))
    for (node_id, name), (total, count) in sums.items():
        klass, sha12 = classes[node_id], name.split(".")[1]
        if klass and count:
            per_class[klass][sha12].append(total / count)
    return {
        klass: {sha: statistics.median(values) for sha, values in shas.items()}
        for klass, shas in per_class.items()
    }
