"""What a failed MCP call means (part of the adapters: MCP servers).

A call can fail on the server (an error result, which the tool raises as a `ToolException`), or
on the way there. A server that went away is a transient `MCPConnectionError`, which a profile
retries; of those, a request that provably never reached the server may be sent again at once
on a new session (`undelivered`), since it cannot have done its work.
"""

from __future__ import annotations

from typing import Any

import anyio
import httpx
from mcp import McpError
from mcp.types import CONNECTION_CLOSED

__all__ = ("MCPConnectionError", "is_lost", "one_line", "undelivered", "unwrap")

# What a server that went away looks like, once anyio's exception groups are unwrapped: the
# process or socket is gone (OSError, httpx), a stream closed under the session (anyio), or
# the session noticed it first (McpError CONNECTION_CLOSED).
_LOST = (OSError, httpx.TransportError, anyio.ClosedResourceError, anyio.BrokenResourceError)
# The part of those that shows a request never reached the server (the session's streams were
# closed before it was written, the pipe was broken, the socket never connected), so that
# sending it again on a new session cannot do its work twice.
_UNDELIVERED = (
    anyio.ClosedResourceError,
    anyio.BrokenResourceError,
    BrokenPipeError,
    httpx.ConnectError,
)
# What the streamable HTTP transport answers, as a JSON-RPC error with this (positive) code,
# when the server no longer knows the session (a 404: it restarted); the request was not run.
_SESSION_TERMINATED = 32600


class MCPConnectionError(ConnectionError):
    """An MCP server could not be reached during a call; the step fails as a transient error,
    so a profile's `retry` policy tries it again (with the same idempotency key).

    Attributes:
        tool: The plangate name of the tool being called (`billing.refund`).
        server: The server, as its URL or its command line.
    """

    def __init__(self, message: str, *, tool: str, server: str) -> None:
        self.tool = tool
        self.server = server
        super().__init__(message)


def unwrap(error: Exception) -> Exception:
    """The first real error inside anyio's (nested) exception groups."""
    inner: Any = getattr(error, "exceptions", None)
    while inner:
        error = inner[0]
        inner = getattr(error, "exceptions", None)
    return error


def is_lost(error: Exception) -> bool:
    """Whether `error` shows that the server went away."""
    if isinstance(error, McpError):
        return error.error.code in (CONNECTION_CLOSED, _SESSION_TERMINATED)
    return isinstance(error, _LOST)


def undelivered(error: Exception) -> bool:
    """Whether `error` shows that the request never reached the server."""
    if isinstance(error, McpError):
        return error.error.code == _SESSION_TERMINATED
    return isinstance(error, _UNDELIVERED)


def one_line(error: BaseException) -> str:
    """`error` for a message: its type and the first line of what it says."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
