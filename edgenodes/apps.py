from django.apps import AppConfig


class EdgenodesConfig(AppConfig):
    name = "edgenodes"
    verbose_name = "Edge nodes"

    def ready(self) -> None:
        from controlplane.audit import privacy

        from .services import erase_subject_events

        if erase_subject_events not in privacy.SUBJECT_DATA:
            privacy.SUBJECT_DATA.append(erase_subject_events)
