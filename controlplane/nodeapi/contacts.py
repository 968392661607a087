"""Last-contact timestamps, buffered per worker and written in bulk.

Every poll is a contact, and a fleet polls all the time: writing `last_seen_at` on each poll would
make the hottest, otherwise read-only request a write with a WAL flush. Instead each worker process
keeps the latest contact per node in memory, and a background thread of that worker writes them all
with one bulk UPDATE every CONTACT_FLUSH_S seconds, off the request path (written inline by a
request, the flush stalled that request and its worker: poll p99 went from ~3 ms to ~100 ms). Status
is still derived from last contact; it is at most CONTACT_FLUSH_S late (a few seconds, against poll
intervals of tens of seconds), and a crashed worker loses at most that much contact history, never
data. CONTACT_FLUSH_S = 0 writes every contact at once, in the request.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from controlplane.nodes.models import Node

log = logging.getLogger(__name__)

_lock = threading.Lock()
_pending: dict[object, tuple[datetime, str | None]] = {}


def record(node_id, ip: str | None) -> None:
    with _lock:
        _pending[node_id] = (timezone.now(), ip)
    if settings.EDGEFLEET["CONTACT_FLUSH_S"] <= 0:
        flush()
    else:
        _ensure_flusher()


_flusher_pid = 0


def _ensure_flusher() -> None:
    """One flusher thread per worker process (started lazily, so also after a fork)."""
    global _flusher_pid
    if _flusher_pid == os.getpid():
        return
    with _lock:
        if _flusher_pid == os.getpid():
            return
        _flusher_pid = os.getpid()
    threading.Thread(target=_flush_forever, name="contact-flusher", daemon=True).start()


def _flush_forever() -> None:
    while True:
        time.sleep(settings.EDGEFLEET["CONTACT_FLUSH_S"])
        try:
            flush()
        except Exception:  # a failed flush loses a few seconds of contact times, nothing else
            log.warning("could not write last-contact times", exc_info=True)
        finally:
            connection.close()  # back to the pool between flushes


def flush() -> int:
    global _pending
    with _lock:
        batch, _pending = _pending, {}
    if not batch:
        return 0
    adapt = connection.ops.adapt_datetimefield_value
    rows = sorted((str(pk), adapt(ts), ip) for pk, (ts, ip) in batch.items())
    table = Node._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Rows another transaction holds (a fleet-wide change writing new revisions) are
            # skipped and kept for the next flush: waiting on them, in whatever order each side
            # locks, is how two such updates deadlock.
            written: set[str] = set()
            for i in range(0, len(rows), 1000):
                chunk = rows[i : i + 1000]
                values = ", ".join(["(%s::uuid, %s::timestamptz, %s::inet)"] * len(chunk))
                cursor.execute(
                    f"UPDATE {table} AS n SET last_seen_at = v.ts, last_seen_ip = v.ip "
                    f"FROM (VALUES {values}) AS v(id, ts, ip) WHERE n.id = v.id AND n.id IN "
                    f"(SELECT id FROM {table} WHERE id = ANY(%s::uuid[]) FOR UPDATE SKIP LOCKED) "
                    "RETURNING n.id",
                    [*(x for row in chunk for x in row), [row[0] for row in chunk]],
                )
                written.update(str(r[0]) for r in cursor.fetchall())
            with _lock:
                for pk, seen in batch.items():
                    if str(pk) not in written:
                        _pending.setdefault(pk, seen)  # unless a newer contact came meanwhile
            return len(written)
        else:
            cursor.executemany(
                f"UPDATE {table} SET last_seen_at = %s, last_seen_ip = %s WHERE id = %s",
                [(ts, ip, pk.replace("-", "")) for pk, ts, ip in rows],
            )
    return len(rows)
