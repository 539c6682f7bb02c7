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
    Each server has one session, opened when its tools are loaded and kept for every call after
    it, from sync and async runs alike: a stdio server is one process for the whole program,
    and keeps its state from one step to the next. An MCP session belongs to the event loop
    that opened it, so sessions live on a loop of the adapter's own, in a daemon thread started
    on first use; async callers await their calls there, sync callers (a tool's sync side,
    which sync runs use) wait for them. A call that finds its session gone (the server
    restarted, or its process died) opens a new one, once, and sends the call again there with
    the same idempotency key, when the failure shows the first request did not reach the
    server (the session's streams were closed already, the connection was refused, the server
    no longer knew the session); any other lost call fails with `MCPConnectionError`.

    Tools loaded without `sessions=` share the process's sessions (`MCPSessions.shared()`),
    closed when the process exits. Load them with `sessions=MCPSessions()` and close that, or
    use it as a context manager, to end the sessions, and stop stdio servers, sooner.

Cancellation:
    A call whose caller gives up is cancelled on the server too (`notifications/cancelled`), so
    that a step that timed out does not go on there, where a retry could then run a write
    twice. A run gives up on a call by cancelling it when plangate's per-call timeout passes,
    sync runs (`invoke`, `stream`) as well as async ones: under a timeout `tool_exec` runs the
    tool's coroutine, in sync runs too, so the call is cancelled on the server either way.

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
    HTTP transports (streamable HTTP, SSE): the session's HTTP client copies each request's key
    from its `_meta` into the header of that request alone, so calls sharing a session each send
    their own. A step called again (a resume after a crash, a retry) sends the same key, so a
    server that remembers keys can do the work once.

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
import atexit
import concurrent.futures
import contextlib
import copy
import importlib.metadata
import json
import os
import re
import shlex
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar, cast

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import BaseModel

from plangate.adapters._json_schema import JSONSchemaArguments, schema_problems
from plangate.errors import AdapterError, PlangateUsageError
from plangate.nodes.tool_exec import IDEMPOTENCY_KEY, InvalidArguments


def _why_not_importable() -> str:
    """Why the MCP client stack does not import: missing, or an `mcp` release that
    langchain-mcp-adapters cannot use (an MCP server installed into this environment may have
    brought one: `mcp-server-time` needs mcp>=2.3, the adapters mcp<2)."""
    try:
        installed = importlib.metadata.version("mcp")
    except importlib.metadata.PackageNotFoundError:
        installed = None
    major = (installed or "").split(".", 1)[0]
    if major.isdigit() and int(major) >= 2:
        return (
            f"MCP tools need mcp<2 for langchain-mcp-adapters, but mcp {installed} is installed "
            "(an MCP server installed into this environment brings its own): run stdio servers "
            "from their own environment (uvx, npx, a separate venv), then reinstall plangate's "
            "`mcp` extra (from a checkout: pip install '.[mcp]')"
        )
    return (
        "MCP tools need langchain-mcp-adapters: install plangate's `mcp` extra "
        "(from a checkout: pip install '.[mcp]')"
    )


try:
    import anyio
    import httpx
    from jsonschema import validators  # type: ignore[import-untyped]
    from jsonschema.exceptions import best_match  # type: ignore[import-untyped]
    from langchain_mcp_adapters.sessions import Connection, create_session
    from mcp import ClientSession, McpError, StdioServerParameters
    from mcp.client.stdio import stdio_client
    from mcp.shared._httpx_utils import create_mcp_http_client
    from mcp.types import (
        CONNECTION_CLOSED,
        CallToolResult,
        CancelledNotification,
        CancelledNotificationParams,
        ClientNotification,
        TextContent,
        Tool,
    )
    from referencing import Registry
except ImportError as exc:
    raise ImportError(_why_not_importable()) from exc

__all__ = (
    "IDEMPOTENCY_HEADER",
    "IDEMPOTENCY_META_KEY",
    "LOAD_TIMEOUT",
    "MCPConnectionError",
    "MCPSessions",
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
# The part of those that shows a request never reached the server (the session's streams were
# closed before it was written, the pipe was broken, the socket never connected), so that
# sending it again on a new session cannot do its work twice.
_UNDELIVERED = (
    anyio.ClosedResourceError,
    anyio.BrokenResourceError,
    BrokenPipeError,
    httpx.ConnectError,
)
# What the streamable HTTP transport answers, as a JSON-RPC error with this (positive) code,
# when the server no longer knows the session (a 404: it restarted); the request was not run.
_SESSION_TERMINATED = 32600
_CLOSE_TIMEOUT = 5.0
"""Seconds a session has to close (a stdio server to exit) before its task is cancelled."""
_EXIT_TIMEOUT = 10.0
"""Seconds the process waits, at exit, for all its sessions to close."""

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
    kept = sessions if sessions is not None else MCPSessions.shared()
    server = _describe(connection)
    try:
        listed = await _BACKGROUND.wait(kept._list_tools(connection, timeout))
    except Exception as exc:  # whatever stops the listing, no tools can be set up
        error = _unwrap(exc)
        reason = (
            f"no answer within {timeout:g} s"
            if isinstance(error, (TimeoutError, asyncio.TimeoutError)) and not str(error)
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
    return [_as_tool(tool, f"{prefix}.{tool.name}", connection, server, kept) for tool in listed]


def mcp_tools(
    connection: Connection,
    *,
    prefix: str,
    timeout: float = LOAD_TIMEOUT,
    sessions: MCPSessions | None = None,
) -> list[BaseTool]:
    """`amcp_tools` for sync code, whether or not the calling thread runs an event loop.

    Example:
        >>> tools = mcp_tools({"transport": "streamable_http",  # doctest: +SKIP
        ...                    "url": "http://127.0.0.1:8000/mcp"}, prefix="billing")
    """
    # Loaded on the sessions' own loop: the calling thread's loop, if it has one, is busy.
    loading = amcp_tools(connection, prefix=prefix, timeout=timeout, sessions=sessions)
    return _BACKGROUND.run(loading)


class MCPSessions:
    """The MCP sessions tools call their servers through: one per server (per distinct
    `connection`), opened when the tools are loaded and kept until closed.

    Tools loaded without `sessions=` share the process's own (`MCPSessions.shared()`), closed
    when the process exits. Make one of your own to end the sessions sooner, and with them the
    stdio servers' processes: `close()` (or `await aclose()`) ends every open session, as does
    leaving it as a context manager. It stays usable: a later call opens its server's session
    again, to be ended by the next `close()` or at exit.

    Example:
        >>> from plangate import build_graph, open_checkpointer
        >>> with MCPSessions() as sessions:  # doctest: +SKIP
        ...     tools = mcp_tools(connection, prefix="billing", sessions=sessions)
        ...     graph = build_graph(tools, profile="smb",
        ...                         checkpointer=open_checkpointer("runs.db"))
        ...     graph.invoke({"plan": plan}, {"configurable": {"thread_id": "t1"}})
    """

    def __init__(self) -> None:
        # Only ever touched on the background loop, so without locks of threads.
        self._open: dict[str, _Session] = {}
        self._opening: dict[str, asyncio.Lock] = {}
        _EVERY_SESSIONS.add(self)

    @classmethod
    def shared(cls) -> MCPSessions:
        """The sessions of tools loaded without `sessions=`."""
        return _SHARED

    def close(self) -> None:
        """End every open session (a stdio server's process exits)."""
        _BACKGROUND.run(self._close())

    async def aclose(self) -> None:
        """`close()` for async code."""
        await _BACKGROUND.wait(self._close())

    def __enter__(self) -> MCPSessions:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> MCPSessions:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # What follows runs on the background loop.

    async def _close(self) -> None:
        ending = list(self._open.values())
        self._open.clear()
        await asyncio.gather(*(session.close() for session in ending))

    async def _list_tools(self, connection: Connection, timeout: float) -> list[Tool]:
        return await asyncio.wait_for(self._use(connection, _list_tools), timeout)

    async def _call_tool(
        self,
        connection: Connection,
        key: str,
        name: str,
        arguments: dict[str, Any],
        meta: dict[str, Any] | None,
    ) -> CallToolResult:
        async def call(client: ClientSession) -> CallToolResult:
            return await _call_tool(client, name, arguments, meta)

        return await self._use(connection, call, key=key)

    async def _use(
        self,
        connection: Connection,
        work: Callable[[ClientSession], Awaitable[_T]],
        *,
        key: str | None = None,
    ) -> _T:
        """`work` done in the server's session (under `key`, by default the connection's own),
        opened if there is none or it has ended."""
        key = key or _session_key(connection)
        session, fresh = await self._session(key, connection)
        try:
            return await session.run(work)
        except Exception as exc:
            if fresh or session.stopping or not _undelivered(_unwrap(exc)):
                raise
        # The kept session had gone away before the request reached the server (a restarted
        # server, a stdio process that died between calls): a new session, once.
        await self._drop(key, session)
        session, _ = await self._session(key, connection)
        return await session.run(work)

    async def _session(self, key: str, connection: Connection) -> tuple[_Session, bool]:
        """The open session under `key`, and whether it has just been opened."""
        async with self._opening.setdefault(key, asyncio.Lock()):
            session = self._open.get(key)
            if session is not None and session.alive:
                return session, False
            if session is not None:
                await self._drop(key, session)
            session = await _Session.open(_with_key_header(connection))
            self._open[key] = session
            return session, True

    async def _drop(self, key: str, session: _Session) -> None:
        if self._open.get(key) is session:
            del self._open[key]
        await session.close()


class _Session:
    """One open MCP session. A task of its own holds it open (anyio's task groups in the
    transports must be left by the task that entered them), and `close()` asks it to leave."""

    def __init__(self, connection: Connection) -> None:
        loop = asyncio.get_running_loop()
        self._connection = connection
        self._ready: asyncio.Future[ClientSession] = loop.create_future()
        self._stop = asyncio.Event()
        self._task = loop.create_task(self._hold())
        self.failure: Exception | None = None
        self.stopping = False
        self.client: ClientSession

    @classmethod
    async def open(cls, connection: Connection) -> _Session:
        session = cls(connection)
        try:
            session.client = await session._ready
        except BaseException:  # a server that fails to start, or a caller that gave up
            await session.close(wait=0)
            raise
        return session

    @property
    def alive(self) -> bool:
        return not (self._task.done() or self.stopping)

    async def _hold(self) -> None:
        try:
            async with _open_session(self._connection) as client:
                await client.initialize()
                if self._ready.done():  # the opener gave up meanwhile
                    return
                self._ready.set_result(client)
                await self._stop.wait()
        except Exception as exc:  # the transport failed: kept for calls waiting on the session
            self.failure = exc
            if not self._ready.done():
                self._ready.set_exception(exc)

    async def run(self, work: Callable[[ClientSession], Awaitable[_T]]) -> _T:
        """`work`'s result, or the transport's failure if the session ends first: a request
        pending when the transport fails may otherwise never be answered."""
        pending = asyncio.ensure_future(work(self.client))
        try:
            await asyncio.wait({pending, self._task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not pending.done():
                pending.cancel()
        if pending.done() and not pending.cancelled():
            return pending.result()
        raise self.failure or ConnectionError("the MCP session closed before the server answered")

    async def close(self, *, wait: float = _CLOSE_TIMEOUT) -> None:
        """Leave the session, giving it `wait` seconds before cancelling its task."""
        self.stopping = True
        self._stop.set()
        if wait > 0:
            await asyncio.wait({self._task}, timeout=wait)
        if not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


SERVER_LOG_VARIABLE = "PLANGATE_MCP_LOG"
"""The environment variable naming the file stdio MCP servers write their stderr to (appended;
a relative path is taken from the server's working folder, in a project the project's folder).
Unset, they write to this process's stderr. The `plangate` command sets it to
`plangate-mcp.log` unless it is given `-v`, so that a server's own messages do not mix with
the command's output."""


@contextlib.asynccontextmanager
async def _open_session(connection: Connection) -> AsyncIterator[ClientSession]:
    """A session to the server of `connection`, a stdio server's stderr going to the server log
    when one is set (langchain-mcp-adapters always leaves it on this process's stderr)."""
    log = os.environ.get(SERVER_LOG_VARIABLE)
    if connection.get("transport") != "stdio" or not log:
        async with create_session(connection) as client:
            yield client
        return
    stdio = cast("dict[str, Any]", connection)
    env = stdio.get("env")
    params = StdioServerParameters(
        command=stdio["command"],
        args=stdio["args"],
        # As langchain-mcp-adapters does: `${VAR}` in a value is read from this environment,
        # an unset one left as written.
        env={k: _BRACED_VARIABLE.sub(_from_environment, v) for k, v in env.items()}
        if env is not None
        else None,
        cwd=stdio.get("cwd"),
        **{k: stdio[k] for k in ("encoding", "encoding_error_handler") if k in stdio},
    )
    path = Path(params.cwd or ".") / log
    with path.open("a", encoding="utf-8") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write, **(stdio.get("session_kwargs") or {})) as client,
        ):
            yield client


_BRACED_VARIABLE = re.compile(r"\$\{([^}]+)\}")


def _from_environment(found: re.Match[str]) -> str:
    return os.environ.get(found.group(1), found.group(0))


async def _call_tool(
    client: ClientSession, name: str, arguments: dict[str, Any], meta: dict[str, Any] | None
) -> CallToolResult:
    # `call_tool` takes the session's next request id before its first wait, so this is the
    # id of the request it sends: the one to name when cancelling it.
    request_id = client._request_id
    try:
        return await client.call_tool(name, arguments, meta=meta)
    except asyncio.CancelledError:
        # Left to a task of its own: this one must end now, as its canceller expects.
        _spawn(_cancel_on_server(client, request_id))
        raise


async def _cancel_on_server(client: ClientSession, request_id: int) -> None:
    notice = CancelledNotification(
        params=CancelledNotificationParams(requestId=request_id, reason="the caller gave up")
    )
    # Best effort: a session that is gone has no request left to cancel.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.send_notification(ClientNotification(notice)), 5)


_SPAWNED: set[asyncio.Task[None]] = set()


def _spawn(work: Coroutine[Any, Any, None]) -> None:
    task = asyncio.get_running_loop().create_task(work)
    _SPAWNED.add(task)  # the loop keeps only weak references to its tasks
    task.add_done_callback(_SPAWNED.discard)


class _Background:
    """The event loop every `MCPSessions` keeps its sessions on: one per process, in a daemon
    thread started on first use. Callers from any thread or loop hand it coroutines."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=_serve, args=(loop,), name="plangate-mcp-sessions", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def submit(self, work: Coroutine[Any, Any, _T]) -> concurrent.futures.Future[_T]:
        return asyncio.run_coroutine_threadsafe(work, self._running_loop())

    async def wait(self, work: Coroutine[Any, Any, _T]) -> _T:
        """`work` run on the background loop, awaited from any loop. Cancelling the wait
        cancels `work` there."""
        return await asyncio.wrap_future(self.submit(work))

    def run(self, work: Coroutine[Any, Any, _T]) -> _T:
        """`work` run on the background loop, waited for by the calling thread."""
        if threading.current_thread() is self._thread:
            work.close()
            raise PlangateUsageError(
                "MCP sessions cannot be waited for from their own event loop",
                hint="await `amcp_tools` or `MCPSessions.aclose()` there instead",
            )
        return self.submit(work).result()

    def stop(self) -> None:
        """At exit: close every `MCPSessions`, then stop the loop."""
        with self._lock:
            loop, thread = self._loop, self._thread
            # A later use (another exit handler's) starts a loop of its own, rather than
            # waiting for ever on this stopped one.
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        ending = [sessions._close() for sessions in list(_EVERY_SESSIONS)]
        with contextlib.suppress(Exception):  # the process is exiting anyway
            asyncio.run_coroutine_threadsafe(_gather(ending), loop).result(_EXIT_TIMEOUT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=1)

    def forget(self) -> None:
        """In a forked child: the loop's thread did not come along, nor did its sessions."""
        self._lock = threading.Lock()
        self._loop = self._thread = None
        for sessions in list(_EVERY_SESSIONS):
            sessions._open.clear()
            sessions._opening.clear()


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    loop.run_forever()


async def _gather(work: list[Coroutine[Any, Any, None]]) -> None:
    await asyncio.gather(*work, return_exceptions=True)


_EVERY_SESSIONS: weakref.WeakSet[MCPSessions] = weakref.WeakSet()
_BACKGROUND = _Background()
_SHARED = MCPSessions()
atexit.register(_BACKGROUND.stop)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_BACKGROUND.forget)


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

    def problems(self, arguments: Any) -> list[tuple[str, str]]:
        return schema_problems(self.validator.iter_errors(arguments))


class _MCPArguments(JSONSchemaArguments):
    """An MCP tool's arguments as a pydantic model (subclassed per tool with `operation`)."""

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


def _as_tool(
    tool: Tool, name: str, connection: Connection, server: str, sessions: MCPSessions
) -> BaseTool:
    check = _InputCheck.of(tool)
    session_key = _session_key(connection)

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
        key = config.get("metadata", {}).get(IDEMPOTENCY_KEY)
        meta = {IDEMPOTENCY_META_KEY: key} if key is not None else None
        return sessions._call_tool(connection, session_key, tool.name, arguments, meta)

    def failed(exc: Exception) -> Exception:
        """What to raise for `exc`, its `__cause__` set to the cause to raise it from."""
        error = _unwrap(exc)
        if not _is_lost(error):
            return error  # out of its group, with the cause it had
        lost = MCPConnectionError(
            f"{name}: MCP server {server} cannot be reached: {_one_line(error)}",
            tool=name,
            server=server,
        )
        lost.__cause__ = error
        return lost

    def output(result: CallToolResult) -> Any:
        if result.isError:
            raise ToolException(_text(result) or f"{name} failed and the server gave no message")
        return _output(result)

    # LangChain passes the run config to the parameter typed `RunnableConfig`; its name only
    # has to stay clear of the tool's own arguments.
    async def acall(plangate_run_config: RunnableConfig, **arguments: Any) -> Any:
        calling = request(plangate_run_config, arguments)
        try:
            result = await _BACKGROUND.wait(calling)
        except Exception as exc:
            error = failed(exc)
            raise error from error.__cause__
        return output(result)

    # Sync runs wait for the call in their own thread, where an async-only tool would need an
    # event loop and a thread made for each call.
    def call(plangate_run_config: RunnableConfig, **arguments: Any) -> Any:
        calling = request(plangate_run_config, arguments)
        try:
            result = _BACKGROUND.run(calling)
        except Exception as exc:
            error = failed(exc)
            raise error from error.__cause__
        return output(result)

    arguments_model = type(
        f"{name}_arguments", (_MCPArguments,), {"operation": check, "__module__": __name__}
    )
    return _MCPTool(
        name=name,
        description=tool.description or "",
        args_schema=check.schema,
        func=call,
        coroutine=acall,
        metadata=_metadata(tool),
        arguments_model=arguments_model,
    )


async def _list_tools(session: ClientSession) -> list[Tool]:
    tools: list[Tool] = []
    cursor: str | None = None
    while True:
        page = await session.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.nextCursor
        if not cursor:
            return tools


def _session_key(connection: Connection) -> str:
    """Which session a connection uses: equal settings, one session. Objects in them (an
    `auth`, a client factory) count by identity, through their `repr`."""
    return json.dumps(connection, sort_keys=True, default=repr)


def _with_key_header(connection: Connection) -> Connection:
    """`connection` whose HTTP client sends each call's idempotency key as a header."""
    if connection.get("transport") not in _HTTP_TRANSPORTS:
        return connection
    settings: dict[str, Any] = dict(connection)
    make = settings.get("httpx_client_factory") or create_mcp_http_client

    def keyed_client(
        headers: dict[str, str] | None = None,
        timeout: httpx.Timeout | None = None,
        auth: httpx.Auth | None = None,
    ) -> httpx.AsyncClient:
        client = make(headers=headers, timeout=timeout, auth=auth)
        hooks = client.event_hooks
        client.event_hooks = {**hooks, "request": [*hooks.get("request", []), _key_header]}
        return client

    settings["httpx_client_factory"] = keyed_client
    return cast("Connection", settings)


async def _key_header(request: httpx.Request) -> None:
    """Give a request carrying an idempotency key in its `_meta` the same key as a header.

    The header goes on the request itself, not on the client: the session's client is shared
    by calls with different keys.
    """
    if request.method != "POST":
        return
    try:
        body = request.content
    except httpx.RequestNotRead:  # a streamed body; MCP's messages never are
        return
    if IDEMPOTENCY_META_KEY.encode() not in body:
        return
    try:
        message = json.loads(body)
    except ValueError:
        return
    params = message.get("params") if isinstance(message, dict) else None
    meta = params.get("_meta") if isinstance(params, dict) else None
    key = meta.get(IDEMPOTENCY_META_KEY) if isinstance(meta, dict) else None
    if isinstance(key, str):
        request.headers[IDEMPOTENCY_HEADER] = key


def _unwrap(error: Exception) -> Exception:
    """The first real error inside anyio's (nested) exception groups."""
    inner: Any = getattr(error, "exceptions", None)
    while inner:
        error = inner[0]
        inner = getattr(error, "exceptions", None)
    return error


def _is_lost(error: Exception) -> bool:
    if isinstance(error, McpError):
        return error.error.code in (CONNECTION_CLOSED, _SESSION_TERMINATED)
    return isinstance(error, _LOST)


def _undelivered(error: Exception) -> bool:
    """Whether `error` shows that the request never reached the server."""
    if isinstance(error, McpError):
        return error.error.code == _SESSION_TERMINATED
    return isinstance(error, _UNDELIVERED)


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
