"""The project file (`plangate.project`): the tools and mocks its entries name. Python toolkits
and mocks are imported when a graph is built; an MCP server or an OpenAPI document is a source
that `LazyTools` loads when a run first needs one of its tools, so reading runs reaches none.

LangChain's tools and the adapters are imported in the functions that make tools, never when a
project is read (see `plangate.project`).
"""

from __future__ import annotations

import contextlib
import importlib
import re
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plangate.errors import AdapterError, PlangateUsageError
from plangate.project._errors import ProjectError
from plangate.project._expand import Expander
from plangate.project._spec import (
    MCPServer,
    MCPTools,
    OpenAPITools,
    PythonMocks,
    PythonTools,
    ToolEntry,
)

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

    from plangate.adapters.registry import LazyTools, ToolSource


def load_tools(
    file: Path,
    entries: Sequence[ToolEntry],
    servers: Mapping[int, Mapping[str, MCPServer]],
    environ: Mapping[str, str],
) -> LazyTools:
    """The tools of `entries` (the file's `tools`): Python toolkits now, MCP servers (`servers`,
    by the entry's position) and OpenAPI documents when a run first needs one of their tools."""
    from plangate.adapters.registry import LazyTools

    eager: dict[str, BaseTool] = {}
    sources: list[ToolSource] = []
    for index, entry in enumerate(entries):
        key = f"tools.{index}"
        if isinstance(entry, PythonTools):
            expand = Expander(file, key, environ)
            found = _called(file, key, _import(file, key, entry.python), expand(entry.args))
            for name, tool in _registry(file, key, found).items():
                if name in eager:
                    raise ProjectError(file, f"two tools are named {name!r}", key=key)
                eager[name] = tool
        elif isinstance(entry, MCPTools):
            sources.extend(
                _MCPServerSource(file, key, prefix, server, entry.timeout, environ)
                for prefix, server in servers[index].items()
            )
        else:
            sources.append(_OpenAPISource(file, key, entry, environ))
    return LazyTools(eager, sources)


def load_mocks(
    file: Path,
    root: Path,
    entries: Sequence[str | PythonMocks],
    fixtures: Sequence[str],
    environ: Mapping[str, str],
) -> list[BaseTool]:
    """The mocks of `entries` (the file's `fixtures`; a relative file from `root`), then those
    of `fixtures` (files), a later one replacing an earlier one of the same name."""
    from plangate.adapters.mock import mock_tools

    found: dict[str, BaseTool] = {}
    for index, entry in enumerate(entries):
        key = f"fixtures.{index}"
        if isinstance(entry, PythonMocks):
            mocks = _called(file, key, _import(file, key, entry.python), {})
            found.update(_registry(file, key, mocks))
        else:
            path = root / Expander(file, key, environ)(entry)
            try:
                mocks = mock_tools(path)
            except AdapterError as exc:
                raise ProjectError(file, exc.message, key=key, hint=exc.hint) from None
            found.update({mock.name: mock for mock in mocks})
    found.update({mock.name: mock for mock in mock_tools(*fixtures)})
    return list(found.values())


# --- Python ------------------------------------------------------------------------------------

# One import at a time: `_import` may swap modules in `sys.modules` (see there).
_IMPORTING = threading.Lock()


def _import(file: Path, key: str, target: str) -> Any:
    """`module:attribute`, imported with the project's folder first on the path.

    A module of the project's own folder (`tools.py` beside the file) is this project's even
    when another project of the same process (a server going on with runs of several projects)
    imported one of the same name: that one leaves `sys.modules` (the tools made from it keep
    working) and this one is imported."""
    module_name, _, attribute = target.partition(":")
    folder = file.parent
    top = module_name.split(".", 1)[0]
    local = (folder / f"{top}.py").is_file() or (folder / top / "__init__.py").is_file()
    with _IMPORTING:
        if str(folder) not in sys.path or (local and sys.path[0] != str(folder)):
            with contextlib.suppress(ValueError):
                sys.path.remove(str(folder))
            sys.path.insert(0, str(folder))
        loaded = sys.modules.get(top)
        if local and loaded is not None and not _within(getattr(loaded, "__file__", None), folder):
            for name in [n for n in sys.modules if n == top or n.startswith(f"{top}.")]:
                del sys.modules[name]
        try:
            found: Any = importlib.import_module(module_name)
        except ImportError as exc:
            raise ProjectError(file, f"cannot import {module_name!r}: {exc}", key=key) from None
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise ProjectError(file, f"{module_name!r} has no attribute {attribute!r}", key=key)
        found = getattr(found, part)
    return found


def _within(path: str | None, folder: Path) -> bool:
    return path is not None and Path(path).resolve().is_relative_to(folder)


def _called(file: Path, key: str, found: Any, args: Mapping[str, Any]) -> Any:
    from langchain_core.tools import BaseTool

    if callable(found) and not isinstance(found, BaseTool):
        try:
            return found(**args)
        except PlangateUsageError:
            raise
        except Exception as exc:  # the project's own code: say where it failed, in one line
            raise ProjectError(file, f"{type(exc).__name__}: {exc}", key=key) from None
    if args:
        raise ProjectError(file, "args given, but the attribute is not callable", key=key)
    return found


def _registry(file: Path, key: str, found: Any) -> Mapping[str, BaseTool]:
    if not isinstance(found, (Mapping, list, tuple)):
        raise ProjectError(
            file, f"expected a list or mapping of tools, got {type(found).__name__}", key=key
        )
    from plangate.adapters.registry import tool_registry

    try:
        return tool_registry(found)
    except PlangateUsageError as exc:
        raise ProjectError(file, exc.message, key=key, hint=exc.hint) from None


# --- MCP servers and OpenAPI documents, loaded when first needed ------------------------------


@dataclass(frozen=True)
class _MCPServerSource:
    """One MCP server's tools, named `<server>.<tool>`, loaded when first needed."""

    file: Path
    key: str
    prefix: str
    server: MCPServer
    timeout: float
    environ: Mapping[str, str]

    @property
    def description(self) -> str:
        return f"mcp {self.prefix}"

    def load(self) -> Sequence[BaseTool]:
        from plangate.adapters.mcp import mcp_tools

        expand = Expander(self.file, self.key, self.environ)
        settings = expand(self.server.model_dump(exclude_none=True))
        # Outside the `try`: its `ProjectError` names the file and entry already.
        connection = _connection(self.file, self.key, settings)
        try:
            return mcp_tools(connection, prefix=self.prefix, timeout=self.timeout)
        except PlangateUsageError as exc:
            raise ProjectError(
                self.file, expand.hide(exc.message), key=self.key, hint=exc.hint
            ) from None


def _connection(file: Path, key: str, settings: dict[str, Any]) -> Any:
    """A langchain-mcp-adapters connection for one `mcpServers` entry."""
    kind = settings.get("type")
    if settings.get("command"):
        connection = {
            "transport": "stdio",
            "command": settings["command"],
            "args": settings.get("args", []),
            "cwd": str((file.parent / settings.get("cwd", ".")).resolve()),
        }
        if settings.get("env") is not None:
            connection["env"] = settings["env"]
        return connection
    if settings.get("url"):
        return {
            "transport": "sse" if kind == "sse" else "streamable_http",
            "url": settings["url"],
            **({"headers": settings["headers"]} if settings.get("headers") else {}),
        }
    raise ProjectError(file, "an MCP server needs `command` (stdio) or `url`", key=key)


@dataclass(frozen=True)
class _OpenAPISource:
    """An OpenAPI document's operations, read when one of its tools is first needed."""

    file: Path
    key: str
    entry: OpenAPITools
    environ: Mapping[str, str]

    @property
    def prefix(self) -> str | None:
        return self.entry.prefix

    @property
    def description(self) -> str:
        return "openapi" + (f" {self.prefix}" if self.prefix else "")

    def load(self) -> Sequence[BaseTool]:
        from plangate.adapters.openapi import openapi_tools

        expand = Expander(self.file, self.key, self.environ)
        document = expand(self.entry.openapi)
        if not re.match(r"^https?://", document):
            document = str((self.file.parent / document).resolve())
        try:
            return openapi_tools(
                document,
                prefix=self.prefix,
                include=self.entry.include,
                exclude=self.entry.exclude,
                # `openapi_tools` reads `${VAR}` in credentials and headers itself, and hides
                # what they give in every answer it passes on.
                headers=self.entry.headers,
                auth=self.entry.auth,
                base_url=expand(self.entry.base_url),
                timeout=self.entry.timeout,
            )
        except PlangateUsageError as exc:
            raise ProjectError(
                self.file, expand.hide(exc.message), key=self.key, hint=exc.hint
            ) from None
