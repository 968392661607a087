import os

import django
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response

from controlplane.env import exit_on_bad_configuration

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "edgefleet.settings")
exit_on_bad_configuration(lambda: django.setup(set_prefix=False))
django_asgi_app = ASGIHandler()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from controlplane.dashboard.routing import websocket_urlpatterns  # noqa: E402
from controlplane.middleware import (  # noqa: E402
    RELAY_PATH,
    NodeApiGuardMiddleware,
    RequestIdMiddleware,
)
from controlplane.nodeapi import poll, watch  # noqa: E402


class NodeApiHandler(ASGIHandler):
    """Django for the cloud relay's and the desired-state paths alone, behind only the node API's
    own two middlewares.

    Django runs each of its MiddlewareMixin middlewares (sessions, CSRF, auth, messages...) on a
    thread under ASGI, twice a request: about 2.5 ms a request on this machine, paid by every
    relayed cloud call although the relay, a node-credential API, uses none of them
    (bench/relay.py). Its two middlewares are async-native; the view and URLs are the same."""

    def load_middleware(self, is_async=False):
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        # Django's own async core handler (BaseHandler), which django-stubs does not declare.
        handler = convert_exception_to_response(self._get_response_async)  # type: ignore[attr-defined]
        for middleware in (NodeApiGuardMiddleware, RequestIdMiddleware):
            handler = convert_exception_to_response(middleware(handler))
        self._middleware_chain = handler


node_asgi_app = NodeApiHandler()


async def http(scope, receive, send):
    if (
        scope["path"] == poll.PATH
    ):  # polls and watches (controlplane/nodeapi/watch.py), Django behind them
        await watch.serve(scope, receive, send, node_asgi_app)
    elif scope["path"] == RELAY_PATH:
        await node_asgi_app(scope, receive, send)
    else:
        await django_asgi_app(scope, receive, send)


application = ProtocolTypeRouter(
    {
        "http": http,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
