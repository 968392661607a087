"""`manage.py runserver` (what `make run` serves with): the ASGI application under uvicorn, the
server production runs it with (README, "Deployment"), after two checks that turn an operator's
mistake into one line and a non-zero exit instead of a server that never starts. Daphne's command
is the base (its options, static files, autoreload) but not its server: Twisted parses a multipart
body itself and answers a malformed one with an empty 400 before the application sees it, where
the API answers JSON with a code (docs/architecture.md, "Errors").

- The port: daphne logs "Address already in use" and exits 0 (so `make run` carried on as if it
  served); here the address is bound once first, and a taken one stops with exit status 2.
- The database: an unreachable one is reported before the autoreloader starts (which would
  otherwise print a traceback and wait for a file to change); manage.py prints it in one line.

The `controlplane` app comes before `daphne` in INSTALLED_APPS so that this command wins.
"""

from __future__ import annotations

import errno
import socket

import uvicorn
from daphne.management.commands.runserver import Command as DaphneRunserver
from django.conf import settings
from django.core.management.base import CommandError
from django.db import connections

REASONS = {
    errno.EADDRINUSE: "the port is already in use (another server is running there?)",
    errno.EACCES: "permission denied (ports below 1024 need privileges)",
    errno.EADDRNOTAVAIL: "that address is not one of this machine's",
}


def port_problem(host: str, port: int) -> str | None:
    """Why the server could not listen on host:port, or None when it can (bound and released)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        return f"cannot resolve {host!r} ({exc})"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        # As the server will: a port left in TIME_WAIT by the last run is free, a listener is not.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            return REASONS.get(exc.errno or 0, exc.strerror or str(exc))
    return None


class Command(DaphneRunserver):
    def run(self, **options):
        display = f"[{self.addr}]" if self._raw_ipv6 else self.addr
        problem = port_problem(self.addr, int(self.port))
        if problem:
            raise CommandError(f"cannot serve on {display}:{self.port}: {problem}", returncode=2)
        connections["default"].ensure_connection()  # unreachable: one line from manage.py
        connections["default"].close()  # back to the pool: this thread serves no request
        super().run(**options)

    def inner_run(self, *args, **options):
        self.check(display_num_errors=True)
        self.check_migrations()
        display = f"[{self.addr}]" if self._raw_ipv6 else self.addr
        self.stdout.write(
            f"Django {self.get_version()}, settings {settings.SETTINGS_MODULE!r}: serving ASGI "
            f"with uvicorn on http://{display}:{self.port}/ (CONTROL-C quits)"
        )
        uvicorn.run(
            self.get_application(options),  # the static files handler in front, where due
            host=self.addr,
            port=int(self.port),
            lifespan="off",
            proxy_headers=False,  # the client address is ours to derive (EDGEFLEET_TRUSTED_PROXIES)
            log_level="warning",
            timeout_graceful_shutdown=2,  # held watches end with the server, as in production
        )
