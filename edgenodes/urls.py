from django.urls import path

from . import views

app_name = "edgenodes"
urlpatterns = [path("", views.dashboard, name="dashboard")]
