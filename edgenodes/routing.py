from django.urls import path

from .consumers import FleetEventsConsumer

websocket_urlpatterns = [path("ws/events/", FleetEventsConsumer.as_asgi())]
