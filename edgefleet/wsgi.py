"""The WSGI application: Django, with the node poll's 304 answered in front of it.

A desired-state poll whose ETag is current (most requests a fleet sends) is answered by
`controlplane.nodeapi.poll.not_modified` straight from the WSGI environ: one prepared SELECT, no
middleware
chain, URL resolution or ninja (docs/node-api.md, "The poll's hot path"). Every other request, and
any poll it declines (a refusal, a changed document, a rate limit, a full listen queue, a database
error), goes to Django unchanged.
"""

import os

from django.core.wsgi import get_wsgi_application

from controlplane.env import exit_on_bad_configuration

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "edgefleet.settings")
django_application = exit_on_bad_configuration(get_wsgi_application)

from django.db import DatabaseError, close_old_connections  # noqa: E402

from controlplane import middleware, tokens  # noqa: E402
from controlplane.nodeapi import poll  # noqa: E402


def application(environ, start_response):
    if (
        environ.get("PATH_INFO") == poll.PATH
        and environ.get("REQUEST_METHOD") == "GET"
        and not middleware.queue_full()
    ):
        try:
            target = poll.not_modified(
                environ.get("HTTP_AUTHORIZATION", ""),
                environ.get("HTTP_IF_NONE_MATCH", ""),
                tokens.client_ip(environ),  # behind a trusted proxy: its client
            )
        except DatabaseError:
            target = None  # Django answers, with 503 and Retry-After if the database is down
        finally:
            close_old_connections()  # the connection back to its pool, as after any request
        if target is not None:
            rid = middleware.request_id(environ.get("HTTP_X_REQUEST_ID", ""))
            start_response("304 Not Modified", poll.not_modified_headers(target, rid))
            return []
    return django_application(environ, start_response)
