from django.contrib import admin
from django.http import HttpResponse
from django.urls import include, path

from controlplane.accounts.auth import LoginView
from controlplane.nodes.prometheus import metrics
from controlplane.relay.views import chat_completions
from edgefleet.api import admin_api, node_api


def healthz(request):
    """Liveness: the full middleware stack and nothing else (also the benchmarks' baseline)."""
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [
    path("healthz", healthz),
    path("metrics", metrics),
    # The cloud relay is a plain async view (streamed, OpenAI's shape), before the ninja routes.
    path("api/node/v1/chat/completions", chat_completions, name="relay"),
    path("api/node/v1/", node_api.urls),
    path("api/v1/", admin_api.urls),
    path("admin/", admin.site.urls),
    path(
        "accounts/login/",
        LoginView.as_view(),  # the login throttle's form, known devices, the guessing notice
        name="login",
    ),
    path("accounts/", include("django.contrib.auth.urls")),
    path("audit/", include("controlplane.dashboard.audit_urls")),
    path("access/", include("controlplane.dashboard.access_urls")),
    path("", include("controlplane.dashboard.urls")),
]
