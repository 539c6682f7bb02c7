"""The MCP sessions tools call their servers through (part of the adapters: MCP servers).

Each server has one session, opened when its tools are loaded and kept for every call after it,
from sync and async runs alike: a stdio server is one process for the whole program, and keeps
its state from one step to the next. Sessions live on the adapter's own loop (`_loop`), and
everything here but the public methods of `MCPSessions` runs there. A call that finds its
session gone opens a new one, once, and sends the call again there, only when the failure shows
the first request did not reach the server (`undelivered`).
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import weakref
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

from langchain_mcp_adapters.sessions import Connection
from mcp import ClientSession
from mcp.types import CallToolResult, Tool

from plangate.adapters.mcp._calls import call_tool, list_tools
from plangate.adapters.mcp._connect import open_session
from plangate.adapters.mcp._errors import undelivered, unwrap
from plangate.adapters.mcp._idempotency import with_key_header
from plangate.adapters.mcp._loop import BACKGROUND

__all__ = ("MCPSessions", "session_key")

_CLOSE_TIMEOUT = 5.0
"""Seconds a session has to close (a stdio server to exit) before its task is cancelled."""

_T = TypeVar("_T")


class MCPSessions:
    """The MCP sessions tools call their servers through: one per server (per distinct
    `connection`), opened when the tools are loaded and kept until closed.

    Tools loaded without `sessions=` share the process's own (`MCPSessions.shared()`), closed
    when the process exits. Make one of your own to end the sessions sooner, and with them the
    stdio servers' processes: `close()` (or `await aclose()`) ends every open session, as does
    leaving it as a context manager. It stays usable: a later call opens its server's session
    again, to be ended by the next `close()` or at exit.

    Examples:
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
        BACKGROUND.run(self._close())

    async def aclose(self) -> None:
        """`close()` for async code."""
        await BACKGROUND.wait(self._close())

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
        return await asyncio.wait_for(self._use(connection, list_tools), timeout)

    async def _call_tool(
        self,
        connection: Connection,
        key: str,
        name: str,
        arguments: dict[str, Any],
        meta: dict[str, Any] | None,
    ) -> CallToolResult:
        async def call(client: ClientSession) -> CallToolResult:
            return await call_tool(client, name, arguments, meta)

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
        key = key or session_key(connection)
        session, fresh = await self._session(key, connection)
        try:
            return await session.run(work)
        except Exception as exc:
            if fresh or session.stopping or not undelivered(unwrap(exc)):
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
            session = await _Session.open(with_key_header(connection))
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
            async with open_session(self._connection) as client:
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


def session_key(connection: Connection) -> str:
    """Which session a connection uses: equal settings, one session. Objects in them (an
    `auth`, a client factory) count by identity, through their `repr`."""
    return json.dumps(connection, sort_keys=True, default=repr)


async def _close_every_session() -> None:
    ending = [sessions._close() for sessions in list(_EVERY_SESSIONS)]
    await asyncio.gather(*ending, return_exceptions=True)


def _stop_at_exit() -> None:
    BACKGROUND.stop(_close_every_session)


def _forget_in_child() -> None:
    """In a forked child: the loop's thread did not come along, nor did its sessions."""
    BACKGROUND.forget()
    for sessions in list(_EVERY_SESSIONS):
        sessions._open.clear()
        sessions._opening.clear()


_EVERY_SESSIONS: weakref.WeakSet[MCPSessions] = weakref.WeakSet()
_SHARED = MCPSessions()
atexit.register(_stop_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)
