#!/usr/bin/env python
"""Django's manage.py, with an operator's mistakes in one line and a non-zero exit, never a
traceback: bad configuration (exit 2, controlplane/env.py) and a database that cannot be reached
or used (exit 2: `edgefleet: cannot reach the database at host:port (reason)`; no password)."""

import logging
import os
import sys

POOL_TIMEOUT = "couldn't get a connection after"


class UntilConnected(logging.Filter):
    """Drops the connection pool's "error connecting" warnings (two lines each, several while it
    retries) until a first connection succeeds: at the start the one line below says why, and
    once connected an outage is still logged as it happens."""

    connected = False

    def filter(self, record: logging.LogRecord) -> bool:
        return self.connected or not record.getMessage().startswith("error connecting")


def _causes(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _first_line(text: str) -> str:
    line = (text.strip().splitlines() or [""])[0].strip()
    # psycopg: 'connection failed: connection to server at "h", port 1 failed: Connection refused'
    return line.rsplit(" failed: ", 1)[-1].strip() if " failed: " in line else line


def _probe(db: dict) -> str:
    """Why a direct connection fails (the pool only says it timed out), in at most 5 seconds."""
    import psycopg

    try:
        psycopg.connect(
            host=db.get("HOST") or None,
            port=db.get("PORT") or None,
            dbname=db.get("NAME") or None,
            user=db.get("USER") or None,
            password=db.get("PASSWORD") or None,
            connect_timeout=5,
        ).close()
    except psycopg.Error as exc:
        return _first_line(str(exc))
    return "no connection within the pool's timeout (DB_POOL_TIMEOUT_S)"


def database_error(exc: BaseException, db: dict) -> str:
    """The one line for a database error that stopped a command."""
    engine = db.get("ENGINE", "")
    if engine.endswith("sqlite3"):
        return f"edgefleet: database error (SQLite at {db.get('NAME')}): {_first_line(str(exc))}"
    where = f"{db.get('HOST') or 'localhost'}:{db.get('PORT') or 5432}"
    chain = list(_causes(exc))
    server_error = next((e for e in chain if getattr(e, "sqlstate", None)), None)
    if server_error is not None and not str(server_error).startswith(POOL_TIMEOUT):
        # The server answered with an error of its own (a failed transaction, a timeout...).
        reason = f"edgefleet: database error at {where}: {_first_line(str(server_error))}"
    elif any(str(e).startswith(POOL_TIMEOUT) for e in chain):
        reason = f"edgefleet: cannot reach the database at {where} ({_probe(db)})"
    else:
        reason = f"edgefleet: cannot reach the database at {where} ({_first_line(str(exc))})"
    password = db.get("PASSWORD")
    return reason.replace(password, "***") if password else reason


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "edgefleet.settings")
    from django.conf import settings
    from django.core.management import execute_from_command_line

    from controlplane.env import exit_on_bad_configuration

    # Bad configuration: one line naming the variable, exit status 2 (never a traceback).
    exit_on_bad_configuration(lambda: settings.INSTALLED_APPS)

    import psycopg
    from django.db import OperationalError
    from django.db.backends.signals import connection_created

    quiet = UntilConnected()
    logging.getLogger("psycopg.pool").addFilter(quiet)

    def connected(**kwargs) -> None:
        quiet.connected = True

    connection_created.connect(connected, weak=False)
    try:
        execute_from_command_line(sys.argv)
    except (OperationalError, psycopg.OperationalError) as exc:
        print(database_error(exc, settings.DATABASES["default"]), file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
