"""Bad configuration gets a one-line message naming the variable and a non-zero exit, never a
traceback; an empty value is the default. Every variable of the README's configuration table."""

from __future__ import annotations

import os
import re
import runpy
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ROOT / "edgefleet" / "settings.py"
POSTGRES = {"DATABASE_URL": "postgres://u:p@127.0.0.1:5432/edgefleet"}
PRODUCTION = {"EDGEFLEET_PRODUCTION": "1", "SECRET_KEY": "k" * 60}

# variable: (a malformed value, an out-of-range value or None, the environment it applies in)
TYPED: dict[str, tuple[str, str | None, dict[str, str]]] = {
    "DATABASE_URL": ("garbage", "mysql://db.example/edgefleet", {}),
    "REDIS_URL": ("localhost:6379", None, {}),
    "EDGEFLEET_PRODUCTION": ("maybe", None, {}),
    "DEBUG": ("maybe", None, {}),
    "SITE_URL": ("edgefleet.example.com", None, {}),
    "CSRF_TRUSTED_ORIGINS": ("edgefleet.example.com", None, {}),
    "EDGEFLEET_POLL_INTERVAL_S": ("30s", "0", {}),
    "EDGEFLEET_POLL_JITTER": ("a lot", "0.9", {}),
    "EDGEFLEET_CONTACT_FLUSH_S": ("soon", "-1", {}),
    "EDGEFLEET_NODE_RATE_PER_MIN": ("many", "0", {}),
    "EDGEFLEET_MAX_IN_FLIGHT": ("1.5", "0", {}),
    "EDGEFLEET_MAX_QUEUED": ("lots", "0", {}),
    "EDGEFLEET_WATCH_MAX_S": ("1m", "0", {}),
    "EDGEFLEET_MAX_WATCHES": ("many", "-1", {}),
    "EDGEFLEET_WATCH_SWEEP_S": ("often", "0", {}),
    "EDGEFLEET_OVERLOAD_RETRY_AFTER_S": ("x", "0", {}),
    "EDGEFLEET_NODE_MAX_BODY_BYTES": ("1MB", "10", {}),
    "EDGEFLEET_NODE_MAX_BATCH": ("x", "0", {}),
    "EDGEFLEET_MAX_PENDING_APPROVALS_PER_NODE": ("x", "0", {}),
    "EDGEFLEET_MAX_PENDING_APPROVALS_PER_FLEET": ("many", "0", {}),
    "EDGEFLEET_METRICS_RAW_RETENTION_H": ("x", "0", {}),
    "EDGEFLEET_METRICS_ROLLUP_RETENTION_DAYS": ("x", "0", {}),
    "EDGEFLEET_CREDENTIAL_OVERLAP_S": ("x", "-1", {}),
    "EDGEFLEET_ENROLLMENT_TOKEN_TTL_H": ("x", "0", {}),
    "EDGEFLEET_AUDIT_CHECKPOINT_EVERY": ("x", "0", {}),
    "EDGEFLEET_AUDIT_CHECKPOINT_INTERVAL_S": ("x", "0", {}),
    "EDGEFLEET_AUDIT_ANCHOR_FILE": ("/dev/null/audit-anchors.jsonl", None, {}),
    "EDGEFLEET_AUDIT_ANCHOR_URL": ("ftp://anchors.example/audit", None, {}),
    "EDGEFLEET_AUDIT_VERIFY_WORKERS": ("x", "0", {}),
    "EDGEFLEET_AUDIT_VERIFY_SEGMENT_MIN": ("x", "0", {}),
    "EDGEFLEET_AUDIT_RETENTION_DAYS": ("x", "0", {}),
    "EDGEFLEET_RETENTION_EVENTS_DAYS": ("x", "0", {}),
    "EDGEFLEET_RETENTION_SOURCE_IP_DAYS": ("x", "0", {}),
    "EDGEFLEET_RETENTION_LOGIN_FAILURES_DAYS": ("x", "0", {}),
    "EDGEFLEET_LOGIN_FAILURE_LIMIT": ("x", "0", {}),
    "EDGEFLEET_LOGIN_LOCKOUT_S": ("x", "0", {}),
    "EDGEFLEET_LOGIN_ADDRESS_FAILURE_LIMIT": ("x", "0", {}),
    "EDGEFLEET_LOGIN_ACCOUNT_FAILURE_LIMIT": ("x", "0", {}),
    "EDGEFLEET_LOGIN_FAILURE_WINDOW_S": ("x", "0", {}),
    "EDGEFLEET_TRUSTED_PROXIES": ("10.0.0.0/33", None, {}),
    "EDGEFLEET_TOKEN_FAILURE_LIMIT": ("x", "0", {}),
    "EDGEFLEET_TOKEN_FAILURE_WINDOW_S": ("x", "0", {}),
    "EDGEFLEET_SESSION_IDLE_S": ("x", "10", {}),
    "EDGEFLEET_HIPAA_SESSION_IDLE_S": ("x", "10", {}),
    "EDGEFLEET_MODEL_MEMORY_HEADROOM": ("x", "1.5", {}),
    "EDGEFLEET_QUANTIZE_THREADS": ("x", "-1", {}),
    "EDGEFLEET_CLOUD_TIMEOUT_S": ("x", "0", {}),
    "EDGEFLEET_RELAY_RETRIES": ("x", "11", {}),
    "EDGEFLEET_RELAY_BACKOFF_S": ("x", "-1", {}),
    "DB_POOL": ("maybe", None, POSTGRES),
    "DB_POOL_MIN": ("x", "-1", POSTGRES),
    "DB_POOL_MAX": ("x", "0", POSTGRES),
    "DB_PREPARE_THRESHOLD": ("x", "-1", POSTGRES),
    "DB_POOL_TIMEOUT_S": ("x", "0", POSTGRES),
    "DB_CONN_MAX_AGE": ("x", "-1", {}),
    "DB_HEALTH_CHECKS": ("maybe", None, {}),
    "EDGEFLEET_LIVE_FLUSH_MS": ("x", "-1", {}),
    "FILE_UPLOAD_MAX_MEMORY_SIZE": ("2MB", "-1", {}),
    "DATA_UPLOAD_MAX_MEMORY_SIZE": ("2MB", "10", {}),
    "SECURE_SSL_REDIRECT": ("maybe", None, PRODUCTION),
    "SECURE_HSTS_SECONDS": ("x", "-1", PRODUCTION),
    "LOG_LEVEL": ("loud", None, {}),
}
# Free text (names, paths, tokens, keys): anything non-empty is a value.
TEXT = {
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "EDGEFLEET_VAR_DIR",
    "EDGEFLEET_SIGNING_KEY_FILE",
    "EDGEFLEET_CONTROLLER_NAME",
    "EDGEFLEET_CONTROLLER_CONTACT",
    "EDGEFLEET_ARTIFACT_DIR",
    "EDGEFLEET_TASK_BACKEND",
    "EDGEFLEET_ROUTER_DATA_DIR",
    "EDGEFLEET_METRICS_TOKEN",
    "STATIC_ROOT",
}


def readme_variables() -> list[str]:
    table = (ROOT / "README.md").read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    first = [line.split("|")[1] for line in table.splitlines() if line.startswith("| `")]
    return sorted({v for cell in first for v in re.findall(r"`([A-Z][A-Z_]+)`", cell)})


def load(monkeypatch, **environment: str) -> dict:
    for key in [*TYPED, *TEXT]:
        monkeypatch.delenv(key, raising=False)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    return {k: v for k, v in runpy.run_path(str(SETTINGS)).items() if k.isupper()}


def test_every_variable_of_the_readme_table_is_covered_here():
    assert set(readme_variables()) == set(TYPED) | TEXT


@pytest.mark.parametrize("name", sorted(set(TYPED) | TEXT))
def test_an_empty_value_is_the_default(monkeypatch, name):
    context = TYPED[name][2] if name in TYPED else {}
    default = load(monkeypatch, **context)
    assert load(monkeypatch, **context, **{name: ""}) == default


@pytest.mark.parametrize("name", sorted(TYPED))
def test_a_malformed_value_is_refused_naming_the_variable(monkeypatch, name):
    malformed, _, context = TYPED[name]
    with pytest.raises(ImproperlyConfigured, match=rf"^{name}=.*: expected "):
        load(monkeypatch, **context, **{name: malformed})


@pytest.mark.parametrize("name", sorted(n for n, (_, high, _) in TYPED.items() if high is not None))
def test_an_out_of_range_value_is_refused_with_the_range(monkeypatch, name):
    _, out_of_range, context = TYPED[name]
    with pytest.raises(ImproperlyConfigured, match=rf"^{name}='{re.escape(out_of_range)}': "):
        load(monkeypatch, **context, **{name: out_of_range})


def manage(*args: str, **environment: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in TYPED}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**env, **environment},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_an_empty_database_url_is_the_default_sqlite():
    assert manage("check", DATABASE_URL="").returncode == 0


def test_a_bad_variable_stops_manage_py_with_one_line_and_no_traceback():
    r = manage("check", DATABASE_URL="postgres://me:s3cret@db:port/x")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "edgefleet: configuration error: DATABASE_URL='postgres://me:***@db:port/x': expected a "
        "database URL: postgres://user:pass@host:5432/name or sqlite:///path"
    ]


def test_an_anchor_file_whose_directory_cannot_be_created_stops_manage_py_in_one_line(tmp_path):
    (tmp_path / "a-file").write_text("")
    r = manage("check", EDGEFLEET_AUDIT_ANCHOR_FILE=str(tmp_path / "a-file" / "anchors.jsonl"))
    assert r.returncode == 2
    [line] = r.stderr.strip().splitlines()
    assert line.startswith("edgefleet: configuration error: EDGEFLEET_AUDIT_ANCHOR_FILE='/")
    assert line.endswith(": expected a file path whose directory can be created (not a directory)")


# An unreachable database and a taken port: one line and exit status 2 (manage.py, runserver).
UNREACHABLE = {"DATABASE_URL": "postgresql://u:s3cret@127.0.0.1:1/db", "DB_POOL_TIMEOUT_S": "1"}


@pytest.mark.parametrize(
    "command", [["migrate"], ["showmigrations"], ["runserver", "127.0.0.1:0", "--noreload"]]
)
@pytest.mark.parametrize("pool", ["1", "0"])
def test_an_unreachable_database_stops_manage_py_with_one_line(command, pool):
    r = manage(*command, **UNREACHABLE, DB_POOL=pool)
    assert r.returncode == 2, r.stderr
    [line] = r.stderr.strip().splitlines()
    assert re.fullmatch(r"edgefleet: cannot reach the database at 127\.0\.0\.1:1 \(.+\)", line)
    assert "s3cret" not in r.stderr + r.stdout


def test_runserver_on_a_taken_port_stops_with_one_line_and_a_non_zero_exit():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = manage("runserver", f"127.0.0.1:{port}", "--noreload")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"CommandError: cannot serve on 127.0.0.1:{port}: the port is already in use (another "
        "server is running there?)"
    ]
