"""gunicorn settings for the control plane:

    gunicorn -c python:edgefleet.gunicorn_conf edgefleet.wsgi:application -w <2 x cores>

Each worker hands its listening sockets to the node API's overload guard
(controlplane/middleware.py), which then sheds node-API requests with 429 + Retry-After when more
connections wait in the listen queue than EDGEFLEET_MAX_QUEUED: a sync worker holds one request at
a time, so the queue is where a polling stampede shows.
"""

from controlplane import middleware  # no Django setup needed: settings are read per request

backlog = 2048


def post_worker_init(worker) -> None:
    middleware.LISTENERS[:] = [listener.sock for listener in worker.sockets]
