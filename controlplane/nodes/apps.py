from django.apps import AppConfig


class EdgenodesConfig(AppConfig):
    name = "controlplane.nodes"
    label = "edgenodes"  # the tables and migrations keep the name they were created with
    verbose_name = "Fleets and nodes"

    def ready(self) -> None:
        from controlplane.compliance import privacy
        from controlplane.nodes.desired_state import refresh_for_model, refresh_for_router
        from controlplane.nodes.services import erase_subject_events
        from controlplane.registry.services import model_registered, router_registered

        if erase_subject_events not in privacy.SUBJECT_DATA:
            privacy.SUBJECT_DATA.append(erase_subject_events)
        model_registered.connect(refresh_for_model, dispatch_uid="desired-state-model")
        router_registered.connect(refresh_for_router, dispatch_uid="desired-state-router")
