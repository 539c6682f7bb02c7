"""Tools served by an MCP server, for plans to call: `mcp_tools(connection, prefix="billing")`.

Needs the `mcp` extra (from a checkout: `pip install '.[mcp]'`). `connection` is a
langchain-mcp-adapters `Connection` dict, the same as one server's entry in a
`MultiServerMCPClient` config: stdio
(`{"transport": "stdio", "command": ..., "args": [...]}`), streamable HTTP
(`{"transport": "streamable_http", "url": ...}`), SSE or websocket.

Names:
    The server's tool `refund` loaded with `prefix="billing"` is registered as `billing.refund`,
    so plans call it by that name and budgets count it in domain `billing`.

Sessions:
    Every call opens a session of its own (a new process on stdio) and closes it when done, as
    `MultiServerMCPClient` does without an explicit session. A tool is therefore not tied to the
    event loop that loaded it: sync runs call it on a loop of their own in a worker thread.

Actions:
    A tool's MCP annotations (`ToolAnnotations`) are put in its `metadata` as
    langchain-mcp-adapters puts them (`annotations.model_dump()`, and the tool's `_meta` under
    `_meta`), and plangate trusts them over a plan: `readOnlyHint: true` makes the tool a `read`;
    any other annotated tool is an `execute`, irreversible too when `destructiveHint: true`. A
    tool without annotations is an `execute`. A profile's `tool_actions` overrides both; a plan
    may raise a tool's action, never lower it (see `plangate.actions`).

Arguments:
    A tool's `get_input_schema()` is a pydantic model standing for its MCP `inputSchema`: its
    `model_json_schema()` is that schema, and `model_validate` checks arguments against it (a
    `ValidationError` located at the field at fault). Approval requests show it to the approver
    and an `edit` decision's args are checked with it; which keys are allowed is the schema's
    `additionalProperties` to say.

Idempotency:
    The idempotency key plangate passes each call (`config["metadata"]`, see
    `plangate.nodes.tool_exec.IDEMPOTENCY_KEY`) reaches the server in the request's `_meta`
    under `idempotency_key` on every transport, and as an `Idempotency-Key` HTTP header on the
    HTTP transports (streamable HTTP, SSE). A step called again (a resume after a crash, a retry)
    sends the same key, so a server that remembers keys can do the work once.

Outputs:
    A step's output is the result's structured content when the server sends one (a JSON
    object; FastMCP wraps a tool's non-object return value as `{"result": value}`). Otherwise
    it is the content: a text block holding a JSON object or array is parsed, other text stays a
    string, any other block is its MCP JSON form; a single block is returned alone, several as a
    list, none as `None`.

Errors:
    A server that cannot be reached or listed at load time raises `AdapterError`. During a run:
    arguments that do not match the tool's input schema fail the step with `InvalidArguments`
    (`error_type: "invalid_arguments"`) before anything is sent; an error result from the
    server (`isError`) fails it with a `ToolException` carrying the server's message; a server
    that cannot be reached fails it with `MCPConnectionError`, a `ConnectionError`, so
    profiles retry it as transient.

Example:
    >>> from plangate import build_graph, open_checkpointer
    >>> from plangate.adapters.mcp import mcp_tools
    >>> tools = mcp_tools({"transport": "streamable_http", "url": "http://127.0.0.1:8000/mcp"},
    ...                   prefix="billing")  # doctest: +SKIP
    >>> graph = build_graph(tools, profile="smb",
    ...                     checkpointer=open_checkpointer("runs.db"))  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import copy
import json
import shlex
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from plangate.adapters._json_schema import JSONSchemaArguments
from plangate.errors import AdapterError, PlangateUsageError
from plangate.nodes.tool_exec import IDEMPOTENCY_KEY, InvalidArguments

try:
    import anyio
    import httpx
    from jsonschema import validators  # type: ignore[import-untyped]
    from jsonschema.exceptions import best_match  # type: ignore[import-untyped]
    from langchain_mcp_adapters.sessions import Connection, create_session
    from mcp import ClientSession, McpError
    from mcp.types import CONNECTION_CLOSED, CallToolResult, TextContent, Tool
    from referencing import Registry
except ImportError as exc:
    raise ImportError(
        "MCP tools need langchain-mcp-adapters: install plangate's `mcp` extra "
        "(from a checkout: pip install '.[mcp]')"
    ) from exc

__all__ = (
    "IDEMPOTENCY_HEADER",
    "IDEMPOTENCY_META_KEY",
    "LOAD_TIMEOUT",
    "MCPConnectionError",
    "amcp_tools",
    "mcp_tools",
)

IDEMPOTENCY_HEADER = "Idempotency-Key"
"""The HTTP header carrying a call's idempotency key on the HTTP transports."""
IDEMPOTENCY_META_KEY = "idempotency_key"
"""The key in a `tools/call` request's `_meta` under which the call's idempotency key is sent."""

_HTTP_TRANSPORTS = frozenset({"streamable_http", "streamable-http", "http", "sse"})
# What a server that went away looks like, once anyio's exception groups are unwrapped: the
# process or socket is gone (OSError, httpx), a stream closed under the session (anyio), or
# the session noticed it first (McpError CONNECTION_CLOSED).
_LOST = (OSError, httpx.TransportError, anyio.ClosedResourceError, anyio.BrokenResourceError)

_T = TypeVar("_T")


class MCPConnectionError(ConnectionError):
    """An MCP server could not be reached during a call; the step fails as a transient error,
    so a profile's `retry` policy tries it again (with the same idempotency key).

    Attributes:
        tool: The plangate name of the tool being called (`billing.refund`).
        server: The server, as its URL or its command line.
    """

    def __init__(self, message: str, *, tool: str, server: str) -> None:
        self.tool = tool
        self.server = server
        super().__init__(message)


LOAD_TIMEOUT = 30.0
"""Seconds an MCP server has, by default, to start and list its tools."""


async def amcp_tools(
    connection: Connection, *, prefix: str, timeout: float = LOAD_TIMEOUT
) -> list[BaseTool]:
    """Load the tools of an MCP server as LangChain tools named `prefix.<tool>`.

    Args:
        connection: How to reach the server: a langchain-mcp-adapters `Connection` dict.
        prefix: The domain the tools are registered under: `billing` makes `refund`
            `billing.refund`. Must be non-empty and without dots.
        timeout: Seconds the server has to start and list its tools.

    Returns:
        One async-only `StructuredTool` per server tool; pass them to `build_graph`.

    Raises:
        PlangateUsageError: `prefix` is empty or has a dot.
        AdapterError: The server cannot be started, reached or listed.

    Example:
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
    server = _describe(connection)
    try:
        listed = await asyncio.wait_for(_in_session(connection, _list_tools), timeout)
    except Exception as exc:  # whatever stops the listing, no tools can be set up
        error = _unwrap(exc)
        reason = (
            f"no answer within {timeout:g} s"
            if isinstance(error, TimeoutError) and not str(error)
            else _one_line(error)
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
    return [_as_tool(tool, f"{prefix}.{tool.name}", connection, server) for tool in listed]


def mcp_tools(
    connection: Connection, *, prefix: str, timeout: float = LOAD_TIMEOUT
) -> list[BaseTool]:
    """`amcp_tools` for sync code, whether or not the calling thread runs an event loop.

    Example:
        >>> tools = mcp_tools({"transport": "streamable_http",  # doctest: +SKIP
        ...                    "url": "http://127.0.0.1:8000/mcp"}, prefix="billing")
    """
    # `asyncio.run` refuses to start inside a running loop (a notebook, an async app), so the
    # tools are loaded on a loop of their own in a worker thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        loading = amcp_tools(connection, prefix=prefix, timeout=timeout)
        return pool.submit(asyncio.run, loading).result()


@dataclass(frozen=True, slots=True)
class _InputCheck:
    """An MCP tool's `inputSchema` and the JSON Schema validator checking arguments with it."""

    schema: dict[str, Any]
    validator: Any

    @classmethod
    def of(cls, tool: Tool) -> _InputCheck:
        schema = tool.inputSchema
        validator_class = validators.validator_for(schema)
        # An empty registry, as the MCP client uses: a `$ref` never fetches anything remote.
        return cls(schema, validator_class(schema, registry=Registry()))

    def error(self, arguments: Any) -> Any:
        """The most telling `jsonschema` error about `arguments`, or `None`."""
        return best_match(self.validator.iter_errors(arguments))

    def problem(self, arguments: Any) -> tuple[str, str] | None:
        error = self.error(arguments)
        if error is None:
            return None
        return ".".join(str(part) for part in error.absolute_path), str(error.message)


class _MCPArguments(JSONSchemaArguments):
    """An MCP tool's arguments as a pydantic model (subclassed per tool with `operation`)."""

    @classmethod
    def _refusal(cls, data: Any, field: str, message: str) -> Exception:
        # A ValidationError located at the field, so that whoever checks an edit with this model
        # (plangate's approvals) names that field, not the arguments as a whole.
        return ValidationError.from_exception_data(
            cls.__name__,
            [
                InitErrorDetails(
                    type=PydanticCustomError("json_schema", "{reason}", {"reason": message}),
                    loc=(field,) if field else (),
                    input=data,
                )
            ],
        )

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        # The schema as the server sent it. Pydantic's generator would take its `$ref`s (FastMCP
        # puts argument models in `$defs`) for references of its own, and fail on them.
        return copy.deepcopy(cls.operation.schema)


class _MCPTool(StructuredTool):
    """A StructuredTool whose input schema is the MCP tool's own."""

    arguments_model: type[BaseModel]

    def get_input_schema(self, config: RunnableConfig | None = None) -> type[BaseModel]:
        # LangChain's own model for a JSON Schema `args_schema` accepts anything.
        return self.arguments_model


def _metadata(tool: Tool) -> dict[str, Any] | None:
    """The tool's annotations and `_meta`, shaped as langchain-mcp-adapters shapes them, where
    `plangate.actions` reads the annotations as the tool's trusted action."""
    annotations = tool.annotations.model_dump() if tool.annotations is not None else {}
    meta = {"_meta": tool.meta} if tool.meta is not None else {}
    return {**annotations, **meta} or None


def _as_tool(tool: Tool, name: str, connection: Connection, server: str) -> BaseTool:
    check = _InputCheck.of(tool)

    # LangChain passes the run config to the parameter typed `RunnableConfig`; its name only
    # has to stay clear of the tool's own arguments.
    async def call(plangate_run_config: RunnableConfig, **arguments: Any) -> Any:
        # LangChain does not validate arguments against a JSON-schema `args_schema`.
        problem = check.error(arguments)
        if problem is not None:
            where = "/".join(str(part) for part in problem.absolute_path)
            raise InvalidArguments(
                f"{name}: invalid arguments: {where + ': ' if where else ''}{problem.message}"
            )
        key = plangate_run_config.get("metadata", {}).get(IDEMPOTENCY_KEY)

        async def call_tool(session: ClientSession) -> CallToolResult:
            meta = {IDEMPOTENCY_META_KEY: key} if key is not None else None
            return await session.call_tool(tool.name, arguments, meta=meta)

        try:
            result = await _in_session(_with_key(connection, key), call_tool)
        except Exception as exc:
            error = _unwrap(exc)
            if _is_lost(error):
                raise MCPConnectionError(
                    f"{name}: MCP server {server} cannot be reached: {_one_line(error)}",
                    tool=name,
                    server=server,
                ) from error
            raise error from error.__cause__  # out of its group, with the cause it had
        if result.isError:
            raise ToolException(_text(result) or f"{name} failed and the server gave no message")
        return _output(result)

    arguments_model = type(
        f"{name}_arguments", (_MCPArguments,), {"operation": check, "__module__": __name__}
    )
    return _MCPTool(
        name=name,
        description=tool.description or "",
        args_schema=check.schema,
        coroutine=call,
        metadata=_metadata(tool),
        arguments_model=arguments_model,
    )


async def _in_session(connection: Connection, work: Callable[[ClientSession], Awaitable[_T]]) -> _T:
    """`work` done in a session of its own."""
    outcome: list[_T] = []
    failure: Exception | None = None
    async with create_session(connection) as session:
        await session.initialize()
        # Raised inside the session, an error can be swallowed by the transport's task group
        # when the server disconnects (as langchain-mcp-adapters notes), so it leaves the block
        # as a value.
        try:
            outcome.append(await work(session))
        except Exception as exc:
            failure = exc
    if failure is not None:
        raise failure
    if not outcome:
        raise ConnectionError("the MCP session closed before the server answered")
    return outcome[0]


async def _list_tools(session: ClientSession) -> list[Tool]:
    tools: list[Tool] = []
    cursor: str | None = None
    while True:
        page = await session.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.nextCursor
        if not cursor:
            return tools


def _with_key(connection: Connection, key: str | None) -> Connection:
    """`connection` sending `key` as the `Idempotency-Key` header, if its transport is HTTP."""
    if key is None or connection.get("transport") not in _HTTP_TRANSPORTS:
        return connection
    keyed: dict[str, Any] = dict(connection)
    keyed["headers"] = {**(keyed.get("headers") or {}), IDEMPOTENCY_HEADER: key}
    return cast("Connection", keyed)


def _unwrap(error: Exception) -> Exception:
    """The first real error inside anyio's (nested) exception groups."""
    inner: Any = getattr(error, "exceptions", None)
    while inner:
        error = inner[0]
        inner = getattr(error, "exceptions", None)
    return error


def _is_lost(error: Exception) -> bool:
    if isinstance(error, McpError):
        return error.error.code == CONNECTION_CLOSED
    return isinstance(error, _LOST)


def _describe(connection: Connection) -> str:
    """The server, for messages: its URL, or its command line on stdio."""
    settings: dict[str, Any] = dict(connection)
    if settings.get("transport") == "stdio":
        return shlex.join([str(settings.get("command")), *map(str, settings.get("args") or [])])
    return str(settings.get("url", f"<{settings.get('transport')} server without a url>"))


def _one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def _text(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


def _output(result: CallToolResult) -> Any:
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
