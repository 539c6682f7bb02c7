"""Binding the tool names that plans use to things that run.

In-process tools and their mocks are here; MCP servers (`plangate.adapters.mcp`, extra
`plangate[mcp]`) and HTTP APIs described by OpenAPI (`plangate.adapters.openapi`, extra
`plangate[http]`) have modules of their own, imported only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plangate._lazy import lazy_exports

if TYPE_CHECKING:
    from plangate.adapters.demo import demo_mocks, demo_toolkit
    from plangate.adapters.mock import MockFixtures, load_fixtures, mock_tools
    from plangate.adapters.registry import ToolsLike, tool_registry

# Each name's module is imported on first use (see `plangate._lazy`).
lazy_exports(
    __name__,
    {
        "MockFixtures": "plangate.adapters.mock",
        "ToolsLike": "plangate.adapters.registry",
        "demo_mocks": "plangate.adapters.demo",
        "demo_toolkit": "plangate.adapters.demo",
        "load_fixtures": "plangate.adapters.mock",
        "mock_tools": "plangate.adapters.mock",
        "tool_registry": "plangate.adapters.registry",
    },
)

__all__ = (
    "MockFixtures",
    "ToolsLike",
    "demo_mocks",
    "demo_toolkit",
    "load_fixtures",
    "mock_tools",
    "tool_registry",
)
