from django.contrib import admin
from django.urls import include, path

from controlplane.api import admin_api, node_api

urlpatterns = [
    path("api/node/v1/", node_api.urls),
    path("api/v1/", admin_api.urls),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("edgenodes.urls")),
]
