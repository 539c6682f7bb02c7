"""Identity: plangate's own tokens, for scripts and agents that decide without a person signing
in. Each token is a name and its groups; whoever shows its text is that name to plangate
(`verified_by: "token"`), as the inbox API (`Authorization: Bearer`), `plangate approve/reject
--server` (`PLANGATE_TOKEN`) and LangGraph's server take it.

The tokens are kept in the project's database, beside the checkpoints (SQLite or PostgreSQL),
in the table `plangate_tokens`. Only a scrypt hash of each token's secret is stored: the text is
shown once, when the token is made, and a copy of the database lets nobody sign in. A token is
`pgt_<id>_<secret>`: the prefix makes a leaked token recognisable (to secret scanners, in
logs), and the id finds its row without trying every hash.
"""

from __future__ import annotations

import base64
import builtins
import hashlib
import hmac
import json
import re
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from plangate._time import iso, parse_iso, utc_now
from plangate.errors import PlangateUsageError
from plangate.identity._identity import Identity
from plangate.runs.checkpoint import is_postgres_url, sqlite_path

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

__all__ = (
    "TOKEN_PREFIX",
    "bearer_identity",
    "TokenInfo",
    "TokenStatus",
    "TokenStore",
    "check_expires",
    "check_groups",
    "check_token_name",
    "token_status",
)

TOKEN_PREFIX = "pgt_"
"""How every plangate token starts."""

TokenStatus = Literal["live", "revoked", "expired"]


class TokenInfo(TypedDict):
    """A token as `TokenStore.list` shows it: everything but its secret and its hash. Times
    are ISO 8601 in UTC (`2026-01-05T09:00:00Z`); `expires_at` is `None` for a token that
    never expires, `revoked_at` `None` for one not revoked."""

    id: str
    name: str
    groups: list[str]
    created_at: str
    expires_at: str | None
    revoked_at: str | None


def token_status(info: TokenInfo, now: datetime) -> TokenStatus:
    """Whether `info`'s token is live at `now`, or has been revoked, or has expired."""
    if info["revoked_at"] is not None:
        return "revoked"
    if info["expires_at"] is not None and parse_iso(info["expires_at"]) <= now:
        return "expired"
    return "live"


# --- what a token may be called and carry ---------------------------------------------------

_LONGEST_NAME = 256


def check_token_name(name: str) -> str:
    """`name` if it can name a token: some text, printable, at most 256 characters, no blanks
    at its ends. A person's token is named by their email, so that they count as one person
    with their OpenID Connect sign-in.

    Raises:
        PlangateUsageError: It cannot; the message says why.
    """
    if not name.strip():
        raise PlangateUsageError(
            "a token needs a name", hint="name it by who uses it: an email, or a script's name"
        )
    if not name.isprintable() or name != name.strip():
        raise PlangateUsageError(
            f"token name {name!r} holds a control character or blanks at its ends",
            hint="use printable characters, with no spaces before or after",
        )
    if len(name) > _LONGEST_NAME:
        raise PlangateUsageError(
            f"a token name is at most {_LONGEST_NAME} characters; this one has {len(name)}"
        )
    return name


_GROUP_NAME = re.compile(r"[^,\s]+")


def check_groups(groups: Sequence[str]) -> list[str]:
    """`groups` sorted, each once, if each can name a group: some text, printable, with no
    comma or blank in it.

    Raises:
        PlangateUsageError: A group name cannot; the message names it.
    """
    for group in groups:
        if not _GROUP_NAME.fullmatch(group) or not group.isprintable():
            raise PlangateUsageError(
                f"{group!r} is not a group name",
                hint="a group name has no commas, spaces or control characters; give several "
                "as a,b",
            )
    return sorted(set(groups))


def check_expires(expires: timedelta | None) -> timedelta | None:
    """`expires` if a token can live that long: more than no time (`None`: for ever).

    Raises:
        PlangateUsageError: It is zero or negative.
    """
    if expires is not None and expires <= timedelta(0):
        raise PlangateUsageError(
            "a token must live for more than no time",
            hint="give a positive duration, as in 30d, 12h or 90m",
        )
    return expires


# --- the hash --------------------------------------------------------------------------------

# scrypt at the cost of OWASP's recommended minimum (N=2^14, r=8, p=1: 16 MiB, ~50 ms). The
# parameters are stored with each hash, so that a stronger cost later still reads old tokens.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
_KEY_BYTES = 32
_SALT_BYTES = 16
# Twice the memory scrypt needs at the highest cost a stored hash may ask for (N=2^17).
_SCRYPT_MAXMEM = 2 * 128 * 8 * 2**17


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _scrypt(secret: str, *, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        secret.encode(), salt=salt, n=n, r=r, p=p, maxmem=_SCRYPT_MAXMEM, dklen=_KEY_BYTES
    )


def _hash_secret(secret: str) -> str:
    """`scrypt$N$r$p$<salt>$<key>`, salt and key in base64."""
    salt = secrets.token_bytes(_SALT_BYTES)
    key = _scrypt(secret, salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(key)}"


def _secret_matches(secret: str, stored: str) -> bool:
    try:
        algorithm, n, r, p, salt, key = stored.split("$")
        if algorithm != "scrypt":
            return False
        expected = base64.b64decode(key, validate=True)
        found = _scrypt(
            secret, salt=base64.b64decode(salt, validate=True), n=int(n), r=int(r), p=int(p)
        )
    except ValueError:  # a hash this module did not write: it matches nothing
        return False
    return hmac.compare_digest(found, expected)


# --- the token text --------------------------------------------------------------------------

_ID_BYTES = 6  # 12 hex digits: ids are public, only told apart
_SECRET_BYTES = 32
_TOKEN = re.compile(rf"{TOKEN_PREFIX}([0-9a-f]{{{2 * _ID_BYTES}}})_([A-Za-z0-9_-]{{43}})")


def _parts(token: str) -> tuple[str, str] | None:
    """The id and secret of a token's text, or `None` if it is not one's."""
    match = _TOKEN.fullmatch(token)
    return (match[1], match[2]) if match else None


# --- the store -------------------------------------------------------------------------------

_COLUMNS = 'id, name, "groups", created_at, expires_at, revoked_at'

_TABLE = (
    "CREATE TABLE IF NOT EXISTS plangate_tokens ("
    "id TEXT PRIMARY KEY, name TEXT NOT NULL, "
    '"groups" TEXT NOT NULL, '  # a JSON list of names; `groups` is a keyword in both dialects
    "hash TEXT NOT NULL, created_at TEXT NOT NULL, expires_at TEXT, revoked_at TEXT)"
)
_NAME_INDEX = "CREATE INDEX IF NOT EXISTS plangate_tokens_name ON plangate_tokens (name)"

# Serialises creating the table between processes opening a new PostgreSQL database together:
# two `CREATE TABLE IF NOT EXISTS` at once may both try to create it.
_SETUP_LOCK = 0x706774746F6B656E  # "pgttoken"

# How long a token whose secret matched is believed without scrypt again. Its row is still read
# on every call, so a revocation or an expiry counts at once; only the hash is not recomputed.
_VERIFIED_FOR = timedelta(seconds=60)
_VERIFIED_MOST = 1024


class TokenStore:
    """plangate's tokens in a project's database: make one, list them, revoke them, and tell
    who shows one.

    Args:
        url: The database of the project's checkpoints, as `open_checkpointer` takes it: a
            path, `sqlite:///path.db` (the file is made if missing), `sqlite:///:memory:`, or
            `postgresql://...` (extra `plangate[postgres]`). The table `plangate_tokens` is
            made if missing.
        clock: The time now, UTC (for tests: a clock that moves when told).

    Raises:
        PlangateUsageError: The URL is not one of these, the database cannot be opened, or the
            `plangate[postgres]` extra is not installed.

    Examples:
        >>> from datetime import timedelta
        >>> store = TokenStore("sqlite:///:memory:")
        >>> token, info = store.create("deploy-bot", groups=["ops"], expires=timedelta(days=30))
        >>> token.startswith("pgt_")
        True
        >>> store.authenticate(token)["groups"]
        ['ops']
        >>> store.revoke("deploy-bot")
        1
        >>> store.authenticate(token) is None
        True
        >>> store.close()
    """

    def __init__(self, url: str, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._clock = clock
        self._sqlite: sqlite3.Connection | None = None
        self._pool: ConnectionPool[Any] | None = None
        self._sqlite_lock = threading.Lock()  # one connection, shared by a server's threads
        self._verified: dict[bytes, datetime] = {}  # SHA-256 of a token's text: when verified
        self._verified_lock = threading.Lock()
        if is_postgres_url(url):
            self._pool = _open_pool(url)
        else:
            self._sqlite = _open_sqlite(url)

    def __enter__(self) -> TokenStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database connections."""
        if self._sqlite is not None:
            self._sqlite.close()
        if self._pool is not None:
            self._pool.close()

    # --- the queries, in either dialect ---

    @contextmanager
    def _transaction(self) -> Iterator[Callable[[str, Sequence[Any]], builtins.list[Any]]]:
        """A function running a query (`?` placeholders) in one transaction, returning rows."""
        if self._pool is not None:
            with self._pool.connection() as conn, conn.transaction():

                def run_postgres(query: str, args: Sequence[Any]) -> builtins.list[Any]:
                    cursor = conn.execute(query.replace("?", "%s"), args)
                    return cursor.fetchall() if cursor.description else []

                yield run_postgres
            return
        assert self._sqlite is not None
        sqlite = self._sqlite
        with self._sqlite_lock, sqlite:

            def run_sqlite(query: str, args: Sequence[Any]) -> builtins.list[Any]:
                return sqlite.execute(query, args).fetchall()

            yield run_sqlite

    # --- the API ---

    def create(
        self, name: str, *, groups: Sequence[str] = (), expires: timedelta | None = None
    ) -> tuple[str, TokenInfo]:
        """Make a token for `name`: whoever shows it is `name`, in `groups`.

        Args:
            name: Who uses it: a person's email (so they count as one person with their
                OpenID Connect sign-in), or a script's or an agent's name.
            groups: The groups it is in (what a profile's `group:NAME` approvers match).
            expires: How long it lives (`None`: until revoked).

        Returns:
            The token's text, which is stored nowhere (show it once, then it is gone), and
            what `list` says of it.

        Raises:
            PlangateUsageError: `name`, a group or `expires` is not one a token can have.
        """
        name = check_token_name(name)
        group_names = check_groups(groups)
        lifetime = check_expires(expires)
        now = self._clock().replace(microsecond=0)
        info: TokenInfo = {
            "id": secrets.token_hex(_ID_BYTES),
            "name": name,
            "groups": group_names,
            "created_at": iso(now),
            "expires_at": iso(now + lifetime) if lifetime is not None else None,
            "revoked_at": None,
        }
        secret = secrets.token_urlsafe(_SECRET_BYTES)
        stored = _hash_secret(secret)
        with self._transaction() as run:
            run(
                f"INSERT INTO plangate_tokens ({_COLUMNS}, hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    info["id"],
                    info["name"],
                    json.dumps(info["groups"]),
                    info["created_at"],
                    info["expires_at"],
                    None,
                    stored,
                ),
            )
        return f"{TOKEN_PREFIX}{info['id']}_{secret}", info

    def list(self) -> builtins.list[TokenInfo]:
        """Every token, live or not, oldest first; no secret nor hash."""
        with self._transaction() as run:
            rows = run(f"SELECT {_COLUMNS} FROM plangate_tokens ORDER BY created_at, id", ())
        return [_info(row) for row in rows]

    def revoke(self, name_or_id: str) -> int:
        """End the live token with id `name_or_id`, or every live token named `name_or_id`.

        Returns:
            How many tokens it ended: 0 when those it names had ended already.

        Raises:
            PlangateUsageError: No token has that id or name.
        """
        now = self._clock()
        with self._transaction() as run:
            rows = run(
                f"SELECT {_COLUMNS} FROM plangate_tokens WHERE id = ? OR name = ?",
                (name_or_id, name_or_id),
            )
            if not rows:
                raise PlangateUsageError(
                    f"no token is named {name_or_id!r} or has that id",
                    hint="name a token by its name or its id, as `plangate tokens list` shows them",
                )
            live = [info["id"] for info in map(_info, rows) if token_status(info, now) == "live"]
            for token_id in live:
                run(
                    "UPDATE plangate_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                    (iso(now.replace(microsecond=0)), token_id),
                )
        return len(live)

    def authenticate(self, token: str) -> Identity | None:
        """Who shows `token`: the identity of its name and groups, if it is a live token of
        this store's, else `None` (not a token's text, an unknown id, a wrong secret, a token
        revoked or expired).

        A token once verified is believed for up to a minute without recomputing its hash
        (scrypt is slow by design, ~50 ms); its row is read on every call all the same, so a
        revocation or an expiry counts at once, in every process.
        """
        parts = _parts(token)
        if parts is None:
            return None
        token_id, secret = parts
        with self._transaction() as run:
            rows = run(f"SELECT {_COLUMNS}, hash FROM plangate_tokens WHERE id = ?", (token_id,))
        if not rows:
            return None
        now = self._clock()
        info = _info(rows[0])
        seen = hashlib.sha256(token.encode()).digest()  # never the token itself, in memory
        if token_status(info, now) != "live":
            self._forget(seen)
            return None
        if not self._recently_verified(seen, now):
            if not _secret_matches(secret, rows[0][6]):
                return None
            self._remember(seen, now)
        name = info["name"]
        return {
            "subject": name,
            "name": name,
            "email": name if "@" in name else None,
            "groups": info["groups"],
            "verified_by": "token",
        }

    # --- the tokens verified lately ---

    def _recently_verified(self, seen: bytes, now: datetime) -> bool:
        with self._verified_lock:
            verified_at = self._verified.get(seen)
        # A clock set back does not stretch the minute.
        return verified_at is not None and timedelta(0) <= now - verified_at <= _VERIFIED_FOR

    def _remember(self, seen: bytes, now: datetime) -> None:
        with self._verified_lock:
            if len(self._verified) >= _VERIFIED_MOST:
                oldest = min(self._verified, key=self._verified.__getitem__)
                del self._verified[oldest]
            self._verified[seen] = now

    def _forget(self, seen: bytes) -> None:
        with self._verified_lock:
            self._verified.pop(seen, None)


def _info(row: Sequence[Any]) -> TokenInfo:
    return {
        "id": row[0],
        "name": row[1],
        "groups": json.loads(row[2]),
        "created_at": row[3],
        "expires_at": row[4],
        "revoked_at": row[5],
    }


def _open_sqlite(url: str) -> sqlite3.Connection:
    path = sqlite_path(url)
    conn = None
    try:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # One connection shared by threads under `TokenStore._sqlite_lock`; the timeout lets
        # another process (a run writing checkpoints) finish its write first.
        conn = sqlite3.connect(path, check_same_thread=False, timeout=30)
        with conn:
            conn.execute(_TABLE)
            conn.execute(_NAME_INDEX)
    except (OSError, sqlite3.DatabaseError) as exc:
        if conn is not None:
            conn.close()
        # sqlite3's own words ("unable to open database file", "file is not a database").
        raise PlangateUsageError(f"cannot open SQLite database {path!r}: {exc}") from None
    return conn


def _open_pool(url: str) -> ConnectionPool[Any]:
    # Imported here: PostgreSQL support is an extra, and this module says which when missing.
    from psycopg_pool import ConnectionPool

    from plangate.runs.postgres import connect_checked

    with connect_checked(url) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SETUP_LOCK,))
        conn.execute(_TABLE)
        conn.execute(_NAME_INDEX)
    # Few connections: a door checks one token per request, in a read of one row.
    pool: ConnectionPool[Any] = ConnectionPool(
        url,
        kwargs={"autocommit": True},
        min_size=1,
        max_size=4,
        open=True,
        check=ConnectionPool.check_connection,
    )
    return pool


def bearer_identity(
    token: str, tokens: TokenStore, provider: Callable[[str], Identity | None] | None
) -> Identity | None:
    """Who shows a bearer token, as every door asks: a plangate token of the project's first,
    else an access token of its OpenID provider (`provider`, when it names one); `None` for
    anyone else. Blocking: it reads the database, and may ask the provider."""
    found = tokens.authenticate(token)
    if found is None and provider is not None:
        found = provider(token)
    return found
