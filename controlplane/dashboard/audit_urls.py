from django.urls import path

from controlplane.dashboard import audit as views

app_name = "audit"
urlpatterns = [
    path("", views.browser, name="browser"),
    path("erasure/", views.erase, name="erase"),
    path("records-of-processing/", views.records_of_processing, name="processing"),
]
