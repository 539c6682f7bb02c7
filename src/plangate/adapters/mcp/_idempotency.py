"""How a call's idempotency key reaches an MCP server (part of the adapters: MCP servers).

Every transport carries it in the `tools/call` request's `_meta`; the HTTP transports also send
it as an `Idempotency-Key` header, which HTTP servers and proxies already know. The session's
HTTP client is shared by calls with different keys, so the header is put on each request from
that request's own `_meta`, never on the client.
"""

from __future__ import annotations

import json
from typing import Any, cast

import httpx
from langchain_mcp_adapters.sessions import Connection
from mcp.shared._httpx_utils import create_mcp_http_client

__all__ = ("IDEMPOTENCY_HEADER", "IDEMPOTENCY_META_KEY", "with_key_header")

IDEMPOTENCY_HEADER = "Idempotency-Key"
"""The HTTP header carrying a call's idempotency key on the HTTP transports."""
IDEMPOTENCY_META_KEY = "idempotency_key"
"""The key in a `tools/call` request's `_meta` under which the call's idempotency key is sent."""

_HTTP_TRANSPORTS = frozenset({"streamable_http", "streamable-http", "http", "sse"})


def with_key_header(connection: Connection) -> Connection:
    """`connection` whose HTTP client sends each call's idempotency key as a header."""
    if connection.get("transport") not in _HTTP_TRANSPORTS:
        return connection
    settings: dict[str, Any] = dict(connection)
    make = settings.get("httpx_client_factory") or create_mcp_http_client

    def keyed_client(
        headers: dict[str, str] | None = None,
        timeout: httpx.Timeout | None = None,
        auth: httpx.Auth | None = None,
    ) -> httpx.AsyncClient:
        client = make(headers=headers, timeout=timeout, auth=auth)
        hooks = client.event_hooks
        client.event_hooks = {**hooks, "request": [*hooks.get("request", []), _key_header]}
        return client

    settings["httpx_client_factory"] = keyed_client
    return cast("Connection", settings)


async def _key_header(request: httpx.Request) -> None:
    """Give a request carrying an idempotency key in its `_meta` the same key as a header.

    The header goes on the request itself, not on the client: the session's client is shared
    by calls with different keys.
    """
    if request.method != "POST":
        return
    try:
        body = request.content
    except httpx.RequestNotRead:  # a streamed body; MCP's messages never are
        return
    if IDEMPOTENCY_META_KEY.encode() not in body:
        return
    try:
        message = json.loads(body)
    except ValueError:
        return
    params = message.get("params") if isinstance(message, dict) else None
    meta = params.get("_meta") if isinstance(params, dict) else None
    key = meta.get(IDEMPOTENCY_META_KEY) if isinstance(meta, dict) else None
    if isinstance(key, str):
        request.headers[IDEMPOTENCY_HEADER] = key
