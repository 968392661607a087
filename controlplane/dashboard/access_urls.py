from django.urls import path

from controlplane.dashboard import access as views

app_name = "accounts"
urlpatterns = [path("", views.access_page, name="access")]
