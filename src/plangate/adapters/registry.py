"""The tool registry: LangChain tools and plain callables, by the name plans call them."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

from langchain_core.tools import BaseTool, StructuredTool

from plangate.actions import METADATA_KEY, function_declaration
from plangate.errors import PlangateUsageError

__all__ = ("ToolsLike", "tool_registry")

ToolLike: TypeAlias = "BaseTool | Callable[..., Any]"
ToolsLike: TypeAlias = (
    "Sequence[BaseTool | Callable[..., Any]] | Mapping[str, BaseTool | Callable[..., Any]]"
)


def _as_tool(tool: BaseTool | Callable[..., Any], name: str | None = None) -> BaseTool:
    if isinstance(tool, BaseTool):
        if name is None or name == tool.name:
            return tool
        renamed: BaseTool = tool.model_copy(update={"name": name})
        return renamed
    if callable(tool):
        tool_name = name or getattr(tool, "__name__", None) or repr(tool)
        # LangChain insists on a description; a bare function without a docstring still works.
        description = (getattr(tool, "__doc__", None) or "").strip() or f"Call {tool_name}."
        declared = function_declaration(tool)
        metadata = {METADATA_KEY: declared} if declared else None
        if inspect.iscoroutinefunction(tool):
            return StructuredTool.from_function(
                coroutine=tool, name=tool_name, description=description, metadata=metadata
            )
        return StructuredTool.from_function(
            tool, name=tool_name, description=description, metadata=metadata
        )
    raise PlangateUsageError(
        f"cannot use {tool!r} as a tool",
        hint="pass LangChain BaseTools or plain functions",
    )


def tool_registry(tools: ToolsLike) -> dict[str, BaseTool]:
    """Name -> tool for a sequence of tools (named by their `.name` / `__name__`) or a mapping
    (named by its keys, so that `{"crm.lookup": lookup}` registers a plain function under a
    dotted name).

    Raises:
        PlangateUsageError: Something is not a tool or callable, or two tools share a name.
    """
    items = tools.items() if isinstance(tools, Mapping) else ((None, t) for t in tools)
    registry: dict[str, BaseTool] = {}
    for name, tool in items:
        wrapped = _as_tool(tool, name)
        if wrapped.name in registry:
            raise PlangateUsageError(
                f"two tools are named {wrapped.name!r}", hint="tool names must be unique"
            )
        registry[wrapped.name] = wrapped
    return registry
