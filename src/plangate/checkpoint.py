"""Opening the checkpointer a run pauses into and resumes from."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiosqlite
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from plangate.errors import PlangateUsageError

__all__ = ("aopen_checkpointer", "open_checkpointer", "sqlite_path")


def sqlite_path(url: str) -> str:
    """The file path (or `:memory:`) a `sqlite:///...` URL or plain path names."""
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
    elif url.startswith("sqlite://"):
        path = url.removeprefix("sqlite://")
    elif "://" in url:
        scheme = url.split("://", 1)[0]
        raise PlangateUsageError(
            f"unsupported checkpointer URL scheme {scheme!r}",
            hint="use sqlite:///path/to/file.db or sqlite:///:memory:",
        )
    else:
        path = url
    return path or ":memory:"


def _prepared_path(url: str) -> str:
    path = sqlite_path(url)
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    return path


# WAL with `synchronous=NORMAL`, SQLite's recommended pairing: a commit survives the process
# being killed at any point (what a crashed worker needs); only a power loss or OS crash may roll
# back the last commits. `FULL` would add an fsync to every checkpoint, that is to every superstep,
# several per plan step.
_PRAGMAS = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"


def open_checkpointer(url: str) -> SqliteSaver:
    """Open a ready SQLite checkpointer; the database file is created on first use.

    Args:
        url: `sqlite:///relative/path.db`, `sqlite:////absolute/path.db`, `sqlite:///:memory:`,
            or a plain file path.

    Returns:
        A `SqliteSaver` whose tables exist. Close it with `saver.conn.close()`.

    Example:
        >>> saver = open_checkpointer("sqlite:///:memory:")
        >>> type(saver).__name__
        'SqliteSaver'
    """
    path = _prepared_path(url)
    # The saver serialises access with its own lock, so one connection may serve threads;
    # the timeout lets another process (the CLI, a worker) wait for a write lock.
    conn = sqlite3.connect(path, check_same_thread=False, timeout=30)
    conn.executescript(_PRAGMAS)
    saver = SqliteSaver(conn)
    saver.setup()
    return saver


async def aopen_checkpointer(url: str) -> AsyncSqliteSaver:
    """Open a ready async SQLite checkpointer, for `ainvoke`/`astream` in async code.

    Takes the same URLs as `open_checkpointer`. The saver belongs to the running event loop;
    close it with `await saver.conn.close()`.

    Example:
        >>> import asyncio
        >>> async def main() -> str:
        ...     saver = await aopen_checkpointer("sqlite:///:memory:")
        ...     await saver.conn.close()
        ...     return type(saver).__name__
        >>> asyncio.run(main())
        'AsyncSqliteSaver'
    """
    conn = await aiosqlite.connect(_prepared_path(url), timeout=30)
    await conn.executescript(_PRAGMAS)
    saver = AsyncSqliteSaver(conn)
    await saver.setup()
    return saver
