"""Real processes on loopback for the fault suite: a control plane (gunicorn + the `maintain`
upkeep loop) on its own database, SQLite or a private PostgreSQL cluster that a test may crash and
restart, and a private Redis. Nothing here is a stand-in: the faults hit the same binaries a
deployment runs.

`RESILIENCE_FULL=1` (`make resilience`) runs each fault at the issue's full count; without it the
suite runs a bounded form that fits in CI. Each test appends what it injected and what it found to
`RESILIENCE_REPORT` (a JSON-lines file) when set; bench/resilience.py turns that into
bench/results/resilience.md.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from ..agent_helpers import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
FULL = os.environ.get("RESILIENCE_FULL") == "1"


def count(full: int, bounded: int) -> int:
    return full if FULL else bounded


def report(test: str, injected: str, times: int, **found) -> None:
    """One line of the run's report: what was injected, how often, what was found."""
    path = os.environ.get("RESILIENCE_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(
                json.dumps({"test": test, "injected": injected, "times": times, **found}) + "\n"
            )


def healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Stop a process started in its own session, with all its children."""
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=20)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# --- databases ------------------------------------------------------------------------------------


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[4]))
    return found[-1].parent if found else None


def postgres_available() -> bool:
    return _pg_bin() is not None and shutil.which("runuser") is not None and os.geteuid() == 0


class SqliteDatabase:
    kind = "sqlite"

    def __init__(self, where: Path):
        self.url = f"sqlite:///{where / 'edgefleet.sqlite3'}"

    def restart(self) -> None:
        """An embedded database has no server to restart."""

    def close(self) -> None:
        pass


class PostgresCluster:
    """A private cluster (initdb in a temporary folder, its own port), so a test can crash and
    restart it without touching the database the rest of the suite runs on."""

    kind = "postgresql"

    def __init__(self, where: Path | None = None):
        bin_dir = _pg_bin()
        assert bin_dir is not None
        self.pg_ctl = str(bin_dir / "pg_ctl")
        self.dir = where or Path(tempfile.mkdtemp(prefix="edgefleet-pg-"))
        shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"
        self.port = free_port()
        self._as_postgres(str(bin_dir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "pg")
        self.url = f"postgres://pg@127.0.0.1:{self.port}/postgres"
        self._ctl("start")

    def _as_postgres(self, *argv: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *argv],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def _ctl(self, action: str, *extra: str) -> None:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=200"
        log = str(self.dir / "log")
        self._as_postgres(
            self.pg_ctl, "-D", str(self.data), "-l", log, "-w", "-o", opts, *extra, action
        )

    def running(self) -> bool:
        status = [self.pg_ctl, "-D", str(self.data), "status"]
        argv = ["runuser", "-u", "postgres", "--", *status]
        return subprocess.run(argv, stdout=subprocess.DEVNULL).returncode == 0

    def start(self) -> None:
        self._ctl("start")

    def restart(self) -> None:
        """A crash and restart: `immediate` mode skips the shutdown checkpoint, so the server
        comes back through crash recovery, as after a power cut."""
        self._ctl("restart", "-m", "immediate")

    def close(self) -> None:
        try:
            self._ctl("stop", "-m", "immediate")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def on_postgres() -> bool:
    """Whether this run of the suite is the PostgreSQL one (DATABASE_URL names a PostgreSQL)."""
    return os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://"))


def database(where: Path):
    """The backend the suite runs on: PostgreSQL (a private cluster) when DATABASE_URL names one,
    else SQLite."""
    if on_postgres():
        return PostgresCluster()
    return SqliteDatabase(where)


# --- the control plane ----------------------------------------------------------------------------


def server_env(db_url: str, var_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGEFLEET_", "DJANGO_"))}
    env.pop("REDIS_URL", None)  # the in-memory channel layer, unless a test starts its own Redis
    env.update(
        DATABASE_URL=db_url,
        DJANGO_SETTINGS_MODULE="edgefleet.settings",
        EDGEFLEET_VAR_DIR=str(var_dir),
        DEBUG="0",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        LOG_LEVEL="ERROR",
        EDGEFLEET_NODE_RATE_PER_MIN="1000000",
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


def django(env: dict[str, str], code: str) -> dict:
    """Run `code` in a fresh Python with Django set up on `env`; it prints one JSON object."""
    script = "import django, json\ndjango.setup()\n" + code
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if out.returncode:
        raise AssertionError(f"script failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


SEED = """
from django.core.management import call_command
call_command("migrate", verbosity=0)
from controlplane import tokens
from controlplane.nodes import desired_state
from controlplane.nodes.models import Fleet, Node, NodeCredential
fleet = Fleet.objects.create(slug="faults", name="Fault suite")
creds = {}
for i in range(%(nodes)d):
    node = Node.objects.create(fleet=fleet, name=f"node-{i:03d}")
    plaintext, token_hash, prefix = tokens.new_token(tokens.NODE_PREFIX)
    NodeCredential.objects.create(node=node, prefix=prefix, token_hash=token_hash)
    creds[str(node.pk)] = plaintext
desired_state.refresh(fleet)
print(json.dumps(creds))
"""


def seed(env: dict[str, str], nodes: int) -> dict[str, str]:
    """Migrate, and create a fleet of `nodes` nodes: {node id: credential}."""
    return django(env, SEED % {"nodes": nodes})


class ControlPlane:
    """gunicorn serving the control plane, and `manage.py maintain` beside it (it seals audit
    records left pending by concurrent writers every second), as a deployment runs them."""

    def __init__(
        self, env: dict[str, str], workers: int = 2, worker_class: str = "sync", threads=1
    ):
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        gunicorn = f"-b 127.0.0.1:{self.port} -w {workers} -k {worker_class} --threads {threads}"
        self.argv = [sys.executable, "-m", "gunicorn", "-c", "python:edgefleet.gunicorn_conf"]
        self.argv.append("edgefleet.wsgi:application")
        self.argv += (gunicorn + " --log-level warning --backlog 2048").split()
        self.procs: list[subprocess.Popen] = []

    def start(self) -> ControlPlane:
        self.procs = [
            subprocess.Popen(self.argv, cwd=ROOT, env=self.env, start_new_session=True),
            subprocess.Popen(
                [sys.executable, "manage.py", "maintain", "--every", "5", "-v0"],
                cwd=ROOT,
                env=self.env,
                start_new_session=True,
                stdout=subprocess.DEVNULL,
            ),
        ]
        wait_for(lambda: healthy(self.url), 60, "the control plane to answer /healthz")
        return self

    def kill(self) -> None:
        """SIGKILL every process of the control plane, workers included, mid-whatever."""
        for proc in self.procs:
            stop(proc, signal.SIGKILL)

    def stop(self) -> None:
        for proc in self.procs:
            stop(proc)


class Redis:
    """A private redis-server on its own port, which a test may kill and start again."""

    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Redis:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        self.proc = subprocess.Popen(
            [*argv, "--appendonly", "no"], stdout=subprocess.DEVNULL, start_new_session=True
        )

        def answers() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0

        wait_for(answers, 20, "redis-server to listen")
        return self

    def kill(self) -> None:
        if self.proc is not None:
            stop(self.proc, signal.SIGKILL)


def daphne(env: dict[str, str]) -> tuple[subprocess.Popen, int]:
    """The ASGI server for websockets, as the production setup runs it."""
    port = free_port()
    argv = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
    proc = subprocess.Popen(
        [*argv, "edgefleet.asgi:application"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stderr=open(os.environ.get("DAPHNE_LOG", os.devnull), "w"),  # noqa: SIM115
    )
    wait_for(lambda: healthy(f"http://127.0.0.1:{port}"), 60, "daphne to answer /healthz")
    return proc, port


# --- a small disk ---------------------------------------------------------------------------------


def can_mount() -> bool:
    """Whether this process may mount a tmpfs (root, and a kernel and container that allow it)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    probe = Path(tempfile.mkdtemp(prefix="edgefleet-mount-"))
    try:
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)])
        if ok.returncode == 0:
            subprocess.run(["umount", str(probe)], check=False)
        return ok.returncode == 0
    finally:
        probe.rmdir()


class SmallDisk:
    """A size-limited filesystem (tmpfs) mounted at `path`: fill it, then give space back."""

    def __init__(self, path: Path, size: str):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True
        )

    def free(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill(self, leave: int) -> None:
        """Take all but `leave` bytes with a filler file."""
        with open(self.path / ".filler", "ab") as f:
            f.write(b"\0" * max(0, self.free() - leave))

    def give_back(self) -> None:
        (self.path / ".filler").unlink(missing_ok=True)

    def resize(self, size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)], check=True)

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)
        if self.path.parent == Path(tempfile.gettempdir()):
            self.path.rmdir()  # a mount point made for this disk
