"""Settings read from the environment with working defaults, so a bare checkout runs.

Production mode (EDGEFLEET_PRODUCTION=1) refuses to start without a real SECRET_KEY and turns on
the HTTPS hardening that `manage.py check --deploy` asks for.
"""

import os
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


PRODUCTION = env_bool("EDGEFLEET_PRODUCTION")
DEBUG = env_bool("DEBUG", default=not PRODUCTION)

_DEV_SECRET = "dev-insecure-secret-key-only-for-local-use-0123456789abcdefghij"  # noqa: S105
SECRET_KEY = os.environ.get("SECRET_KEY", "" if PRODUCTION else _DEV_SECRET)
if PRODUCTION and (not SECRET_KEY or SECRET_KEY == _DEV_SECRET or len(SECRET_KEY) < 50):
    raise ImproperlyConfigured(
        "EDGEFLEET_PRODUCTION is set but SECRET_KEY is missing or too weak: "
        "set SECRET_KEY to 50+ random characters."
    )

ALLOWED_HOSTS = [
    h
    for h in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver").split(",")
    if h
]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o]
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000")
VAR_DIR = Path(os.environ.get("EDGEFLEET_VAR_DIR", BASE_DIR / "var"))

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "ninja",  # Swagger UI for /api/*/docs from ninja's own static files, never a CDN
    "template_partials",
    "controlplane.fleets",
    "controlplane.accounts",
    "controlplane.audit",
    "edgenodes",
    "edgenodes.registry",
    "django_tasks",
    "django_tasks_db",
]

MIDDLEWARE = [
    "controlplane.middleware.RequestIdMiddleware",
    "controlplane.middleware.NodeApiGuardMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "controlplane.errors.ServiceErrorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "controlplane.urls"
WSGI_APPLICATION = "controlplane.wsgi.application"
ASGI_APPLICATION = "controlplane.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "controlplane.context_processors.rights",
            ],
        },
    }
]

DATABASES = {
    "default": dj_database_url.config(
        env="DATABASE_URL",
        default=f"sqlite:///{VAR_DIR / 'edgefleet.sqlite3'}",
        conn_max_age=env_int("DB_CONN_MAX_AGE", 600),
        # No per-request "SELECT 1": it doubled the round trips of the node poll. A connection that
        # died is discarded after the request that hit it (Django closes on errors).
        conn_health_checks=env_bool("DB_HEALTH_CHECKS", False),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    # WAL + a busy timeout so the dev server, the maintenance loop and the demo node coexist.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # Tests use a file too: the live-server tests write from several threads, and shared-cache
    # in-memory SQLite answers concurrent writers with "table is locked" instead of waiting.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env_bool(
    "DB_POOL", True
):
    # A psycopg connection pool per process: bounded connections under WSGI threads and ASGI alike
    # (ASGI runs sync views on many threads; per-thread persistent connections would exhaust the
    # server's connection limit).
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        # Server-side prepared statements for queries run 5+ times on a connection (the node poll):
        # safe with psycopg's own pool (Django turns them off by default for external poolers).
        "prepare_threshold": env_int("DB_PREPARE_THRESHOLD", 5),
        "pool": {
            "min_size": env_int("DB_POOL_MIN", 2),
            "max_size": env_int("DB_POOL_MAX", 16),
            "timeout": env_int("DB_POOL_TIMEOUT_S", 10),
        },
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # redis-py 8 reads with a 5 s socket timeout by default, the same 5 s that
            # channels_redis blocks in BZPOPMIN waiting for a message: an idle socket then
            # fails its read ("Timeout reading from ...") and the consumer dies. Reads may
            # take longer than the blocking pop; connects may not.
            "CONFIG": {
                "hosts": [{"address": REDIS_URL, "socket_timeout": 30, "socket_connect_timeout": 5}]
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTHENTICATION_BACKENDS = ["controlplane.accounts.auth.LockoutBackend"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
# Model artifacts go through Django's storage API ("artifacts"); the filesystem by default.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "artifacts": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {
            "location": os.environ.get("EDGEFLEET_ARTIFACT_DIR", str(VAR_DIR / "artifacts")),
            "file_permissions_mode": 0o640,
        },
    },
}
# Uploads larger than this are spooled to a temporary file, never held in memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = env_int("FILE_UPLOAD_MAX_MEMORY_SIZE", 2_621_440)

# Background work (quantization, rollout gates) on django-tasks' database backend: jobs commit with
# the transaction that enqueued them, and `manage.py db_worker` runs them (several workers may
# share one PostgreSQL database).
TASKS = {
    "default": {
        "BACKEND": os.environ.get("EDGEFLEET_TASK_BACKEND", "django_tasks_db.DatabaseBackend")
    }
}

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# Request bodies: node batches are bounded by EDGEFLEET_NODE_MAX_BODY_BYTES (413 above it).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 2_621_440)

# --- edgefleet ------------------------------------------------------------------------------
EDGEFLEET: dict[str, Any] = {
    # Seconds between desired-state polls a node is told to use, unless its fleet says otherwise.
    "POLL_INTERVAL_S": env_int("EDGEFLEET_POLL_INTERVAL_S", 30),
    # +/- fraction of jitter applied to every poll interval handed out.
    "POLL_JITTER": float(os.environ.get("EDGEFLEET_POLL_JITTER", "0.1")),
    # A node is "online" within ONLINE_FACTOR poll intervals of its last contact, "stale" within
    # STALE_FACTOR, "offline" after that.
    "ONLINE_FACTOR": 2.0,
    "STALE_FACTOR": 10.0,
    # Dashboards get their websocket events in frames collected over this many milliseconds.
    "LIVE_FLUSH_MS": env_int("EDGEFLEET_LIVE_FLUSH_MS", 50),
    # Bearer token for the Prometheus endpoint /metrics; unset: /metrics answers 404 (off).
    "METRICS_TOKEN": os.environ.get("EDGEFLEET_METRICS_TOKEN", ""),
    # Last-contact times are buffered per worker and written in bulk at most this often (seconds).
    "CONTACT_FLUSH_S": float(os.environ.get("EDGEFLEET_CONTACT_FLUSH_S", "2")),
    # Per-node requests per minute on the node API (a token bucket per worker process).
    "NODE_RATE_PER_MIN": env_int("EDGEFLEET_NODE_RATE_PER_MIN", 120),
    # Requests in flight per worker above which the node API answers 429 + Retry-After.
    "MAX_IN_FLIGHT": env_int("EDGEFLEET_MAX_IN_FLIGHT", 256),
    "OVERLOAD_RETRY_AFTER_S": env_int("EDGEFLEET_OVERLOAD_RETRY_AFTER_S", 15),
    "NODE_MAX_BODY_BYTES": env_int("EDGEFLEET_NODE_MAX_BODY_BYTES", 1_048_576),
    "NODE_MAX_BATCH": env_int("EDGEFLEET_NODE_MAX_BATCH", 500),
    # Raw metric samples are kept this long; per-minute rollups are kept ROLLUP_RETENTION_DAYS.
    "METRICS_RAW_RETENTION_H": env_int("EDGEFLEET_METRICS_RAW_RETENTION_H", 48),
    "METRICS_ROLLUP_RETENTION_DAYS": env_int("EDGEFLEET_METRICS_ROLLUP_RETENTION_DAYS", 400),
    # Overlap during which a rotated node credential keeps working.
    "CREDENTIAL_OVERLAP_S": env_int("EDGEFLEET_CREDENTIAL_OVERLAP_S", 3600),
    "ENROLLMENT_TOKEN_DEFAULT_TTL_H": env_int("EDGEFLEET_ENROLLMENT_TOKEN_TTL_H", 24),
    # --- governance (docs/compliance.md) ---
    # Ed25519 key for audit checkpoints and export manifests: a file, never in the database.
    # Generated on first use outside production; must be provisioned in production.
    "SIGNING_KEY_FILE": os.environ.get(
        "EDGEFLEET_SIGNING_KEY_FILE", str(VAR_DIR / "signing-key.pem")
    ),
    "AUDIT_CHECKPOINT_EVERY": env_int("EDGEFLEET_AUDIT_CHECKPOINT_EVERY", 1000),
    # `audit verify` cuts the chain at signed checkpoints into up to this many segments of at
    # least AUDIT_VERIFY_SEGMENT_MIN records, verified in parallel on PostgreSQL.
    "AUDIT_VERIFY_WORKERS": env_int("EDGEFLEET_AUDIT_VERIFY_WORKERS", 2),
    "AUDIT_VERIFY_SEGMENT_MIN": env_int("EDGEFLEET_AUDIT_VERIFY_SEGMENT_MIN", 50_000),
    "AUDIT_CHECKPOINT_INTERVAL_S": env_int("EDGEFLEET_AUDIT_CHECKPOINT_INTERVAL_S", 300),
    # Retention per data class (days). Audit records: never under 6 years while a fleet is HIPAA.
    "AUDIT_RETENTION_DAYS": env_int("EDGEFLEET_AUDIT_RETENTION_DAYS", 2192),
    "RETENTION_SOURCE_IP_DAYS": env_int("EDGEFLEET_RETENTION_SOURCE_IP_DAYS", 30),
    "RETENTION_EVENTS_DAYS": env_int("EDGEFLEET_RETENTION_EVENTS_DAYS", 90),
    "RETENTION_LOGIN_FAILURES_DAYS": env_int("EDGEFLEET_RETENTION_LOGIN_FAILURES_DAYS", 30),
    # Login: after LOGIN_FAILURE_LIMIT failures for one username or one address within
    # LOGIN_LOCKOUT_S, further attempts are refused until the window passes.
    "LOGIN_FAILURE_LIMIT": env_int("EDGEFLEET_LOGIN_FAILURE_LIMIT", 5),
    "LOGIN_LOCKOUT_S": env_int("EDGEFLEET_LOGIN_LOCKOUT_S", 900),
    # Dashboard sessions end after this long without a request; shorter for anyone who can see
    # a HIPAA fleet.
    "SESSION_IDLE_S": env_int("EDGEFLEET_SESSION_IDLE_S", 3600),
    "HIPAA_SESSION_IDLE_S": env_int("EDGEFLEET_HIPAA_SESSION_IDLE_S", 900),
    # Named in the records-of-processing (GDPR Art. 30) export.
    "CONTROLLER_NAME": os.environ.get("EDGEFLEET_CONTROLLER_NAME", "edgefleet operator"),
    "CONTROLLER_CONTACT": os.environ.get("EDGEFLEET_CONTROLLER_CONTACT", ""),
    # --- model registry and rollouts (docs/models.md) ---
    # "auto" variant choice: weights + KV cache must fit in the node's memory minus this fraction.
    "MODEL_MEMORY_HEADROOM": float(os.environ.get("EDGEFLEET_MODEL_MEMORY_HEADROOM", "0.25")),
    # Threads per quantization job (0: llama.cpp's default, all cores).
    "QUANTIZE_THREADS": env_int("EDGEFLEET_QUANTIZE_THREADS", 0),
    # Cloud calls made for escalations time out after this many seconds.
    "CLOUD_TIMEOUT_S": env_int("EDGEFLEET_CLOUD_TIMEOUT_S", 60),
    # The relay retries a failing endpoint this many times (timeouts, connection errors, 429,
    # 5xx), waiting RELAY_BACKOFF_S, then twice that, ..., before its fallback.
    "RELAY_RETRIES": env_int("EDGEFLEET_RELAY_RETRIES", 2),
    "RELAY_BACKOFF_S": float(os.environ.get("EDGEFLEET_RELAY_BACKOFF_S", "0.25")),
    # --- router training (docs/routing.md) ---
    # RouteLLM's outcome tables (the project's ../shared/router_data/routellm by default).
    "ROUTER_DATA_DIR": os.environ.get(
        "EDGEFLEET_ROUTER_DATA_DIR", str(BASE_DIR.parent / "shared" / "router_data" / "routellm")
    ),
}
SESSION_COOKIE_AGE = EDGEFLEET["SESSION_IDLE_S"]
SESSION_SAVE_EVERY_REQUEST = True  # the expiry slides with activity: an idle timeout

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
    # 4xx answers are the client's problem and already carry a message; log server errors only.
    "loggers": {"django.request": {"level": "ERROR"}},
}

if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    X_FRAME_OPTIONS = "DENY"
