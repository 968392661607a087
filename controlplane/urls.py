from django.contrib import admin
from django.http import HttpResponse
from django.urls import include, path

from controlplane.api import admin_api, node_api


def healthz(request):
    """Liveness: the full middleware stack and nothing else (also the benchmarks' baseline)."""
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [
    path("healthz", healthz),
    path("api/node/v1/", node_api.urls),
    path("api/v1/", admin_api.urls),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("edgenodes.urls")),
]
