from django.conf import settings
from django.db import models
from django.utils import timezone


class AuditRecord(models.Model):
    """One append-only record of a control-plane change or an edge action, in a hash chain.

    `content` is the canonical JSON of what is hashed (exact bytes: JSON columns do not round-trip
    byte-exactly, PostgreSQL's jsonb normalises numbers and key order); `hash` is
    sha256(prev_hash + content). The other columns are the queryable projection of `content`, and
    `audit verify` checks they agree with it. `source_ip` is personal data and kept out of the hash.
    Written by the service layer in the same transaction as the change it describes.
    """

    seq = models.BigIntegerField(unique=True, null=True)
    ts = models.DateTimeField(default=timezone.now, db_index=True)
    # No database constraints and no cascades: deleting a user or node must never rewrite history.
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False,
        related_name="+",
    )  # fmt: skip
    actor_node = models.ForeignKey(
        "edgenodes.Node",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    fleet = models.ForeignKey(
        "edgenodes.Fleet",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    content = models.TextField(default="")
    prev_hash = models.CharField(max_length=64, default="")
    hash = models.CharField(max_length=64, default="")

    class Meta:
        ordering = ["seq"]

    def __str__(self) -> str:
        return f"#{self.seq} {self.ts:%Y-%m-%d %H:%M:%S} {self.action} {self.object_type}:{self.object_id}"


class AuditHead(models.Model):
    """Singleton: the last sequence number and hash of the chain. Appends lock this row, which
    serializes concurrent writers safely on PostgreSQL (SQLite serializes writes anyway)."""

    seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64, default="")
