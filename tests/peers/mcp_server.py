"""A real MCP server for the adapter tests, written with the `mcp` package's FastMCP.

Run it as `python tests/peers/mcp_server.py stdio LOG` or `python tests/peers/mcp_server.py
http PORT LOG`. Every tool call is appended to the JSONL file LOG as one object: the tool, its
arguments, the idempotency key found in the request's `_meta`, and the `Idempotency-Key` HTTP
header (`null` on stdio), so that tests can count calls and check what reached the server.

Its tools declare what they do as MCP annotations: `lookup` only reads, `refund` cannot be
undone, and `void` says nothing (so plangate takes it for an `execute`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from mcp.server.fastmcp import Context, FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.types import ToolAnnotations


def serve(transport: str, log: Path, port: int = 0) -> None:
    server = FastMCP("billing-peer", host="127.0.0.1", port=port, log_level="WARNING")

    def record(ctx: Context, tool: str, args: dict[str, Any]) -> None:
        meta = ctx.request_context.meta
        request = ctx.request_context.request
        entry = {
            "tool": tool,
            "args": args,
            "meta_key": (meta.model_extra or {}).get("idempotency_key") if meta else None,
            "header_key": request.headers.get("idempotency-key") if request else None,
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

    if transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http")


if __name__ == "__main__":
    if sys.argv[1] == "stdio":
        serve("stdio", Path(sys.argv[2]))
    else:
        serve("http", Path(sys.argv[3]), port=int(sys.argv[2]))
