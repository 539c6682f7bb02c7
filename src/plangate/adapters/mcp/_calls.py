"""The requests a session sends: listing tools, and calling one with cancellation (part of the
adapters: MCP servers).

A call whose caller gives up is cancelled on the server too (`notifications/cancelled`), so that
a step that timed out does not go on there, where a retry could then run a write twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from mcp import ClientSession
from mcp.types import (
    CallToolResult,
    CancelledNotification,
    CancelledNotificationParams,
    ClientNotification,
    Tool,
)

from plangate.adapters.mcp._loop import spawn

__all__ = ("call_tool", "list_tools")


async def list_tools(session: ClientSession) -> list[Tool]:
    """Every tool of the server, page after page."""
    tools: list[Tool] = []
    cursor: str | None = None
    while True:
        page = await session.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.nextCursor
        if not cursor:
            return tools


async def call_tool(
    client: ClientSession, name: str, arguments: dict[str, Any], meta: dict[str, Any] | None
) -> CallToolResult:
    """The server's result of calling its tool `name`; cancelling it cancels it on the server."""
    # `call_tool` takes the session's next request id before its first wait, so this is the
    # id of the request it sends: the one to name when cancelling it.
    request_id = client._request_id
    try:
        return await client.call_tool(name, arguments, meta=meta)
    except asyncio.CancelledError:
        # Left to a task of its own: this one must end now, as its canceller expects.
        spawn(_cancel_on_server(client, request_id))
        raise


async def _cancel_on_server(client: ClientSession, request_id: int) -> None:
    notice = CancelledNotification(
        params=CancelledNotificationParams(requestId=request_id, reason="the caller gave up")
    )
    # Best effort: a session that is gone has no request left to cancel.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.send_notification(ClientNotification(notice)), 5)
