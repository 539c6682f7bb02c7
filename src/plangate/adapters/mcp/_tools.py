"""Loading an MCP server's tools as LangChain tools a plan calls (part of the adapters: MCP
servers).

Each tool checks its arguments against the server's `inputSchema` before anything is sent (the
server would be the first to see a bad call otherwise), passes the step's idempotency key, and
turns the ways a call fails into the errors a profile tells apart: `InvalidArguments`, a
`ToolException` with the server's message, or a transient `MCPConnectionError`.
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Coroutine
from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, ToolException
from langchain_mcp_adapters.sessions import Connection
from mcp.types import CallToolResult, Tool

from plangate.adapters.mcp._errors import MCPConnectionError, is_lost, one_line, unwrap
from plangate.adapters.mcp._idempotency import IDEMPOTENCY_META_KEY
from plangate.adapters.mcp._loop import BACKGROUND
from plangate.adapters.mcp._results import output, result_text
from plangate.adapters.mcp._schemas import InputCheck, MCPArguments, MCPTool, metadata
from plangate.adapters.mcp._sessions import MCPSessions, session_key
from plangate.errors import AdapterError, PlangateUsageError
from plangate.nodes.tool_exec import IDEMPOTENCY_KEY, InvalidArguments

__all__ = ("LOAD_TIMEOUT", "amcp_tools", "mcp_tools")

LOAD_TIMEOUT = 30.0
"""Seconds an MCP server has, by default, to start and list its tools."""


async def amcp_tools(
    connection: Connection,
    *,
    prefix: str,
    timeout: float = LOAD_TIMEOUT,
    sessions: MCPSessions | None = None,
) -> list[BaseTool]:
    """Load the tools of an MCP server as LangChain tools named `prefix.<tool>`.

    The session opened to list the tools stays open, and the tools' calls use it.

    Args:
        connection: How to reach the server: a langchain-mcp-adapters `Connection` dict.
        prefix: The domain the tools are registered under: `billing` makes `refund`
            `billing.refund`. Must be non-empty and without dots.
        timeout: Seconds the server has to start and list its tools.
        sessions: Where the server's session is kept: by default the process's own
            (`MCPSessions.shared()`, closed at exit).

    Returns:
        One `StructuredTool` per server tool, for sync and async runs; pass them to
        `build_graph`.

    Raises:
        PlangateUsageError: `prefix` is empty or has a dot.
        AdapterError: The server cannot be started, reached or listed.

    Examples:
        >>> import sys
        >>> tools = await amcp_tools(  # doctest: +SKIP
        ...     {"transport": "stdio", "command": sys.executable, "args": ["server.py"]},
        ...     prefix="billing")
    """
    if not prefix or "." in prefix:
        raise PlangateUsageError(
            f"invalid MCP tool prefix {prefix!r}",
            hint="use one domain name without dots, such as 'billing'",
        )
    kept = sessions if sessions is not None else MCPSessions.shared()
    server = _describe(connection)
    try:
        listed = await BACKGROUND.wait(kept._list_tools(connection, timeout))
    except Exception as exc:  # whatever stops the listing, no tools can be set up
        error = unwrap(exc)
        reason = (
            f"no answer within {timeout:g} s"
            if isinstance(error, (TimeoutError, asyncio.TimeoutError)) and not str(error)
            else one_line(error)
        )
        raise AdapterError(
            f"cannot load tools from MCP server {server}: {reason}",
            source=server,
            hint=(
                "check that `command` and `args` start an MCP server on stdio"
                if connection.get("transport") == "stdio"
                else "check that the server is running and `url` is its MCP endpoint"
            ),
        ) from error
    return [_as_tool(tool, f"{prefix}.{tool.name}", connection, server, kept) for tool in listed]


def mcp_tools(
    connection: Connection,
    *,
    prefix: str,
    timeout: float = LOAD_TIMEOUT,
    sessions: MCPSessions | None = None,
) -> list[BaseTool]:
    """`amcp_tools` for sync code, whether or not the calling thread runs an event loop.

    Examples:
        >>> tools = mcp_tools({"transport": "streamable_http",  # doctest: +SKIP
        ...                    "url": "http://127.0.0.1:8000/mcp"}, prefix="billing")
    """
    # Loaded on the sessions' own loop: the calling thread's loop, if it has one, is busy.
    loading = amcp_tools(connection, prefix=prefix, timeout=timeout, sessions=sessions)
    return BACKGROUND.run(loading)


def _as_tool(
    tool: Tool, name: str, connection: Connection, server: str, sessions: MCPSessions
) -> BaseTool:
    check = InputCheck.of(tool)
    key = session_key(connection)

    def request(
        config: RunnableConfig, arguments: dict[str, Any]
    ) -> Coroutine[Any, Any, CallToolResult]:
        # LangChain does not validate arguments against a JSON-schema `args_schema`.
        problem = check.error(arguments)
        if problem is not None:
            where = "/".join(str(part) for part in problem.absolute_path)
            raise InvalidArguments(
                f"{name}: invalid arguments: {where + ': ' if where else ''}{problem.message}"
            )
        idempotency_key = config.get("metadata", {}).get(IDEMPOTENCY_KEY)
        meta = {IDEMPOTENCY_META_KEY: idempotency_key} if idempotency_key is not None else None
        return sessions._call_tool(connection, key, tool.name, arguments, meta)

    def failed(exc: Exception) -> Exception:
        """What to raise for `exc`, its `__cause__` set to the cause to raise it from."""
        error = unwrap(exc)
        if not is_lost(error):
            return error  # out of its group, with the cause it had
        lost = MCPConnectionError(
            f"{name}: MCP server {server} cannot be reached: {one_line(error)}",
            tool=name,
            server=server,
        )
        lost.__cause__ = error
        return lost

    def answer(result: CallToolResult) -> Any:
        if result.isError:
            raise ToolException(
                result_text(result) or f"{name} failed and the server gave no message"
            )
        return output(result)

    # LangChain passes the run config to the parameter typed `RunnableConfig`; its name only
    # has to stay clear of the tool's own arguments.
    async def acall(plangate_run_config: RunnableConfig, **arguments: Any) -> Any:
        calling = request(plangate_run_config, arguments)
        try:
            result = await BACKGROUND.wait(calling)
        except Exception as exc:
            error = failed(exc)
            raise error from error.__cause__
        return answer(result)

    # Sync runs wait for the call in their own thread, where an async-only tool would need an
    # event loop and a thread made for each call.
    def call(plangate_run_config: RunnableConfig, **arguments: Any) -> Any:
        calling = request(plangate_run_config, arguments)
        try:
            result = BACKGROUND.run(calling)
        except Exception as exc:
            error = failed(exc)
            raise error from error.__cause__
        return answer(result)

    arguments_model = type(
        f"{name}_arguments", (MCPArguments,), {"operation": check, "__module__": __name__}
    )
    return MCPTool(
        name=name,
        description=tool.description or "",
        args_schema=check.schema,
        func=call,
        coroutine=acall,
        metadata=metadata(tool),
        arguments_model=arguments_model,
    )


def _describe(connection: Connection) -> str:
    """The server, for messages: its URL, or its command line on stdio."""
    settings: dict[str, Any] = dict(connection)
    if settings.get("transport") == "stdio":
        return shlex.join([str(settings.get("command")), *map(str, settings.get("args") or [])])
    return str(settings.get("url", f"<{settings.get('transport')} server without a url>"))
