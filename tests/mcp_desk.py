"""An MCP server for the tests, on the official SDK's MCPServer over streamable HTTP: a site's
service desk with one read-only tool and one that changes things (not annotated).

    python tests/mcp_desk.py PORT TICKET_DIR
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

desk = MCPServer("desk")
TICKETS = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(".")


@desk.tool(annotations=ToolAnnotations(readOnlyHint=True))
def lookup_room(room: int) -> str:
    """Who looks after a room."""
    return f"room {room}: ask Dana at extension {200 + room}"


@desk.tool()
def file_ticket(title: str, description: str = "") -> str:
    """File a ticket with the site's service desk."""
    ticket = uuid.uuid4().hex[:8]
    (TICKETS / f"{ticket}.json").write_text(
        json.dumps({"title": title, "description": description})
    )
    return json.dumps({"ticket": ticket})


if __name__ == "__main__":
    desk.run(transport="streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
