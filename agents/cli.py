"""`edgefleet-agent`: enroll, run, status, chat."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import platform
import signal
import socket
import sys
import threading
import time
from pathlib import Path

from agents import __version__
from agents.apply import WATCH_S
from agents.client import ControlPlaneError, NodeClient
from agents.device import hardware_profile
from agents.runtime import Runtime, StateDir, default_state_dir
from agents.state import StateDirError

TOKEN_ENV = "EDGEFLEET_ENROLL_TOKEN"  # noqa: S105 - the variable's name, not a token
FROM_STDIN = "-"


def listen_address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) < 65536:
        raise argparse.ArgumentTypeError("HOST:PORT, for example 127.0.0.1:8471")
    return host or "127.0.0.1", int(port)


def port_taken(host: str, port: int) -> str:
    """Why the local API could not listen on host:port (with a free port to pass instead), or
    "" when it can."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
            return ""
        except OSError as exc:
            why = exc.strerror or str(exc)
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as free:
        try:
            free.bind((host, 0))
            hint = (
                f"; pass --listen {host}:{free.getsockname()[1]} (free now), or stop what uses it"
            )
        except OSError:
            hint = f"; is {host} an address of this machine?"
    return f"the local API cannot listen on {host}:{port}: {why}{hint}"


def watch_seconds(value: str) -> int:
    if not (value.isdigit() and int(value) <= 3600):
        raise argparse.ArgumentTypeError("a whole number of seconds from 0 to 3600")
    return int(value)


def fail(message: str) -> int:
    print(f"edgefleet-agent: {message}", file=sys.stderr)
    return 2


class TokenError(Exception):
    """No usable enrollment token (the message is the line printed)."""


def enrollment_token(args) -> str:
    """The enrollment token, from (in this order) `--token-file FILE`, `--token -` (standard
    input), `--token TOKEN` (discouraged: the process list shows it to every user of the
    machine), EDGEFLEET_ENROLL_TOKEN, or a prompt when standard input is a terminal."""
    if args.token_file:
        try:
            text = Path(args.token_file).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or exc
            raise TokenError(f"cannot read the token file {args.token_file}: {why}") from None
        where = f"the token file {args.token_file}"
    elif args.token == FROM_STDIN:
        text, where = sys.stdin.readline(), "standard input"
    elif args.token:
        print(
            "edgefleet-agent: warning: --token TOKEN shows the secret in the process list; use "
            f"--token-file FILE, --token - (standard input) or {TOKEN_ENV}",
            file=sys.stderr,
        )
        text, where = args.token, "--token"
    elif os.environ.get(TOKEN_ENV, "").strip():
        text, where = os.environ[TOKEN_ENV], TOKEN_ENV
    elif sys.stdin.isatty():
        text, where = getpass.getpass("Enrollment token: "), "the prompt"
    else:
        raise TokenError(
            f"no enrollment token: give --token-file FILE, set {TOKEN_ENV}, or pipe it to --token -"
        )
    token = text.strip()
    if not token:
        raise TokenError(f"no enrollment token in {where}")
    return token


def cmd_enroll(args) -> int:
    state = StateDir(args.state_dir).ensure()
    if state.node and not args.force:
        return fail(
            f"already enrolled as node {state.node['node_id']} (state in {state.path}); use "
            "--force to re-enroll"
        )
    try:
        token = enrollment_token(args)
    except TokenError as exc:
        return fail(str(exc))
    client = NodeClient(args.server)
    try:
        out = client.enroll(token, args.name or platform.node() or "edge-node", hardware_profile())
    except ControlPlaneError as exc:
        return fail(f"enrollment failed: {exc}")
    except ValueError as exc:
        errors = exc.errors(include_input=False) if hasattr(exc, "errors") else None
        detail = (
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
            if errors
            else str(exc)
        )
        return fail(f"invalid enrollment request: {detail}")  # one line, never the token itself
    finally:
        client.close()
    state.save_node(
        {
            "server": args.server,
            "node_id": out.node_id,
            "fleet": out.fleet,
            "credential": out.credential,
            "credential_issued_at": time.time(),  # rotated after EDGEFLEET_AGENT_CREDENTIAL_DAYS
            "signing_key": out.signing_key,
        }
    )
    print(
        f"Enrolled as node {out.node_id} in fleet '{out.fleet}'. Credential stored in "
        f"{state.path / 'node.json'} (mode 600)."
    )
    print(f"Start it with: edgefleet-agent --state-dir {state.path} run")
    return 0


def cmd_run(args) -> int:
    from agents.server import LocalServer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    state = StateDir(args.state_dir)
    if not state.node:
        return fail(
            f"not enrolled (no node.json in {state.path}); run `edgefleet-agent enroll` first"
        )
    host, port = args.listen
    taken = port_taken(host, port)
    if taken:  # before anything starts: the node must not show "online" and then fail
        return fail(taken)
    runtime = Runtime(state, watch_s=args.watch)
    runtime.listen = f"http://{host}:{port}"
    server = LocalServer(runtime, host, port)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    runtime.start()
    try:
        server.start()
    except RuntimeError as exc:  # taken in the meantime
        runtime.shutdown(flush_timeout_s=0)
        return fail(str(exc))
    print(
        f"edgefleet-agent {__version__}: node {runtime.node['node_id']}, local API on "
        f"{runtime.listen}",
        flush=True,
    )
    done.wait()
    print("shutting down: finishing the current request and flushing the outbox", flush=True)
    server.stop()
    runtime.shutdown()
    return 0


def cmd_status(args) -> int:
    state = StateDir(args.state_dir)
    node = state.node
    if not node:
        return fail(f"not enrolled (no node.json in {state.path})")
    status = state.status
    applied = state.applied or {}
    from agents.outbox import Outbox

    outbox = Outbox(state.path / "outbox.db").stats() if (state.path / "outbox.db").exists() else {}
    last = status.get("last_contact")
    info = {
        "node_id": node["node_id"],
        "fleet": node.get("fleet"),
        "server": node["server"],
        "desired_revision": status.get("desired_revision"),
        "applied_revision": (applied.get("document") or {}).get("revision"),
        "model": status.get("model", ""),
        "agents": status.get("agents", []),
        "queue_depth": {k: v["depth"] for k, v in outbox.items()},
        "dropped": {k: v["dropped"] for k, v in outbox.items()},
        "last_contact": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(last))
        if last
        else "never",
        "last_error": status.get("last_error", ""),
        # the control plane's code when it refused the credential for good: nothing is served
        "revoked": status.get("revoked") or "no",
        "local_api": status.get("listen", ""),
    }
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        width = max(map(len, info))
        for k, v in info.items():
            print(f"{k:<{width}}  {v}")
    return 0


def cmd_chat(args) -> int:
    import httpx

    state = StateDir(args.state_dir)
    url = args.url or state.status.get("listen")
    if not url:
        return fail("no running agent found; start `edgefleet-agent run` or pass --url")
    history: list[dict[str, str]] = []
    prompts = [" ".join(args.message)] if args.message else None
    while True:
        if prompts is not None:
            if not prompts:
                return 0
            text = prompts.pop()
        else:
            try:
                text = input("you> ")
            except EOFError:
                return 0
        history.append({"role": "user", "content": text})
        try:
            r = httpx.post(
                f"{url}/v1/chat/completions",
                json={"model": args.agent or "", "messages": history},
                timeout=300,
            )
        except httpx.HTTPError as exc:
            return fail(f"cannot reach the agent at {url}: {exc}")
        if r.status_code != 200:
            return fail(r.json().get("error", {}).get("message", r.text))
        answer = r.json()["choices"][0]["message"]["content"]
        history.append({"role": "assistant", "content": answer})
        print(f"{r.json()['model']}> {answer}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="edgefleet-agent", description="edgefleet edge agent runtime")
    p.add_argument("--version", action="version", version=__version__)
    p.add_argument(
        "--state-dir",
        default=str(default_state_dir()),
        help="state directory (default: %(default)s)",
    )
    # `--state-dir` is accepted after the subcommand too (`edgefleet-agent run --state-dir DIR`):
    # each subcommand knows it without a default of its own, so the one given anywhere wins.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--state-dir", default=argparse.SUPPRESS, help="state directory (as before the command)"
    )
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("enroll", parents=[common], help="enroll this node with a control plane")
    e.add_argument(
        "--server", required=True, help="control plane URL, e.g. https://edgefleet.example.com"
    )
    secret = e.add_mutually_exclusive_group()
    secret.add_argument(
        "--token-file",
        metavar="FILE",
        help=f"read the enrollment token (efe_...) from FILE (or set {TOKEN_ENV})",
    )
    secret.add_argument(
        "--token",
        metavar="TOKEN",
        help="'-': read the enrollment token from standard input; a token itself works but is "
        "discouraged (the process list shows it)",
    )
    e.add_argument("--name", help="node name (default: host name)")
    e.add_argument(
        "--force", action="store_true", help="re-enroll even if this state directory is enrolled"
    )
    r = sub.add_parser("run", parents=[common], help="run the agent (poll, apply, serve, report)")
    r.add_argument(
        "--listen",
        type=listen_address,
        default=("127.0.0.1", 8471),
        help="local OpenAI-compatible API address (HOST:PORT, default 127.0.0.1:8471)",
    )
    r.add_argument(
        "--watch",
        type=watch_seconds,
        default=WATCH_S,
        metavar="SECONDS",
        help=f"hold each desired-state request up to this long where the control plane offers "
        f"watches (default {WATCH_S}; 0: poll only)",
    )
    s = sub.add_parser(
        "status",
        parents=[common],
        help="what is loaded, desired vs applied revision, queue depth, last contact",
    )
    s.add_argument("--json", action="store_true")
    c = sub.add_parser("chat", parents=[common], help="ask the node's agent from the terminal")
    c.add_argument("--agent", help="agent name (default: the node's default agent)")
    c.add_argument("--url", help="local API URL (default: the running agent's)")
    c.add_argument("message", nargs="*", help="one message (default: interactive)")
    args = p.parse_args(argv)
    command = {"enroll": cmd_enroll, "run": cmd_run, "status": cmd_status, "chat": cmd_chat}
    try:
        StateDir(args.state_dir).check()
        return command[args.command](args)
    except StateDirError as exc:
        return fail(str(exc))


if __name__ == "__main__":
    sys.exit(main())
