"""A real MCP server for the adapter tests, written with the `mcp` package's FastMCP.

Run it as `python tests/peers/mcp_server.py stdio LOG` or `python tests/peers/mcp_server.py
http PORT LOG`. Every tool call is appended to the JSONL file LOG as one object: the tool, its
arguments, the idempotency key found in the request's `_meta`, the `Idempotency-Key` HTTP
header (`null` on stdio), the server's process id and its MCP session id over HTTP (`null` on
stdio, where the process is the session), so that tests can count calls, check what reached the
server and through which session.

Its tools declare what they do as MCP annotations: `lookup` only reads, `refund` cannot be
undone, and `void` says nothing (so plangate takes it for an `execute`). `counter` counts its
calls in the server's memory, the state a stdio server loses with its process. `slow` sleeps,
logging an entry with `event: "start"` and then `"finish"`, or `"cancelled"` when the client
cancels the call first.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
from mcp.server.fastmcp import Context, FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.types import ToolAnnotations


def serve(transport: str, log: Path, port: int = 0) -> None:
    server = FastMCP("billing-peer", host="127.0.0.1", port=port, log_level="WARNING")

    calls = itertools.count(1)

    def record(ctx: Context, tool: str, args: dict[str, Any], **extra: Any) -> None:
        meta = ctx.request_context.meta
        request = ctx.request_context.request
        entry = {
            "tool": tool,
            "args": args,
            "meta_key": (meta.model_extra or {}).get("idempotency_key") if meta else None,
            "header_key": request.headers.get("idempotency-key") if request else None,
            "pid": os.getpid(),
            "http_session": request.headers.get("mcp-session-id") if request else None,
            **extra,
        }
        with log.open("a") as file:
            file.write(json.dumps(entry) + "\n")

    @server.tool(annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=True))
    def refund(invoice_id: str, amount: float, ctx: Context) -> dict[str, Any]:
        """Refund `amount` of invoice `invoice_id`."""
        record(ctx, "refund", {"invoice_id": invoice_id, "amount": amount})
        return {"invoice_id": invoice_id, "refunded": amount}

    @server.tool(structured_output=False, annotations=ToolAnnotations(readOnlyHint=True))
    def lookup(invoice_id: str, ctx: Context) -> str:
        """Describe invoice `invoice_id` (as JSON text, with no structured output)."""
        record(ctx, "lookup", {"invoice_id": invoice_id})
        return json.dumps({"invoice_id": invoice_id, "status": "paid"})

    @server.tool()
    def void(invoice_id: str, ctx: Context) -> str:
        """Void an invoice; always fails, as a server-side error result."""
        record(ctx, "void", {"invoice_id": invoice_id})
        raise ToolError(f"invoice {invoice_id} is already settled")

    @server.tool(annotations=ToolAnnotations(readOnlyHint=False, idempotentHint=False))
    def counter(ctx: Context) -> dict[str, int]:
        """Count the calls of this tool that the server's process has had: 1, then 2, ..."""
        count = next(calls)
        record(ctx, "counter", {}, count=count)
        return {"count": count, "pid": os.getpid()}

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    async def slow(seconds: float, ctx: Context) -> str:
        """Take `seconds` to answer."""
        record(ctx, "slow", {"seconds": seconds}, event="start")
        try:
            await anyio.sleep(seconds)
        except anyio.get_cancelled_exc_class():
            record(ctx, "slow", {"seconds": seconds}, event="cancelled")
            raise
        record(ctx, "slow", {"seconds": seconds}, event="finish")
        return "done"

    if transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http")


if __name__ == "__main__":
    if sys.argv[1] == "stdio":
        serve("stdio", Path(sys.argv[2]))
    else:
        serve("http", Path(sys.argv[3]), port=int(sys.argv[2]))
