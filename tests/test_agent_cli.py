"""`edgefleet-agent` takes `--state-dir` before or after its subcommand (the follow-up that `enroll`
prints, and the command the dashboard's enrollment page shows, put it after)."""

from __future__ import annotations

import pytest

from agents import cli


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
