from django.conf import settings
from django.db import models
from django.utils import timezone


class Artifact(models.Model):
    """One GGUF file in the registry: a model `name` at one `variant` (its quantization).

    The file lives in the "artifacts" storage under its sha256; the row keeps what the control plane
    needs without opening it (metadata read with the gguf package at registration) and the manifest
    it signed for nodes.
    """

    name = models.SlugField(max_length=63)
    variant = models.CharField(max_length=16)
    sha256 = models.CharField(max_length=64, db_index=True)
    size = models.PositiveBigIntegerField()
    file = models.CharField(max_length=200)  # path in the "artifacts" storage
    architecture = models.CharField(max_length=32)
    parameters = models.PositiveBigIntegerField()
    bits_per_weight = models.FloatField()
    context_length = models.PositiveIntegerField(default=0)
    n_layer = models.PositiveIntegerField(default=0)
    n_embd = models.PositiveIntegerField(default=0)
    n_head = models.PositiveIntegerField(default=0)
    n_head_kv = models.PositiveIntegerField(default=0)
    file_type = models.IntegerField(null=True, blank=True)
    chat_template = models.TextField(blank=True)
    source = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="derived"
    )
    manifest = models.JSONField()
    signature = models.CharField(max_length=200)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["name", "variant"], name="artifact_variant_unique")
        ]

    def __str__(self) -> str:
        return f"{self.name}:{self.variant}"


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class QuantizationJob(models.Model):
    """Quantize `source` (F32/F16/BF16) to `variant`, on a django-tasks worker."""

    source = models.ForeignKey(Artifact, on_delete=models.CASCADE, related_name="jobs")
    variant = models.CharField(max_length=16)
    status = models.CharField(max_length=8, choices=JobStatus.choices, default=JobStatus.QUEUED)
    progress = models.FloatField(default=0.0)
    error = models.TextField(blank=True)
    result = models.ForeignKey(
        Artifact, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    task_id = models.CharField(max_length=64, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.source} -> {self.variant}: {self.status}"


class RouterArtifact(models.Model):
    """A trained local-vs-cloud router (wire/scoring.py), as `manage.py router train` wrote it:
    canonical JSON, signed by the control plane's key, handed to nodes by version in the routing
    section of their desired state. Small (a few MB at most), so it lives in the database."""

    version = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16)
    sha256 = models.CharField(max_length=64, unique=True)
    size = models.PositiveIntegerField()
    content = models.BinaryField()
    signature = models.CharField(max_length=200)
    meta = models.JSONField(default=dict)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.version
