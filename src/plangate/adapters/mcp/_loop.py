"""The event loop MCP sessions live on (part of the adapters: MCP servers).

An MCP session belongs to the event loop that opened it, and a plan's tools are called from sync
runs, async runs, and threads with loops of their own. So every session lives on one loop of the
adapter's own, in a daemon thread started on first use: async callers await their calls there,
sync callers wait for them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from plangate.errors import PlangateUsageError

__all__ = ("BACKGROUND", "spawn")

_EXIT_TIMEOUT = 10.0
"""Seconds the process waits, at exit, for all its sessions to close."""

_T = TypeVar("_T")


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

    def stop(self, closing: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """At exit: run `closing()` (which closes every session) on the loop, then stop it."""
        with self._lock:
            loop, thread = self._loop, self._thread
            # A later use (another exit handler's) starts a loop of its own, rather than
            # waiting for ever on this stopped one.
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        with contextlib.suppress(Exception):  # the process is exiting anyway
            asyncio.run_coroutine_threadsafe(closing(), loop).result(_EXIT_TIMEOUT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=1)

    def forget(self) -> None:
        """In a forked child: the loop's thread did not come along."""
        self._lock = threading.Lock()
        self._loop = self._thread = None


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    loop.run_forever()


BACKGROUND = _Background()

_SPAWNED: set[asyncio.Task[None]] = set()


def spawn(work: Coroutine[Any, Any, None]) -> None:
    """Run `work` in a task of its own on the running loop, kept until it ends."""
    task = asyncio.get_running_loop().create_task(work)
    _SPAWNED.add(task)  # the loop keeps only weak references to its tasks
    task.add_done_callback(_SPAWNED.discard)
