"""Settings read from the environment with working defaults, so a bare checkout runs.

Every variable goes through controlplane/env.py: an empty value is the default, a malformed or
out-of-range one stops the process with a one-line message naming it.

Production mode (EDGEFLEET_PRODUCTION=1) refuses to start without a real SECRET_KEY and turns on
the HTTPS hardening that `manage.py check --deploy` asks for.
"""

from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from controlplane import env

BASE_DIR = Path(__file__).resolve().parent.parent


PRODUCTION = env.boolean("EDGEFLEET_PRODUCTION", False)
DEBUG = env.boolean("DEBUG", not PRODUCTION)

_DEV_SECRET = "dev-insecure-secret-key-only-for-local-use-0123456789abcdefghij"  # noqa: S105
SECRET_KEY = env.string("SECRET_KEY", "" if PRODUCTION else _DEV_SECRET)
if PRODUCTION and (not SECRET_KEY or SECRET_KEY == _DEV_SECRET or len(SECRET_KEY) < 50):
    raise ImproperlyConfigured(
        "EDGEFLEET_PRODUCTION is set but SECRET_KEY is missing or too weak: "
        "set SECRET_KEY to 50+ random characters."
    )

ALLOWED_HOSTS = env.words("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env.words("CSRF_TRUSTED_ORIGINS", "")
for _origin in CSRF_TRUSTED_ORIGINS:
    if not _origin.startswith(("http://", "https://")):
        raise env.bad(
            "CSRF_TRUSTED_ORIGINS", _origin, "origins such as https://edgefleet.example.com"
        )
SITE_URL = env.url("SITE_URL", "http://127.0.0.1:8000", ("http", "https"))
VAR_DIR = Path(env.string("EDGEFLEET_VAR_DIR", str(BASE_DIR / "var")))

INSTALLED_APPS = [
    # First, so that its `runserver` (a port check before daphne's) is the one manage.py runs;
    # also demo_setup and maintain, the commands that reach across rooms.
    "edgefleet",
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
    "controlplane.compliance",
    "controlplane.nodes",
    "controlplane.registry",
    "controlplane.rollouts",
    "controlplane.routing",
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
    "controlplane.middleware.PrivateAnswersMiddleware",
    "edgefleet.api.ApiContractMiddleware",
    "controlplane.errors.ServiceErrorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "edgefleet.urls"
WSGI_APPLICATION = "edgefleet.wsgi.application"
ASGI_APPLICATION = "edgefleet.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # the dashboard's templates, and its overrides of the admin's and the login pages
        "DIRS": [BASE_DIR / "controlplane" / "dashboard" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "controlplane.dashboard.context_processors.rights",
            ],
        },
    }
]

DATABASES = {
    "default": env.database(
        "DATABASE_URL",
        f"sqlite:///{VAR_DIR / 'edgefleet.sqlite3'}",
        conn_max_age=env.integer("DB_CONN_MAX_AGE", 600, low=0),
        # No per-request "SELECT 1": it doubled the round trips of the node poll. A connection that
        # died is discarded after the request that hit it (Django closes on errors).
        conn_health_checks=env.boolean("DB_HEALTH_CHECKS", False),
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
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env.boolean(
    "DB_POOL", True
):
    _POOL_MIN = env.integer("DB_POOL_MIN", 2, low=0, high=1000)
    _POOL_MAX = env.integer("DB_POOL_MAX", 16, low=1, high=1000)
    if _POOL_MIN > _POOL_MAX:
        raise env.bad("DB_POOL_MIN", str(_POOL_MIN), f"at most DB_POOL_MAX ({_POOL_MAX})")
    # A psycopg connection pool per process: bounded connections under WSGI threads and ASGI alike
    # (ASGI runs sync views on many threads; per-thread persistent connections would exhaust the
    # server's connection limit).
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        # Server-side prepared statements for queries run 5+ times on a connection (the node poll):
        # safe with psycopg's own pool (Django turns them off by default for external poolers).
        "prepare_threshold": env.integer("DB_PREPARE_THRESHOLD", 5, low=0),
        "pool": {
            "min_size": _POOL_MIN,
            "max_size": _POOL_MAX,
            "timeout": env.integer("DB_POOL_TIMEOUT_S", 10, low=1, high=3600),
        },
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def _days(name: str, default: int) -> int:
    return env.integer(name, default, low=1, high=36_500)


REDIS_URL = env.url("REDIS_URL", "", ("redis", "rediss", "unix"))
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
STATICFILES_DIRS = [BASE_DIR / "controlplane" / "dashboard" / "static"]
STATIC_ROOT = Path(env.string("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
# Model artifacts go through Django's storage API ("artifacts"); the filesystem by default.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "artifacts": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {
            "location": env.string("EDGEFLEET_ARTIFACT_DIR", str(VAR_DIR / "artifacts")),
            "file_permissions_mode": 0o640,
        },
    },
}
# Uploads larger than this are spooled to a temporary file, never held in memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = env.integer("FILE_UPLOAD_MAX_MEMORY_SIZE", 2_621_440, low=0)

# Background work (quantization, rollout gates) on django-tasks' database backend: jobs commit with
# the transaction that enqueued them, and `manage.py db_worker` runs them (several workers may
# share one PostgreSQL database).
TASKS = {
    "default": {"BACKEND": env.string("EDGEFLEET_TASK_BACKEND", "django_tasks_db.DatabaseBackend")}
}

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# Request bodies: node batches are bounded by EDGEFLEET_NODE_MAX_BODY_BYTES (413 above it).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.integer("DATA_UPLOAD_MAX_MEMORY_SIZE", 2_621_440, low=1024)

# --- edgefleet ------------------------------------------------------------------------------
EDGEFLEET: dict[str, Any] = {
    # Seconds between desired-state polls a node is told to use, unless its fleet says otherwise.
    "POLL_INTERVAL_S": env.integer("EDGEFLEET_POLL_INTERVAL_S", 30, low=1, high=86_400),
    # +/- fraction of jitter applied to every poll interval handed out.
    "POLL_JITTER": env.number("EDGEFLEET_POLL_JITTER", 0.1, low=0, high=0.5),
    # A node is "online" within ONLINE_FACTOR poll intervals of its last contact, "stale" within
    # STALE_FACTOR, "offline" after that.
    "ONLINE_FACTOR": 2.0,
    "STALE_FACTOR": 10.0,
    # Dashboards get their websocket events in frames collected over this many milliseconds.
    "LIVE_FLUSH_MS": env.integer("EDGEFLEET_LIVE_FLUSH_MS", 50, low=0, high=10_000),
    # Bearer token for the Prometheus endpoint /metrics; unset: /metrics answers 404 (off).
    "METRICS_TOKEN": env.string("EDGEFLEET_METRICS_TOKEN", ""),
    # Last-contact times are buffered per worker and written in bulk at most this often (seconds).
    "CONTACT_FLUSH_S": env.number("EDGEFLEET_CONTACT_FLUSH_S", 2.0, low=0, high=3600),
    # Per-node requests per minute on the node API (a token bucket per worker process).
    "NODE_RATE_PER_MIN": env.integer("EDGEFLEET_NODE_RATE_PER_MIN", 120, low=1),
    # Requests in flight per worker above which the node API answers 429 + Retry-After.
    "MAX_IN_FLIGHT": env.integer("EDGEFLEET_MAX_IN_FLIGHT", 256, low=1),
    # Connections waiting in the listen queue (gunicorn, Linux) above which the node API answers
    # 429 + Retry-After: with sync workers this, not MAX_IN_FLIGHT, sheds a stampede.
    "MAX_QUEUED": env.integer("EDGEFLEET_MAX_QUEUED", 128, low=1),
    # Watches (GET desired-state?wait=N, served under ASGI: controlplane/nodeapi/watch.py): the
    # longest wait
    # a node may ask for, how many one server process holds (beyond: answered as a plain poll),
    # and how often each process re-checks every held watch in one query (a safety net for
    # missed wake-ups, e.g. no Redis between processes; also the watches' contact times).
    "WATCH_MAX_S": env.integer("EDGEFLEET_WATCH_MAX_S", 300, low=1, high=3600),
    "MAX_WATCHES": env.integer("EDGEFLEET_MAX_WATCHES", 20_000, low=0),
    "WATCH_SWEEP_S": env.number("EDGEFLEET_WATCH_SWEEP_S", 10.0, low=0.1, high=3600),
    "OVERLOAD_RETRY_AFTER_S": env.integer("EDGEFLEET_OVERLOAD_RETRY_AFTER_S", 15, low=1, high=3600),
    "NODE_MAX_BODY_BYTES": env.integer("EDGEFLEET_NODE_MAX_BODY_BYTES", 1_048_576, low=1024),
    "NODE_MAX_BATCH": env.integer("EDGEFLEET_NODE_MAX_BATCH", 500, low=1),
    # Pending tool approvals a node, and a whole fleet, may have at once: past either, a node's new
    # request is refused (429, code approvals_full) and the overview raises an alert.
    "MAX_PENDING_APPROVALS_PER_NODE": env.integer(
        "EDGEFLEET_MAX_PENDING_APPROVALS_PER_NODE", 20, low=1, high=100_000
    ),
    "MAX_PENDING_APPROVALS_PER_FLEET": env.integer(
        "EDGEFLEET_MAX_PENDING_APPROVALS_PER_FLEET", 500, low=1, high=1_000_000
    ),
    # Raw metric samples are kept this long; per-minute rollups are kept ROLLUP_RETENTION_DAYS.
    "METRICS_RAW_RETENTION_H": env.integer("EDGEFLEET_METRICS_RAW_RETENTION_H", 48, low=1),
    "METRICS_ROLLUP_RETENTION_DAYS": _days("EDGEFLEET_METRICS_ROLLUP_RETENTION_DAYS", 400),
    # Overlap during which a rotated node credential keeps working.
    "CREDENTIAL_OVERLAP_S": env.integer("EDGEFLEET_CREDENTIAL_OVERLAP_S", 3600, low=0),
    "ENROLLMENT_TOKEN_DEFAULT_TTL_H": env.integer("EDGEFLEET_ENROLLMENT_TOKEN_TTL_H", 24, low=1),
    # --- governance (docs/compliance.md) ---
    # Ed25519 key for audit checkpoints and export manifests: a file, never in the database.
    # Generated on first use outside production; must be provisioned in production.
    "SIGNING_KEY_FILE": env.string("EDGEFLEET_SIGNING_KEY_FILE", str(VAR_DIR / "signing-key.pem")),
    "AUDIT_CHECKPOINT_EVERY": env.integer("EDGEFLEET_AUDIT_CHECKPOINT_EVERY", 1000, low=1),
    # `audit verify` cuts the chain at signed checkpoints into up to this many segments of at
    # least AUDIT_VERIFY_SEGMENT_MIN records, verified in parallel on PostgreSQL.
    "AUDIT_VERIFY_WORKERS": env.integer("EDGEFLEET_AUDIT_VERIFY_WORKERS", 2, low=1, high=256),
    "AUDIT_VERIFY_SEGMENT_MIN": env.integer("EDGEFLEET_AUDIT_VERIFY_SEGMENT_MIN", 50_000, low=1),
    "AUDIT_CHECKPOINT_INTERVAL_S": env.integer("EDGEFLEET_AUDIT_CHECKPOINT_INTERVAL_S", 300, low=1),
    # Every signed checkpoint is also appended to this file (O_APPEND, fsync'd; in production on
    # storage the database's owner cannot rewrite) and POSTed to the URL if one is set, so a cut
    # tail shows (docs/compliance.md, "Anchors outside the database").
    "AUDIT_ANCHOR_FILE": env.file_path(
        "EDGEFLEET_AUDIT_ANCHOR_FILE", str(VAR_DIR / "audit-anchors.jsonl")
    ),
    "AUDIT_ANCHOR_URL": env.url("EDGEFLEET_AUDIT_ANCHOR_URL", "", ("http", "https")),
    # Retention per data class (days). Audit records: never under 6 years while a fleet is HIPAA.
    "AUDIT_RETENTION_DAYS": _days("EDGEFLEET_AUDIT_RETENTION_DAYS", 2192),
    "RETENTION_SOURCE_IP_DAYS": _days("EDGEFLEET_RETENTION_SOURCE_IP_DAYS", 30),
    "RETENTION_EVENTS_DAYS": _days("EDGEFLEET_RETENTION_EVENTS_DAYS", 90),
    "RETENTION_LOGIN_FAILURES_DAYS": _days("EDGEFLEET_RETENTION_LOGIN_FAILURES_DAYS", 30),
    # Login (controlplane/accounts/auth.py): failures counted over LOGIN_FAILURE_WINDOW_S, per
    # account and address (LOGIN_FAILURE_LIMIT free) and per address (LOGIN_ADDRESS_FAILURE_LIMIT
    # free); past them each attempt waits 2, 4, 8... seconds after the last failure, at most
    # LOGIN_LOCKOUT_S. Never per account alone: a guesser elsewhere does not lock its owner out.
    "LOGIN_FAILURE_LIMIT": env.integer("EDGEFLEET_LOGIN_FAILURE_LIMIT", 5, low=1),
    "LOGIN_ADDRESS_FAILURE_LIMIT": env.integer("EDGEFLEET_LOGIN_ADDRESS_FAILURE_LIMIT", 20, low=1),
    # ... and per account from browsers that never signed in to it, whatever their address (many
    # addresses guessing one account); its known devices and recent addresses are not slowed.
    "LOGIN_ACCOUNT_FAILURE_LIMIT": env.integer("EDGEFLEET_LOGIN_ACCOUNT_FAILURE_LIMIT", 50, low=1),
    "LOGIN_FAILURE_WINDOW_S": env.integer("EDGEFLEET_LOGIN_FAILURE_WINDOW_S", 86_400, low=1),
    "LOGIN_LOCKOUT_S": env.integer("EDGEFLEET_LOGIN_LOCKOUT_S", 900, low=1),
    # Proxies whose X-Forwarded-For is believed (addresses or CIDR networks; none by default):
    # the client is the rightmost address there that is not one of them (controlplane/tokens.py).
    "TRUSTED_PROXIES": env.networks("EDGEFLEET_TRUSTED_PROXIES", ""),
    # Unknown bearer secrets (node credentials, enrollment and API tokens) one address may present
    # within the window before its unknown secrets get 429 until the window passes (a right one
    # is still accepted).
    "TOKEN_FAILURE_LIMIT": env.integer("EDGEFLEET_TOKEN_FAILURE_LIMIT", 20, low=1),
    "TOKEN_FAILURE_WINDOW_S": env.integer("EDGEFLEET_TOKEN_FAILURE_WINDOW_S", 600, low=1),
    # Dashboard sessions end after this long without a request; shorter for anyone who can see
    # a HIPAA fleet.
    "SESSION_IDLE_S": env.integer("EDGEFLEET_SESSION_IDLE_S", 3600, low=60),
    "HIPAA_SESSION_IDLE_S": env.integer("EDGEFLEET_HIPAA_SESSION_IDLE_S", 900, low=60),
    # Named in the records-of-processing (GDPR Art. 30) export.
    "CONTROLLER_NAME": env.string("EDGEFLEET_CONTROLLER_NAME", "edgefleet operator"),
    "CONTROLLER_CONTACT": env.string("EDGEFLEET_CONTROLLER_CONTACT", ""),
    # --- model registry and rollouts (docs/models.md) ---
    # "auto" variant choice: weights + KV cache must fit in the node's memory minus this fraction.
    "MODEL_MEMORY_HEADROOM": env.number("EDGEFLEET_MODEL_MEMORY_HEADROOM", 0.25, low=0, high=0.95),
    # Threads per quantization job (0: llama.cpp's default, all cores).
    "QUANTIZE_THREADS": env.integer("EDGEFLEET_QUANTIZE_THREADS", 0, low=0, high=1024),
    # Cloud calls made for escalations time out after this many seconds.
    "CLOUD_TIMEOUT_S": env.integer("EDGEFLEET_CLOUD_TIMEOUT_S", 60, low=1, high=600),
    # The relay retries a failing endpoint this many times (timeouts, connection errors, 429,
    # 5xx), waiting RELAY_BACKOFF_S, then twice that, ..., before its fallback.
    "RELAY_RETRIES": env.integer("EDGEFLEET_RELAY_RETRIES", 2, low=0, high=10),
    "RELAY_BACKOFF_S": env.number("EDGEFLEET_RELAY_BACKOFF_S", 0.25, low=0, high=60),
    # --- router training (docs/routing.md) ---
    # RouteLLM's outcome tables (the project's ../shared/router_data/routellm by default).
    "ROUTER_DATA_DIR": env.string(
        "EDGEFLEET_ROUTER_DATA_DIR", str(BASE_DIR.parent / "shared" / "router_data" / "routellm")
    ),
}
SESSION_COOKIE_AGE = EDGEFLEET["SESSION_IDLE_S"]
SESSION_SAVE_EVERY_REQUEST = True  # the expiry slides with activity: an idle timeout

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {
        "handlers": ["console"],
        "level": env.choice("LOG_LEVEL", "WARNING", LOG_LEVELS),
    },
    # 4xx answers are the client's problem and already carry a message; log server errors only.
    "loggers": {"django.request": {"level": "ERROR"}},
}

if PRODUCTION:
    SECURE_SSL_REDIRECT = env.boolean("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.integer("SECURE_HSTS_SECONDS", 31_536_000, low=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    X_FRAME_OPTIONS = "DENY"
