from django.urls import path

from controlplane.dashboard.consumers import FleetEventsConsumer

websocket_urlpatterns = [path("ws/events/", FleetEventsConsumer.as_asgi())]
