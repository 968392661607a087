from django.apps import AppConfig


class EdgenodesConfig(AppConfig):
    name = "edgenodes"
    verbose_name = "Edge nodes"
