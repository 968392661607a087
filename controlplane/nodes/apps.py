from django.apps import AppConfig


class EdgenodesConfig(AppConfig):
    name = "controlplane.nodes"
    label = "edgenodes"  # the tables and migrations keep the name they were created with
    verbose_name = "Fleets and nodes"

    def ready(self) -> None:
        from controlplane.compliance import privacy
        from controlplane.nodes.services import erase_subject_events

        if erase_subject_events not in privacy.SUBJECT_DATA:
            privacy.SUBJECT_DATA.append(erase_subject_events)
