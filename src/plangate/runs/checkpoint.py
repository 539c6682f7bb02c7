"""Runs: opening the checkpointer a run pauses into and resumes from: a SQLite file for one
machine, PostgreSQL (extra `plangate[postgres]`) for many workers."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.sqlite import SqliteSaver

from plangate.errors import PlangateUsageError

__all__ = ("aopen_checkpointer", "is_postgres_url", "open_checkpointer", "sqlite_path")

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(url: str) -> bool:
    return url.startswith(_POSTGRES_SCHEMES)


def shown_url(url: str) -> str:
    """A database URL to print or show: without the password a `postgresql://` URL may carry
    (a project file's `${PGPASSWORD}`, say).

    Examples:
        >>> shown_url("postgresql://app:s3cret@db:5432/runs")
        'postgresql://app:***@db:5432/runs'
    """
    return re.sub(r"^([a-z+]+://[^:/@]*):[^@/]*@", r"\1:***@", url)


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
            hint="use sqlite:///path/to/file.db, sqlite:///:memory: or postgresql://...",
        )
    else:
        path = url
    return path or ":memory:"


def _prepared_path(url: str) -> str:
    path = sqlite_path(url)
    if path == ":memory:":
        return path
    if Path(path).is_dir():
        raise PlangateUsageError(
            f"database {path!r} is a folder", hint=f"name a file in it, e.g. {path}/plangate.db"
        )
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _cannot_open(path, exc) from None
    return path


def _cannot_open(path: str, exc: Exception) -> PlangateUsageError:
    # sqlite3's own words ("unable to open database file", "file is not a database").
    return PlangateUsageError(f"cannot open SQLite database {path!r}: {exc}")


# WAL with `synchronous=NORMAL`, SQLite's recommended pairing: a commit survives the process
# being killed at any point (what a crashed worker needs); only a power loss or OS crash may roll
# back the last commits. `FULL` would add an fsync to every checkpoint, that is to every superstep,
# several per plan step.
_PRAGMAS = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"


def open_checkpointer(url: str) -> BaseCheckpointSaver[Any]:
    """Open a ready checkpointer: SQLite (the file is created on first use) or PostgreSQL.

    Args:
        url: `sqlite:///relative/path.db`, `sqlite:////absolute/path.db`, `sqlite:///:memory:`,
            a plain file path, or `postgresql://user:password@host:port/database`.

    Returns:
        A `SqliteSaver`, or a `PostgresSaver` on a connection pool, whose tables exist; many
        workers may open the same PostgreSQL database at once. Close it with
        `saver.conn.close()`.

    Raises:
        PlangateUsageError: The URL is not one of these, PostgreSQL cannot be reached, or the
            `plangate[postgres]` extra is not installed.

    Examples:
        >>> saver = open_checkpointer("sqlite:///:memory:")
        >>> type(saver).__name__
        'SqliteSaver'
    """
    if is_postgres_url(url):
        from plangate.runs.postgres import open_postgres

        return open_postgres(url)
    path = _prepared_path(url)
    # The saver serialises access with its own lock, so one connection may serve threads;
    # the timeout lets another process (the CLI, a worker) wait for a write lock.
    conn = None
    try:
        conn = sqlite3.connect(path, check_same_thread=False, timeout=30)
        conn.executescript(_PRAGMAS)
        saver = SqliteSaver(conn)
        saver.setup()
    except sqlite3.DatabaseError as exc:
        if conn is not None:
            conn.close()
        raise _cannot_open(path, exc) from None
    return saver


async def aopen_checkpointer(url: str) -> BaseCheckpointSaver[Any]:
    """Open a ready async checkpointer (SQLite or PostgreSQL), for `ainvoke`/`astream` in async
    code.

    Takes the same URLs as `open_checkpointer`. The saver belongs to the running event loop;
    close it with `await saver.conn.close()`.

    Examples:
        >>> import asyncio
        >>> async def main() -> str:
        ...     saver = await aopen_checkpointer("sqlite:///:memory:")
        ...     await saver.conn.close()
        ...     return type(saver).__name__
        >>> asyncio.run(main())
        'AsyncSqliteSaver'
    """
    if is_postgres_url(url):
        from plangate.runs.postgres import aopen_postgres

        return await aopen_postgres(url)
    # Imported here: the sync savers, which most commands use, do without asyncio.
    import aiosqlite
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    path = _prepared_path(url)
    conn = None
    try:
        conn = await aiosqlite.connect(path, timeout=30)
        await conn.executescript(_PRAGMAS)
        saver = AsyncSqliteSaver(conn)
        await saver.setup()
    except sqlite3.DatabaseError as exc:
        if conn is not None:
            await conn.close()
        raise _cannot_open(path, exc) from None
    return saver
