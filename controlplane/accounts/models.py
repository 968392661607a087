from django.conf import settings
from django.db import models
from django.utils import timezone


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    OPERATOR = "operator", "Operator"
    COMPLIANCE = "compliance", "Compliance officer"
    VIEWER = "viewer", "Viewer"


class Membership(models.Model):
    """A user's role in one fleet. Global admins are Django superusers and need no membership."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    fleet = models.ForeignKey("fleets.Fleet", on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "fleet"], name="one_role_per_fleet")]

    def __str__(self) -> str:
        return f"{self.user} {self.role} @ {self.fleet_id}"


class PersonalToken(models.Model):
    """A personal API token for automation: prefixed, hashed, expiring, revocable.

    It acts as its user; ``fleets`` (when non-empty) narrows it to those fleets and ``role`` (when
    set) caps what it may do there below the user's own role.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16)
    token_hash = models.CharField(max_length=64, unique=True)
    role = models.CharField(max_length=16, choices=Role.choices, blank=True)
    fleets = models.ManyToManyField("fleets.Fleet", blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"

    def is_usable(self, now=None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class TokenFailure(models.Model):
    """An unknown bearer secret presented (a node credential, an enrollment token or a personal
    API token), for rate limiting guesses (accounts/guesses.py). Nothing of the secret is kept."""

    ts = models.DateTimeField(default=timezone.now, db_index=True)
    kind = models.CharField(max_length=24)
    ip = models.GenericIPAddressField(null=True, blank=True, db_index=True)


class LoginFailure(models.Model):
    """A failed login, for throttling (accounts/auth.py). The attempted username is kept only as a
    hash (people type passwords into the username field); the address (and, from a browser that
    signed in to that account before, its device id) for the throttle's window."""

    ts = models.DateTimeField(default=timezone.now, db_index=True)
    username_hash = models.CharField(max_length=64, db_index=True)
    ip = models.GenericIPAddressField(null=True, blank=True, db_index=True)
    device = models.CharField(max_length=32, blank=True, default="")
