"""One pagination scheme for every list of the admin API and every dashboard page.

A read function returns a filtered, ordered queryset; `offset_page` or `cursor_page` cuts one page
out of it. Both give a `Page`: its items, the total where counting is cheap (offset pages), and the
query parameters of the next page (None on the last one). The admin API keeps its bodies plain JSON
lists and sends the rest as headers (`headers`): `X-Total-Count` and `Link: <...>; rel="next"`, as
GitHub's API does. Pages render the same `Page`. Limits per list: docs/architecture.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from ninja import Field, Schema

T = TypeVar("T")

MAX_LIMIT = 1000  # the most items one page of an admin-API list holds (the audit log: 500)


class PageQuery(Schema):
    """Offset pagination: the total is in `X-Total-Count`, the next page in `Link: rel="next"`."""

    limit: int = Field(200, ge=1, le=MAX_LIMIT)
    offset: int = Field(0, ge=0, le=10_000_000)


@dataclass
class Page(Generic[T]):
    items: list[T]
    limit: int
    total: int | None = None  # None where counting would cost more than the page (cursor pages)
    next: dict[str, Any] | None = None  # the query parameters that fetch the next page


def offset_page(queryset: QuerySet, *, limit: int, offset: int = 0) -> Page:
    """`limit` items from `offset` on, with the total (one COUNT query and one page query)."""
    total = queryset.count()
    items = list(queryset[offset : offset + limit])
    more = offset + len(items) < total
    return Page(items, limit, total, {"offset": offset + limit, "limit": limit} if more else None)


def cursor_page(
    queryset: QuerySet,
    *,
    key: str,
    after: Any,
    limit: int,
    param: str,
    newest_first: bool = False,
) -> Page:
    """`limit` items whose `key` is above `after` (the queryset is ordered by `key`), without a
    count: for tables too large to count on every page (the audit log). `newest_first` walks the
    other way: items below `after` (None: from the newest), ordered by `-key`."""
    if newest_first:
        if after is not None:
            queryset = queryset.filter(**{f"{key}__lt": after})
        rows = list(queryset.order_by(f"-{key}")[: limit + 1])
    else:
        rows = list(queryset.filter(**{f"{key}__gt": after})[: limit + 1])
    items = rows[:limit]
    more = len(rows) > limit
    return Page(
        items, limit, None, {param: getattr(items[-1], key), "limit": limit} if more else None
    )


def headers(request: HttpRequest, response: HttpResponse, page: Page) -> list:
    """Set the page's headers on a ninja temporal response; returns the items for the body."""
    if page.total is not None:
        response["X-Total-Count"] = str(page.total)
    if page.next:
        query = request.GET.copy()
        for k, v in page.next.items():
            query[k] = str(v)
        response["Link"] = f'<{request.path}?{query.urlencode()}>; rel="next"'
    return page.items
