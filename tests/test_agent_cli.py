"""`edgefleet-agent` takes `--state-dir` before or after its subcommand (the follow-up that `enroll`
prints, and the command the dashboard's enrollment page shows, put it after); a state directory
it cannot use and a missing enrollment token are one line and exit status 2; `enroll` takes its
token from a file, the environment or standard input, off the process list."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agents import cli
from agents.state import StateDir
from controlplane.nodes import services
from controlplane.nodes.models import Node


@pytest.mark.parametrize("command", ["run", "status", "chat"])
@pytest.mark.parametrize("where", ["before", "after"])
def test_the_state_dir_is_honoured_before_or_after_the_subcommand(tmp_path, capsys, command, where):
    state = tmp_path / "node-state"
    argv = (
        ["--state-dir", str(state), command]
        if where == "before"
        else [command, "--state-dir", str(state)]
    )
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2
    if command == "chat":
        assert "no running agent found" in err
    else:
        assert f"not enrolled (no node.json in {state})" in err


def test_enroll_prints_a_follow_up_command_that_parses(tmp_path):
    args = ["run", "--state-dir", str(tmp_path), "--listen", "127.0.0.1:0"]
    assert cli.main(args) == 2  # parsed (not enrolled), not "unrecognized arguments"


# --- operators' mistakes: one line on stderr, exit status 2, never a traceback ------------------

ROOT = Path(__file__).resolve().parent.parent


def agent(*args: str, stdin: str = "", **environment: str) -> subprocess.CompletedProcess:
    """`edgefleet-agent ARGS` in a process of its own, standard input a pipe (not a terminal)."""
    env = {k: v for k, v in os.environ.items() if k != cli.TOKEN_ENV}
    return subprocess.run(
        [sys.executable, "-m", "agents.cli", *args],
        cwd=ROOT,
        env={**env, **environment},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


@pytest.mark.parametrize(
    "command",
    [["run"], ["status"], ["chat", "hi"], ["enroll", "--server", "http://127.0.0.1:1"]],
)
def test_a_state_dir_that_is_a_file_is_refused_in_one_line(tmp_path, command):
    state = tmp_path / "state"
    state.write_text("not a directory")
    line = one_line(agent("--state-dir", str(state), *command, stdin="efe_unused-token\n"))
    assert line == f"edgefleet-agent: the state directory {state} is a file, not a directory"


def test_a_state_dir_that_cannot_be_created_is_refused_in_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    under_a_file = tmp_path / "file" / "state"
    enroll = ["enroll", "--server", "http://127.0.0.1:1", "--token", "-"]
    line = one_line(agent("--state-dir", str(under_a_file), *enroll, stdin="efe_x\n"))
    assert line == (
        f"edgefleet-agent: the state directory {under_a_file} is under {tmp_path / 'file'}, "
        "which is a file, not a directory"
    )
    line = one_line(agent("--state-dir", "/proc/edgefleet-state", *enroll, stdin="efe_x\n"))
    assert line.startswith("edgefleet-agent: cannot create the state directory /proc/edgefleet")


def test_enroll_without_a_token_says_where_to_give_it(tmp_path):
    line = one_line(agent("--state-dir", str(tmp_path), "enroll", "--server", "http://x"))
    assert line == (
        "edgefleet-agent: no enrollment token: give --token-file FILE, set "
        "EDGEFLEET_ENROLL_TOKEN, or pipe it to --token -"
    )
    missing = tmp_path / "missing"
    line = one_line(agent("enroll", "--server", "http://x", "--token-file", str(missing)))
    assert line == (
        f"edgefleet-agent: cannot read the token file {missing}: No such file or directory"
    )


def test_a_token_on_the_command_line_still_works_but_is_warned_about(tmp_path):
    enroll = ["enroll", "--server", "http://127.0.0.1:1", "--token", "efe_visible-to-everyone"]
    r = agent("--state-dir", str(tmp_path), *enroll)
    warning, failure = r.stderr.strip().splitlines()
    assert warning.startswith("edgefleet-agent: warning: --token TOKEN shows the secret")
    assert failure.startswith("edgefleet-agent: enrollment failed: cannot reach the control plane")


@pytest.mark.django_db(transaction=True)
def test_enroll_takes_the_token_from_a_file_the_environment_or_standard_input(
    live_server, north, tmp_path
):
    def token() -> str:
        return services.do_create_enrollment_token(north, labels={}, actor=None)[1]

    secret = tmp_path / "token"
    secret.write_text(token() + "\n")
    secret.chmod(0o600)
    ways = {
        "file": ([f"--token-file={secret}"], "", {}),
        "environment": ([], "", {cli.TOKEN_ENV: token()}),
        "stdin": (["--token", "-"], token() + "\n", {}),
    }
    for name, (args, stdin, environment) in ways.items():
        state = tmp_path / name
        enroll = ["--state-dir", str(state), "enroll", "--server", live_server.url, "--name", name]
        r = agent(*enroll, *args, stdin=stdin, **environment)
        assert r.returncode == 0, r.stderr
        assert r.stderr == "" and f"Enrolled as node {StateDir(state).node['node_id']}" in r.stdout
    assert sorted(Node.objects.values_list("name", flat=True)) == ["environment", "file", "stdin"]


def test_run_on_a_taken_port_says_which_to_pass_before_anything_starts(tmp_path, capsys):
    """The walk: with the default port taken, `run` showed the node online, then a traceback."""
    import socket

    from .agent_helpers import offline_node

    state = StateDir(tmp_path / "state").ensure()
    offline_node(state)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = cli.main(["--state-dir", str(state.path), "run", "--listen", f"127.0.0.1:{port}"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "pass --listen 127.0.0.1:" in err
    assert not (state.path / "status.json").exists()  # nothing started, nothing reported
    with pytest.raises(SystemExit) as bad:
        cli.main(["--state-dir", str(state.path), "run", "--listen", "everywhere"])
    assert bad.value.code == 2 and "HOST:PORT" in capsys.readouterr().err
