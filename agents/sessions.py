"""Conversations that remember: when a client names a session (`session` in the request body, or
the `x-edgefleet-session` header), the node keeps the conversation's messages and puts them before
the next request's, so the client sends only what is new.

Kept in `sessions.db` in the state directory, never sent anywhere (not in events, metrics or
reports). Bounded: at most MAX_MESSAGES messages and MAX_CHARS characters per session, the oldest
turns dropped first when a session is full (trimming, not summarising: a small model's summary
loses the facts a follow-up needs, and costs a generation). Gone after the fleet's retention
(`session_retention_days` in its compliance policy; 30 days where the fleet sets none) counted
from the session's last message, and at once when the control plane erases the data subject it
was for (`erased_subjects`: sha256 of the subject's `user` value).
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from wire.compliance import subject_digest

MAX_MESSAGES = 40
MAX_CHARS = 16_000
DEFAULT_RETENTION_DAYS = 30
SESSION_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


class BadSession(ValueError):
    """A session id the node does not accept (the message says which ids it does)."""


def _storable(text: str) -> str:
    return text.encode("utf-8", "replace").decode("utf-8")


def check_id(session: Any) -> str:
    if not isinstance(session, str) or not SESSION_ID.match(session):
        raise BadSession(
            "session must be 1 to 128 letters, digits or the characters _ . : - "
            "(a name the client keeps for the conversation)"
        )
    return session


class Sessions:
    def __init__(self, path: Path):
        self.lock = threading.Lock()
        self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS message (session TEXT NOT NULL, seq INTEGER NOT NULL, "
            "role TEXT NOT NULL, content TEXT NOT NULL, subject TEXT NOT NULL, at REAL NOT NULL, "
            "PRIMARY KEY (session, seq))"
        )
        self.db.execute("CREATE INDEX IF NOT EXISTS message_subject ON message (subject)")

    def history(self, session: str) -> list[dict[str, str]]:
        with self.lock:
            rows = self.db.execute(
                "SELECT role, content FROM message WHERE session = ? ORDER BY seq", (session,)
            ).fetchall()
        return [{"role": role, "content": content} for role, content in rows]

    def append(
        self, session: str, messages: list[dict[str, str]], subject: str = "", now: float = 0.0
    ) -> bool:
        """Add a turn (the client's new messages and the answer), then trim the session to its
        bounds, oldest first. True when this turn started the session."""
        now = now or time.time()
        # A lone surrogate (a model's broken \\ud83d) cannot be stored as UTF-8: replaced.
        keep = [
            {"role": m["role"], "content": _storable(str(m["content"]))}
            for m in messages
            if m.get("role") in ("user", "assistant")
        ]
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                (last,) = self.db.execute(
                    "SELECT COALESCE(MAX(seq), 0) FROM message WHERE session = ?", (session,)
                ).fetchone()
                self.db.executemany(
                    "INSERT INTO message VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (
                            session,
                            last + i,
                            m["role"],
                            str(m["content"]),
                            subject_digest(subject),
                            now,
                        )
                        for i, m in enumerate(keep, start=1)
                    ],
                )
                self._trim(session)
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        return last == 0

    def _trim(self, session: str) -> int:
        rows = self.db.execute(
            "SELECT seq, role, LENGTH(content) FROM message WHERE session = ? ORDER BY seq DESC",
            (session,),
        ).fetchall()
        count, chars, cut = 0, 0, None
        for seq, _, length in rows:
            if count + 1 > MAX_MESSAGES or chars + length > MAX_CHARS:
                cut = seq
                break
            count, chars = count + 1, chars + length
        if cut is None:
            return 0
        # Drop whole turns: what remains starts with a user message.
        first_user = self.db.execute(
            "SELECT MIN(seq) FROM message WHERE session = ? AND seq > ? AND role = 'user'",
            (session, cut),
        ).fetchone()[0]
        bound = first_user if first_user is not None else cut + 1
        return self.db.execute(
            "DELETE FROM message WHERE session = ? AND seq < ?", (session, bound)
        ).rowcount

    def purge(self, retention_days: int | None, erased: list[str], now: float = 0.0) -> int:
        """Delete sessions idle longer than the retention and every message of an erased data
        subject (by the sha256 of their `user` value); returns how many messages went."""
        now = now or time.time()
        cutoff = now - (retention_days or DEFAULT_RETENTION_DAYS) * 86_400
        with self.lock:
            deleted = self.db.execute(
                "DELETE FROM message WHERE session IN (SELECT session FROM message "
                "GROUP BY session HAVING MAX(at) < ?)",
                (cutoff,),
            ).rowcount
            for digest in erased:  # the whole conversations they had
                deleted += self.db.execute(
                    "DELETE FROM message WHERE session IN "
                    "(SELECT session FROM message WHERE subject = ?)",
                    (digest,),
                ).rowcount
        return deleted

    def close(self) -> None:
        with self.lock:
            self.db.close()
