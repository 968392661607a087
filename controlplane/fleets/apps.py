from django.apps import AppConfig


class FleetsConfig(AppConfig):
    name = "controlplane.fleets"
    label = "fleets"
    verbose_name = "Fleets"
