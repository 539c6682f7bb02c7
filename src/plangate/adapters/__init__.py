"""Binding the tool names that plans use to things that run."""

from plangate.adapters.demo import demo_toolkit
from plangate.adapters.registry import ToolsLike, tool_registry

__all__ = ("ToolsLike", "demo_toolkit", "tool_registry")
