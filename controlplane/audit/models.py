from django.conf import settings
from django.db import models
from django.utils import timezone


class AuditRecord(models.Model):
    """One append-only record of a control-plane change or an edge action.

    Written by the service layer in the same transaction as the change it describes.
    """

    ts = models.DateTimeField(default=timezone.now, db_index=True)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_node = models.ForeignKey(
        "edgenodes.Node", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    fleet = models.ForeignKey(
        "edgenodes.Fleet", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.ts:%Y-%m-%d %H:%M:%S} {self.action} {self.object_type}:{self.object_id}"
