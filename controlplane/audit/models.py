from django.db import models
from django.utils import timezone


class AuditRecord(models.Model):
    """One append-only record of a control-plane change or an edge action, in a hash chain.

    `content` is the canonical JSON of what is hashed (exact bytes: JSON columns do not round-trip
    byte-exactly, PostgreSQL's jsonb normalises numbers and key order); `hash` is
    sha256(prev_hash + content). The other columns are the queryable projection of `content`, and
    `audit verify` checks they agree with it.

    No personal data is hashed: people appear only as keyed pseudonyms (`actor` "user:<pseudonym>",
    see SubjectKey), so erasing a person never breaks verification. `source_ip` is personal data and
    kept outside the hash; retention clears it. Written by the service layer in the same transaction
    as the change it describes. On PostgreSQL a trigger refuses UPDATE and DELETE except through the
    retention functions (migration 0003).
    """

    seq = models.BigIntegerField(unique=True, null=True)
    ts = models.DateTimeField(default=timezone.now, db_index=True)
    # "user:<pseudonym>", "node:<uuid>" or "system"
    actor = models.CharField(max_length=80, db_index=True, default="system")
    # No database constraint and no cascade: deleting a fleet must never rewrite history.
    fleet = models.ForeignKey(
        "fleets.Fleet",
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

    fleet_field = "fleet_id"  # how access.restrict reaches the fleet

    class Meta:
        ordering = ["seq"]

    def __str__(self) -> str:
        when = f"{self.ts:%Y-%m-%d %H:%M:%S}"
        return f"#{self.seq} {when} {self.action} {self.object_type}:{self.object_id}"


class AuditHead(models.Model):
    """Singleton: the last sequence number and hash of the chain. Appends lock this row, which
    serializes concurrent writers safely on PostgreSQL (SQLite serializes writes anyway).

    `base_seq`/`base_hash` are where the chain starts after retention removed older records (always
    a signed checkpoint); `checkpoint_seq` is the newest checkpoint."""

    seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64, default="")
    checkpoint_seq = models.BigIntegerField(default=0)
    checkpoint_at = models.DateTimeField(null=True, blank=True)
    base_seq = models.BigIntegerField(default=0)
    base_hash = models.CharField(max_length=64, default="")


class AuditCheckpoint(models.Model):
    """A signed statement "record #seq has hash H" (Ed25519, key outside the database).

    Someone who rewrites records and recomputes every hash after them cannot re-sign the
    checkpoints, so `audit verify` catches a fully recomputed chain.

    Each checkpoint is also anchored outside the database (anchors.py): appended to the anchor
    file after its commit (`anchored_at`) and, where configured, POSTed to the anchor URL
    (`sent_at`); `maintain` retries what is not anchored yet. Deleting checkpoints, or cutting the
    chain's tail with them, then contradicts the anchor."""

    seq = models.BigIntegerField(unique=True)
    hash = models.CharField(max_length=64)
    ts = models.DateTimeField(default=timezone.now)
    key_id = models.CharField(max_length=16)
    signature = models.CharField(max_length=100)
    anchored_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["seq"]


class SubjectKey(models.Model):
    """A data subject's pseudonymisation key (crypto-shredding).

    Audit records and stored events name a person only by HMAC-SHA256(key, "kind:ref"). Erasure
    deletes this row: the pseudonyms stay in the (verifiable) audit chain but nothing links them to
    the person any more. `pseudonym` is stored for reverse lookup (showing a username in the audit
    view) and goes with the row."""

    kind = models.CharField(max_length=16)  # "user" (a person with an account), "subject" (edge)
    ref = models.CharField(max_length=200)
    key = models.BinaryField(max_length=32)
    pseudonym = models.CharField(max_length=40, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kind", "ref"], name="one_key_per_subject")]


class AuditExport(models.Model):
    """An export a compliance officer made: its filters, and (once written) its signed manifest."""

    created_at = models.DateTimeField(default=timezone.now)
    actor = models.CharField(max_length=80)
    fmt = models.CharField(max_length=8)
    filters = models.JSONField(default=dict)
    manifest = models.JSONField(null=True, blank=True)
