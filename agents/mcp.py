"""Tools from MCP servers (the official `mcp` SDK), behind the same gate as built-in tools.

The desired state names the servers (`tools.mcp`): a `command` the node starts and talks to over
stdio, or a streamable-HTTP `url`. Each server's tools become `Tool`s named `<server>-<tool>`, so a
rule, an agent's tool list and the audit trail name them like any other tool; every call goes
through `ToolGate.call` (allow, approval, deny, argument schema, rate) and is audited there.

A tool its server annotates as destructive, or does not annotate at all, asks for a person's
approval where the policy would allow it (`default_mode`); an explicit rule still decides.

Sessions are held open on one event-loop thread of their own; the agent's threads call into it.
A stdio server's program must be allowed on the node (EDGEFLEET_AGENT_MCP_COMMANDS), and an HTTP
server off this machine by its host (EDGEFLEET_AGENT_MCP_HOSTS): a desired state alone cannot make
a node run a program or send tool arguments elsewhere.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import re
import shutil
import threading
from typing import Any
from urllib.parse import urlsplit

import jsonschema

from agents.tools import Tool, ToolContext, ToolError
from wire.schemas import McpServer

COMMANDS_ENV = "EDGEFLEET_AGENT_MCP_COMMANDS"
HOSTS_ENV = "EDGEFLEET_AGENT_MCP_HOSTS"
LOOPBACK = {"127.0.0.1", "::1", "localhost"}


class McpError(Exception):
    """An MCP server could not be used: not allowed here, not started, not answering."""


def tool_name(server: str, tool: str) -> str:
    """`<server>-<tool>`, lower case, within the 63 characters a tool name may have."""
    return f"{server}-{re.sub(r'[^a-z0-9_-]', '_', tool.lower())}"[:63]


def allowed_commands() -> set[str]:
    return {c for c in os.environ.get(COMMANDS_ENV, "").split(os.pathsep) if c}


def check_allowed(name: str, server: McpServer) -> None:
    if server.command:
        program = server.command[0]
        allowed = allowed_commands()
        resolved = shutil.which(program) or program
        if program not in allowed and resolved not in allowed:
            raise McpError(
                f"MCP server '{name}': the program {program!r} is not allowed on this node "
                f"(a site allows it by adding it to {COMMANDS_ENV})"
            )
    else:
        host = (urlsplit(server.url).hostname or "").lower()
        hosts = {h.lower() for h in os.environ.get(HOSTS_ENV, "").split(",") if h}
        if host not in LOOPBACK and host not in hosts:
            raise McpError(
                f"MCP server '{name}': {host!r} is not this machine and not in {HOSTS_ENV}"
            )


def _text(result: Any) -> str:
    parts = [c.text for c in result.content if getattr(c, "type", "") == "text"]
    if parts:
        return "\n".join(parts)
    structured = result.structured_content
    return json.dumps(structured, default=str) if structured is not None else ""


def _parameters(schema: Any) -> dict[str, Any]:
    """The tool's input schema where it is a valid JSON Schema object; else any object."""
    if isinstance(schema, dict):
        with contextlib.suppress(jsonschema.SchemaError):
            jsonschema.Draft202012Validator.check_schema(schema)
            return schema
    return {"type": "object"}


class McpServers:
    """Open sessions to the servers of one desired state; `tools` are theirs, ready for the gate.
    Connecting checks each server is allowed, starts or reaches it and lists its tools; any
    failure closes what was opened and raises McpError (the apply then fails, the node keeps its
    previous state)."""

    def __init__(self, servers: dict[str, McpServer]):
        self.servers = servers
        self.tools: dict[str, Tool] = {}
        self._clients: dict[str, Any] = {}
        self._stops: list[asyncio.Event] = []
        self._tasks: list[Any] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="mcp", daemon=True)
        self.thread.start()
        try:
            for name, server in servers.items():
                check_allowed(name, server)
                self._connect(name, server)
        except BaseException:
            self.close()
            raise

    def _connect(self, name: str, server: McpServer) -> None:
        ready: concurrent.futures.Future[Any] = concurrent.futures.Future()
        stop = asyncio.Event()
        self._stops.append(stop)
        self._tasks.append(
            asyncio.run_coroutine_threadsafe(self._hold(server, ready, stop), self.loop)
        )
        try:
            client, listed = ready.result(server.timeout_s)
        except Exception as exc:  # noqa: BLE001 - the SDK and the transports raise many kinds
            raise McpError(f"MCP server '{name}' could not be used: {_reason(exc)}") from None
        self._clients[name] = client
        for t in listed:
            hints = t.annotations
            unsafe = (
                hints is None
                or bool(hints.destructive_hint)
                or (hints.destructive_hint is None and not hints.read_only_hint)
            )
            full = tool_name(name, t.name)
            if full in self.tools:  # "a" + "b-c" and "a-b" + "c"; or names alike but for case
                raise McpError(
                    f"MCP server '{name}': its tool {t.name!r} would be named {full!r}, like "
                    "another tool: rename a server"
                )
            self.tools[full] = Tool(
                full,
                (t.description or "")[:1000],
                _parameters(t.input_schema),
                self._runner(name, t.name, server.timeout_s),
                default_mode="approval" if unsafe else None,
            )

    async def _hold(
        self, server: McpServer, ready: concurrent.futures.Future, stop: asyncio.Event
    ) -> None:
        """One server's session, entered and left in this one task (as anyio requires)."""
        from mcp import Client, StdioServerParameters

        target: Any = server.url
        if server.command:
            target = StdioServerParameters(command=server.command[0], args=server.command[1:])
        try:
            async with Client(target, read_timeout_seconds=float(server.timeout_s)) as client:
                listed = await client.list_tools()
                ready.set_result((client, listed.tools))
                await stop.wait()
        except BaseException as exc:  # noqa: BLE001 - reported to whoever waits
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else McpError(str(exc)))

    def _runner(self, server: str, tool: str, timeout_s: int):
        def run(ctx: ToolContext, args: dict[str, Any]) -> str:
            client = self._clients.get(server)
            if client is None:
                raise ToolError(f"MCP server '{server}' is closed")
            future = asyncio.run_coroutine_threadsafe(client.call_tool(tool, args), self.loop)
            try:
                result = future.result(timeout_s)
            except TimeoutError:
                future.cancel()
                raise ToolError(
                    f"MCP server '{server}' did not answer within {timeout_s} s"
                ) from None
            except Exception as exc:  # noqa: BLE001 - a failed call goes back to the model
                raise ToolError(f"MCP server '{server}': {_reason(exc)}") from None
            text = _text(result)
            if result.is_error:
                raise ToolError(f"{tool}: {text[:500]}")
            return text

        return run

    def close(self) -> None:
        """End every session (a stdio server's process with it) and the loop's thread."""
        for stop in self._stops:
            self.loop.call_soon_threadsafe(stop.set)
        for task in self._tasks:
            try:
                task.result(5)
            except Exception:  # noqa: BLE001 - still connecting, or failed: stop it
                task.cancel()
        self._clients.clear()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        if not self.thread.is_alive():
            self.loop.close()


def _reason(exc: BaseException) -> str:
    """The innermost message of an exception group (anyio wraps the transports' errors)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"[:500] if str(exc) else type(exc).__name__
