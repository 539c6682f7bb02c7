"""What an MCP tool's result becomes as a step's output (part of the adapters: MCP servers).

The structured content when the server sends one; otherwise the content, a text block holding a
JSON object or array parsed, so that later steps can reference its fields.
"""

from __future__ import annotations

import json
from typing import Any

from mcp.types import CallToolResult, TextContent

__all__ = ("output", "result_text")


def result_text(result: CallToolResult) -> str:
    """The result's text blocks, one per line (what an error result says)."""
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


def output(result: CallToolResult) -> Any:
    """The step's output: a single block alone, several as a list, none as `None`."""
    if result.structuredContent is not None:
        return result.structuredContent
    blocks = [
        _parsed(block.text)
        if isinstance(block, TextContent)
        else block.model_dump(mode="json", exclude_none=True)
        for block in result.content
    ]
    if not blocks:
        return None
    return blocks[0] if len(blocks) == 1 else blocks


def _parsed(text: str) -> Any:
    """JSON object or array text as data; any other text as is."""
    if not text.lstrip().startswith(("{", "[")):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text
