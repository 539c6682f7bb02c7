"""Runs: one run of a thread at a time, across threads, processes and machines.

Two workers resuming the same paused run at the same moment must not both run its step: the
approved email would go out twice. So every run of a thread (a new plan, a resume, picking up
after a crash) holds that thread's lock for as long as it goes on, and a second run of the same
thread meanwhile fails at once with `ResumeConflict`, having changed nothing.

The lock is layered: a process-wide set of running threads (threads of one process), then one
that other processes see: a byte-range lock on a file beside a SQLite database (processes of
one machine; the OS drops it when a process dies), or a PostgreSQL advisory lock (workers on
any machine; the server drops it when a connection dies). An in-memory saver needs only the first.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import (
    AbstractAsyncContextManager,
    AbstractContextManager,
    asynccontextmanager,
    contextmanager,
)
from pathlib import Path
from typing import Any, Protocol

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.sqlite import SqliteSaver

from plangate.errors import ResumeConflict

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: only the process-wide layer
    fcntl = None  # type: ignore[assignment]

__all__ = ("RunLocks", "arun_locks", "run_locks")


class _SharedLocks(Protocol):
    """The layer other processes see: `hold` yields whether the lock was taken."""

    def hold(self, thread_id: str) -> AbstractContextManager[bool]: ...

    def ahold(self, thread_id: str) -> AbstractAsyncContextManager[bool]: ...


class _NoSharedLocks:
    @contextmanager
    def hold(self, thread_id: str) -> Iterator[bool]:
        yield True

    @asynccontextmanager
    async def ahold(self, thread_id: str) -> AsyncIterator[bool]:
        yield True


# One descriptor per lock file for the whole process, never closed: POSIX drops every lock a
# process holds on a file when it closes any descriptor of that file.
_LOCK_FILES: dict[Path, int] = {}
_LOCK_FILES_GUARD = threading.Lock()


class _FileLocks:
    """A one-byte `fcntl` lock per thread in one lock file beside the database; a thread's byte
    is at an offset hashed from its id (two threads sharing one merely exclude each other)."""

    _SPAN = 2**31 - 1

    def __init__(self, path: Path) -> None:
        with _LOCK_FILES_GUARD:
            if path not in _LOCK_FILES:
                _LOCK_FILES[path] = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            self._fd = _LOCK_FILES[path]

    @contextmanager
    def hold(self, thread_id: str) -> Iterator[bool]:
        digest = hashlib.sha256(thread_id.encode()).digest()
        offset = int.from_bytes(digest[:8], "big") % self._SPAN
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
        except OSError:  # held by another process
            yield False
            return
        try:
            yield True
        finally:
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, offset)

    @asynccontextmanager
    async def ahold(self, thread_id: str) -> AsyncIterator[bool]:
        # Non-blocking, so taking it never stalls the event loop.
        with self.hold(thread_id) as held:
            yield held


# The runs going on in this process, by (database, thread): shared by every graph and saver of
# the process, since the layer other processes see does not tell this process's runs apart.
_RUNNING: set[tuple[str, str]] = set()
_RUNNING_GUARD = threading.Lock()


class RunLocks:
    """The locks of the runs kept in one database (`scope` names it)."""

    def __init__(self, shared: _SharedLocks, scope: str) -> None:
        self._shared = shared
        self._scope = scope

    def _enter(self, thread_id: str) -> None:
        with _RUNNING_GUARD:
            if (self._scope, thread_id) in _RUNNING:
                raise ResumeConflict(thread_id)
            _RUNNING.add((self._scope, thread_id))

    def _leave(self, thread_id: str) -> None:
        with _RUNNING_GUARD:
            _RUNNING.discard((self._scope, thread_id))

    @contextmanager
    def hold(self, thread_id: str) -> Iterator[None]:
        """Hold `thread_id`'s lock, or raise `ResumeConflict` if a run of it is going on."""
        self._enter(thread_id)
        try:
            with self._shared.hold(thread_id) as held:
                if not held:
                    raise ResumeConflict(thread_id)
                yield
        finally:
            self._leave(thread_id)

    def is_running(self, thread_id: str) -> bool:
        """Whether some process runs `thread_id` now, i.e. holds its lock. Finding out takes the
        lock for an instant when it is free: a resume of that run started at that very instant
        is refused with `ResumeConflict`, having changed nothing."""
        try:
            with self.hold(thread_id):
                return False
        except ResumeConflict:
            return True

    @asynccontextmanager
    async def ahold(self, thread_id: str) -> AsyncIterator[None]:
        self._enter(thread_id)
        try:
            async with self._shared.ahold(thread_id) as held:
                if not held:
                    raise ResumeConflict(thread_id)
                yield
        finally:
            self._leave(thread_id)


_DATABASES = "PRAGMA database_list"


def _sqlite_locks(saver: BaseCheckpointSaver[Any], databases: list[Any]) -> RunLocks:
    """File locks beside the main database of a `PRAGMA database_list` answer; an in-memory
    database, which no other process sees, needs only the process-wide layer."""
    database = next((str(row[2]) for row in databases if row[1] == "main"), "")
    if not database or fcntl is None:
        return RunLocks(_NoSharedLocks(), f"saver:{id(saver)}")
    lock_file = Path(f"{database}.plangate-lock").resolve()
    return RunLocks(_FileLocks(lock_file), str(lock_file))


def _kept_in(saver: BaseCheckpointSaver[Any]) -> BaseCheckpointSaver[Any]:
    """The saver that holds the runs: LangGraph's server hands its graphs an adapter around the
    checkpointer `langgraph.json` names (the project's database), keeping it as `_inner`. The
    locks are that database's, so a run under the server and `plangate approve` exclude each
    other; an unknown wrapper would get locks no other process sees."""
    inner = getattr(saver, "__dict__", {}).get("_inner")
    return inner if isinstance(inner, BaseCheckpointSaver) else saver


def run_locks(saver: BaseCheckpointSaver[Any]) -> RunLocks:
    """The locks for runs kept in `saver` (a sync SQLite saver, a PostgreSQL one, or any)."""
    saver = _kept_in(saver)
    if isinstance(saver, SqliteSaver):
        with saver.cursor(transaction=False) as cursor:
            return _sqlite_locks(saver, cursor.execute(_DATABASES).fetchall())
    if type(saver).__module__.startswith("langgraph.checkpoint.postgres"):
        from plangate.runs.postgres import PostgresRunLocks

        shared = PostgresRunLocks(saver)  # type: ignore[arg-type]
        return RunLocks(shared, shared.scope)
    return RunLocks(_NoSharedLocks(), f"saver:{id(saver)}")


async def arun_locks(saver: BaseCheckpointSaver[Any]) -> RunLocks:
    """`run_locks` for async savers, whose database file is read with a query."""
    saver = _kept_in(saver)
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver  # only async code needs it

    if isinstance(saver, AsyncSqliteSaver):
        async with saver.conn.execute(_DATABASES) as cursor:
            return _sqlite_locks(saver, list(await cursor.fetchall()))
    return run_locks(saver)
