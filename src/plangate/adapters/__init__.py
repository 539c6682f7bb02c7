"""Binding the tool names that plans use to things that run.

In-process tools and their mocks are here; MCP servers (`plangate.adapters.mcp`, extra
`plangate[mcp]`) and HTTP APIs described by OpenAPI (`plangate.adapters.openapi`, extra
`plangate[http]`) have modules of their own, imported only when used.
"""

from plangate.adapters.demo import demo_mocks, demo_toolkit
from plangate.adapters.mock import MockFixtures, load_fixtures, mock_tools
from plangate.adapters.registry import ToolsLike, tool_registry

__all__ = (
    "MockFixtures",
    "ToolsLike",
    "demo_mocks",
    "demo_toolkit",
    "load_fixtures",
    "mock_tools",
    "tool_registry",
)
