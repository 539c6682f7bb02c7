"""Runs, internal to the package: opening a PostgreSQL saver that many workers share, and the
per-run locks between them.

Imported only for `postgresql://` URLs and PostgreSQL savers, so that the `plangate[postgres]`
extra stays optional.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

try:
    import psycopg
    from langgraph.checkpoint.postgres import PostgresSaver
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool, ConnectionPool
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    from plangate.errors import PlangateUsageError

    raise PlangateUsageError(
        f"PostgreSQL support is not installed ({exc.name} is missing)",
        hint="install plangate's `postgres` extra (from a checkout: pip install '.[postgres]')",
    ) from None

from plangate.errors import PlangateUsageError

__all__ = (
    "PostgresRunLocks",
    "aopen_postgres",
    "connect_checked",
    "delete_pruned",
    "fetch_all",
    "open_postgres",
    "setup_lock",
)

# What LangGraph's PostgreSQL saver expects of its connections.
_CONNECTION = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}
# Connections per worker process: the saver's queries, plus one held by each run in progress
# for its lock. A worker running more runs at once than this waits for a connection.
POOL_SIZE = 8
# Serialises `setup()` (table creation and migrations) between workers starting together.
_SETUP_LOCK = 0x706C616E67617465  # "plangate"


def connect_checked(url: str) -> psycopg.Connection[Any]:
    """A connection to `url` (autocommit), or a one-line `PlangateUsageError` saying why not."""
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        # psycopg's first line says what failed; the next ones are generic advice.
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PlangateUsageError(
            f"cannot connect to PostgreSQL: {reason}",
            hint="check the URL (postgresql://user:password@host:port/database) and the server",
        ) from None


def setup_lock(conn: psycopg.Connection[Any], key: int) -> None:
    """Take the advisory lock `key` on `conn`, polling: a session that waits inside
    `pg_advisory_lock` is a transaction in progress, and the `CREATE INDEX CONCURRENTLY` of the
    setup that holds the lock waits for every such transaction to end, a deadlock PostgreSQL
    does not see."""
    while not conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:  # type: ignore[index]
        time.sleep(0.05)


def open_postgres(url: str) -> PostgresSaver:
    with connect_checked(url) as conn:
        setup_lock(conn, _SETUP_LOCK)
        pool: ConnectionPool[Any] = ConnectionPool(
            url, kwargs=_CONNECTION, min_size=1, max_size=POOL_SIZE, open=True
        )
        saver = PostgresSaver(pool)
        saver.setup()
    return saver


async def aopen_postgres(url: str) -> AsyncPostgresSaver:
    with connect_checked(url) as conn:  # a short sync connection: setup runs once per worker
        setup_lock(conn, _SETUP_LOCK)
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            url, kwargs=_CONNECTION, min_size=1, max_size=POOL_SIZE, open=False
        )
        await pool.open()
        saver = AsyncPostgresSaver(pool)
        await saver.setup()
    return saver


def fetch_all(saver: PostgresSaver, query: str) -> list[dict[str, Any]]:
    """The rows of a read-only `query` on the saver's database."""
    with saver._cursor() as cursor:  # the saver's own way to a connection, pooled or not
        return list(cursor.execute(query).fetchall())


# A blob is a channel's value at one version, read by every checkpoint naming that version.
_UNREFERENCED_BLOBS = (
    "DELETE FROM checkpoint_blobs AS b WHERE b.thread_id = %s AND b.checkpoint_ns = '' "
    "AND NOT EXISTS (SELECT 1 FROM checkpoints AS c WHERE c.thread_id = b.thread_id "
    "AND c.checkpoint_ns = b.checkpoint_ns "
    "AND c.checkpoint -> 'channel_versions' ->> b.channel = b.version)"
)


def delete_pruned(
    saver: PostgresSaver, thread_id: str, *, first: str, latest: str, task: str, removed: list[str]
) -> None:
    """`plangate.runs.prune`'s deletions on PostgreSQL, in one transaction: the `removed`
    checkpoints, their writes and the blobs no kept checkpoint reads, and the first checkpoint's
    writes but the trace (`task`'s); the latest checkpoint follows the first."""
    with saver._cursor() as cursor, cursor.connection.transaction():
        cursor.execute(
            "DELETE FROM checkpoint_writes WHERE thread_id = %s AND checkpoint_ns = '' "
            "AND (checkpoint_id = ANY(%s) OR (checkpoint_id = %s AND task_id <> %s))",
            (thread_id, removed, first, task),
        )
        cursor.execute(
            "DELETE FROM checkpoints WHERE thread_id = %s AND checkpoint_ns = '' "
            "AND checkpoint_id = ANY(%s)",
            (thread_id, removed),
        )
        cursor.execute(
            "UPDATE checkpoints SET parent_checkpoint_id = %s "
            "WHERE thread_id = %s AND checkpoint_ns = '' AND checkpoint_id = %s",
            (first, thread_id, latest),
        )
        cursor.execute(_UNREFERENCED_BLOBS, (thread_id,))


def _key(thread_id: str) -> int:
    """A signed 64-bit advisory lock key for a thread id."""
    return int.from_bytes(hashlib.sha256(thread_id.encode()).digest()[:8], "big", signed=True)


class PostgresRunLocks:
    """One PostgreSQL advisory lock per thread, held on a connection of the saver's for as long
    as a run of that thread goes on; the server drops it if the worker dies."""

    def __init__(self, saver: PostgresSaver | AsyncPostgresSaver) -> None:
        self._saver = saver
        conn = saver.conn
        info = conn.conninfo if isinstance(conn, (ConnectionPool, AsyncConnectionPool)) else None
        # Runs of this process on the same database exclude each other by this name.
        self.scope = f"postgres:{info}" if info is not None else f"saver:{id(saver)}"

    @contextmanager
    def hold(self, thread_id: str) -> Iterator[bool]:
        conn = self._saver.conn
        if not isinstance(conn, ConnectionPool):
            # One shared connection: advisory locks are per session, so all runs of this
            # process share one; the process lock already keeps them apart.
            yield True
            return
        with conn.connection() as lock_conn:
            row = lock_conn.execute(
                "SELECT pg_try_advisory_lock(%s) AS held", (_key(thread_id),)
            ).fetchone()
            held = bool(row and row["held"])
            try:
                yield held
            finally:
                if held:
                    lock_conn.execute("SELECT pg_advisory_unlock(%s)", (_key(thread_id),))

    @asynccontextmanager
    async def ahold(self, thread_id: str) -> AsyncIterator[bool]:
        conn = self._saver.conn
        if not isinstance(conn, AsyncConnectionPool):
            yield True
            return
        async with conn.connection() as lock_conn:
            cursor = await lock_conn.execute(
                "SELECT pg_try_advisory_lock(%s) AS held", (_key(thread_id),)
            )
            row = await cursor.fetchone()
            held = bool(row and row["held"])
            try:
                yield held
            finally:
                if held:
                    await lock_conn.execute("SELECT pg_advisory_unlock(%s)", (_key(thread_id),))
