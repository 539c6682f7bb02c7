"""The tool registry: LangChain tools and plain callables, by the name plans call them."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol, TypeAlias

from langchain_core.tools import BaseTool, StructuredTool

from plangate.actions import METADATA_KEY, function_declaration
from plangate.errors import PlangateUsageError

__all__ = ("LazyTools", "ToolSource", "ToolsLike", "tool_registry")

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


def tool_registry(tools: ToolsLike) -> Mapping[str, BaseTool]:
    """Name -> tool for a sequence of tools (named by their `.name` / `__name__`) or a mapping
    (named by its keys, so that `{"crm.lookup": lookup}` registers a plain function under a
    dotted name).

    Raises:
        PlangateUsageError: Something is not a tool or callable, or two tools share a name.
    """
    if isinstance(tools, LazyTools):  # loaded as its tools are looked up, not now
        return tools
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


class ToolSource(Protocol):
    """Tools reached only when needed (an MCP server, an OpenAPI document): every tool it
    gives is named `<prefix>.<name>`; a source without a prefix is loaded for any name no
    other source has."""

    @property
    def prefix(self) -> str | None: ...

    @property
    def description(self) -> str: ...

    def load(self) -> Sequence[BaseTool]: ...


class LazyTools(Mapping[str, BaseTool]):
    """Tools by name, some of them from sources loaded when first looked up: `tools[name]` and
    `name in tools` load the source whose prefix `name` has; iterating loads every source.

    Loading is thread-safe and happens once per source; a source that fails to load raises
    its error to whoever looked, and is tried again on the next look.
    """

    def __init__(self, tools: Mapping[str, BaseTool], sources: Sequence[ToolSource] = ()) -> None:
        self._tools: dict[str, BaseTool] = dict(tools)
        self._source_of: dict[str, str] = dict.fromkeys(self._tools, "python")
        self._waiting: list[ToolSource] = list(sources)
        self._lock = threading.Lock()

    @property
    def loaded(self) -> Mapping[str, BaseTool]:
        """The tools loaded so far."""
        return self._tools

    @property
    def unloaded(self) -> bool:
        """Whether some source has not been loaded yet (none failed, or it would be retried)."""
        return bool(self._waiting)

    def source_of(self, name: str) -> str:
        """Where tool `name` comes from: `python`, or its source's description."""
        self[name]
        return self._source_of[name]

    def _load(self, wanted: Callable[[ToolSource], bool]) -> None:
        with self._lock:
            for source in [s for s in self._waiting if wanted(s)]:
                tools = tool_registry(list(source.load()))
                clash = next((name for name in tools if name in self._tools), None)
                if clash is not None:
                    raise PlangateUsageError(
                        f"two tools are named {clash!r} ({self._source_of[clash]} and "
                        f"{source.description})",
                        hint="give the sources distinct prefixes",
                    )
                self._tools.update(tools)
                self._source_of.update(dict.fromkeys(tools, source.description))
                self._waiting.remove(source)

    def __getitem__(self, name: str) -> BaseTool:
        if name not in self._tools and self._waiting:
            prefix = name.split(".", 1)[0] if "." in name else None
            self._load(lambda source: source.prefix == prefix)
            if name not in self._tools:
                self._load(lambda source: source.prefix is None)
        return self._tools[name]

    def __iter__(self) -> Iterator[str]:
        self._load(lambda source: True)
        return iter(dict(self._tools))

    def __len__(self) -> int:
        self._load(lambda source: True)
        return len(self._tools)
