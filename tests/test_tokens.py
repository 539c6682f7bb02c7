"""plangate's own tokens (`TokenStore`, `plangate tokens`): a token signs in as its name and
groups, verified by the token; the database holds a scrypt hash, never the token; anything but
a live token's text is nobody, and a revocation or an expiry counts at once though the token
was verified a moment before; names, groups and lifetimes are checked. On a real SQLite file
and on PostgreSQL, through the API and through the command line."""

from __future__ import annotations

import doctest
import json
import sqlite3
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from _support import Clock, plangate
from test_docs import run_doc_commands

from plangate import open_checkpointer
from plangate.errors import PlangateUsageError
from plangate.identity import tokens as tokens_module
from plangate.identity._identity import same_person
from plangate.identity.tokens import TokenStore, token_status
from plangate.runs.checkpoint import is_postgres_url, sqlite_path


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A project's database, beside its checkpoints: a SQLite file, or a PostgreSQL database
    (shared by this module's tests, so each starts with no token table)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'runs.db'}"
    postgres: str = request.getfixturevalue("postgres_url")
    import psycopg

    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS plangate_tokens")
    return postgres


@pytest.fixture
def store(url: str, clock: Clock) -> Iterator[TokenStore]:
    with TokenStore(url, clock=clock) as opened:
        yield opened


def stored_rows(url: str) -> list[tuple[Any, ...]]:
    """Every row of `plangate_tokens`, every column, read without plangate."""
    query = "SELECT * FROM plangate_tokens"
    if is_postgres_url(url):
        import psycopg

        with psycopg.connect(url) as conn:
            return list(conn.execute(query).fetchall())
    with closing(sqlite3.connect(sqlite_path(url))) as conn:
        return list(conn.execute(query).fetchall())


def scrypt_counter(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the scrypt hashes `tokens_module` computes (one per call, in the list)."""
    calls: list[int] = []
    real = tokens_module._scrypt

    def counted(secret: str, **params: Any) -> bytes:
        calls.append(1)
        return real(secret, **params)

    monkeypatch.setattr(tokens_module, "_scrypt", counted)
    return calls


# --- the API --------------------------------------------------------------------------------


def test_a_token_signs_in_as_its_name_and_groups_verified_by_the_token(store: TokenStore) -> None:
    token, info = store.create("deploy-bot", groups=["ops", "admins", "ops"])
    assert token.startswith(f"pgt_{info['id']}_")
    assert info["groups"] == ["admins", "ops"]
    assert store.authenticate(token) == {
        "subject": "deploy-bot",
        "name": "deploy-bot",
        "email": None,
        "groups": ["admins", "ops"],
        "verified_by": "token",
    }


def test_a_persons_token_named_by_their_email_is_the_same_person_as_their_sign_in(
    store: TokenStore,
) -> None:
    token, _ = store.create("lee@example.com")
    identity = store.authenticate(token)
    assert identity is not None
    assert identity["email"] == "lee@example.com"
    signed_in = {"subject": "0a1b2c", "name": "Lee", "email": "Lee@Example.com", "groups": []}
    assert same_person(identity, signed_in)


def test_the_tokens_live_in_the_database_of_the_checkpoints(url: str, clock: Clock) -> None:
    """A store opened on a database a checkpointer made, and a checkpointer opened on a
    database a store made: each finds its tables, and a token made by one store signs in at
    another (another process, another worker)."""
    saver = open_checkpointer(url)
    try:
        with TokenStore(url, clock=clock) as first:
            token, _ = first.create("deploy-bot")
        with TokenStore(url, clock=clock) as second:
            assert second.authenticate(token) is not None
        assert saver.get_tuple({"configurable": {"thread_id": "none"}}) is None
    finally:
        saver.conn.close()  # type: ignore[attr-defined]


def test_the_database_holds_a_scrypt_hash_never_the_token(url: str, store: TokenStore) -> None:
    token, info = store.create("deploy-bot", groups=["ops"], expires=timedelta(days=30))
    secret = token.removeprefix(f"pgt_{info['id']}_")
    (row,) = stored_rows(url)
    stored = " ".join(str(cell) for cell in row)
    assert info["id"] in stored  # the row read is the token's
    assert "deploy-bot" in stored
    assert token not in stored
    assert secret not in stored
    assert secret[:12] not in stored
    hashes = [cell for cell in row if isinstance(cell, str) and cell.startswith("scrypt$")]
    assert len(hashes) == 1
    assert hashes[0].startswith("scrypt$16384$8$1$")


def test_anything_but_a_live_tokens_text_is_nobody(store: TokenStore) -> None:
    token, info = store.create("deploy-bot")
    secret = token.removeprefix(f"pgt_{info['id']}_")
    other_secret = ("A" if secret[0] != "A" else "B") + secret[1:]
    other_id = ("0" if info["id"][0] != "0" else "1") + info["id"][1:]
    assert store.authenticate(f"pgt_{info['id']}_{other_secret}") is None  # wrong secret
    assert store.authenticate(f"pgt_{other_id}_{secret}") is None  # unknown id
    for malformed in (
        "",
        "pgt_",
        token + "x",
        token[:-1],
        token.removeprefix("pgt_"),
        f"Bearer {token}",
        f" {token}",
        token.upper(),
        f"pgt_{info['id']}{secret}",
    ):
        assert store.authenticate(malformed) is None, malformed
    assert store.authenticate(token) is not None  # the token itself still signs in


def test_a_token_of_another_database_is_nobody(store: TokenStore, tmp_path: Path) -> None:
    with TokenStore(str(tmp_path / "other.db")) as other:
        token, _ = other.create("deploy-bot")
    store.create("deploy-bot")
    assert store.authenticate(token) is None


def test_a_verified_token_is_not_hashed_again_for_a_minute(
    store: TokenStore, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    token, _ = store.create("deploy-bot")
    hashes = scrypt_counter(monkeypatch)
    assert store.authenticate(token) is not None
    assert store.authenticate(token) is not None
    clock.advance(seconds=60)
    assert store.authenticate(token) is not None
    assert len(hashes) == 1
    clock.advance(seconds=1)
    assert store.authenticate(token) is not None
    assert len(hashes) == 2  # verified anew after a minute
    wrong = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert store.authenticate(wrong) is None
    assert store.authenticate(wrong) is None
    assert len(hashes) == 4  # a wrong secret is never believed without its hash


def test_a_revoked_token_is_refused_at_once_though_it_was_just_verified(
    url: str, store: TokenStore, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    token, info = store.create("deploy-bot")
    hashes = scrypt_counter(monkeypatch)
    assert store.authenticate(token) is not None
    assert store.authenticate(token) is not None
    assert len(hashes) == 1  # the second call was answered from what was verified
    with TokenStore(url, clock=clock) as elsewhere:  # another process revokes it
        assert elsewhere.revoke(info["id"]) == 1
    assert store.authenticate(token) is None
    (listed,) = store.list()
    assert token_status(listed, clock()) == "revoked"


def test_threads_of_a_server_sign_in_through_one_store_at_once(store: TokenStore) -> None:
    """A server's threads share one store (one SQLite connection, or a PostgreSQL pool)."""
    tokens = [store.create(f"agent-{number}")[0] for number in range(4)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        found = list(pool.map(store.authenticate, tokens * 8))
    assert [identity["name"] if identity else None for identity in found] == [
        f"agent-{number}" for number in range(4)
    ] * 8


def test_revoking_a_name_ends_every_live_token_of_it(store: TokenStore) -> None:
    first, _ = store.create("deploy-bot")
    second, _ = store.create("deploy-bot", groups=["ops"])
    other, _ = store.create("nightly")
    assert store.revoke("deploy-bot") == 2
    assert store.authenticate(first) is None
    assert store.authenticate(second) is None
    assert store.authenticate(other) is not None
    assert store.revoke("deploy-bot") == 0  # ended already: nothing more to end


def test_revoking_a_token_nobody_has_is_a_usage_error(store: TokenStore) -> None:
    token, _ = store.create("deploy-bot")
    with pytest.raises(PlangateUsageError, match="'deploy-btt'") as raised:
        store.revoke("deploy-btt")
    assert raised.value.hint is not None
    assert "\n" not in str(raised.value)
    assert store.authenticate(token) is not None


def test_an_expired_token_is_refused_at_once(store: TokenStore, clock: Clock) -> None:
    token, info = store.create("deploy-bot", expires=timedelta(hours=1))
    forever, _ = store.create("nightly")
    assert info["expires_at"] == "2026-01-05T10:00:00Z"
    assert store.authenticate(token) is not None
    clock.advance(minutes=59, seconds=59)
    assert store.authenticate(token) is not None
    clock.advance(seconds=1)
    assert store.authenticate(token) is None
    assert store.authenticate(forever) is not None
    statuses = {listed["name"]: token_status(listed, clock()) for listed in store.list()}
    assert statuses == {"deploy-bot": "expired", "nightly": "live"}
    assert store.revoke("deploy-bot") == 0  # an expired token is not live to revoke


def test_the_list_shows_every_token_and_no_secret(store: TokenStore, clock: Clock) -> None:
    first, first_info = store.create("deploy-bot", groups=["ops"], expires=timedelta(days=30))
    clock.advance(minutes=1)
    second, _ = store.create("lee@example.com")
    store.revoke("lee@example.com")
    listed = store.list()
    assert listed[0] == first_info
    assert [info["name"] for info in listed] == ["deploy-bot", "lee@example.com"]
    assert listed[1]["revoked_at"] == "2026-01-05T09:01:00Z"
    assert all(set(info) == set(first_info) for info in listed)
    shown = json.dumps(listed)
    for token in (first, second):
        secret = token.split("_", 2)[2]
        assert secret not in shown
        assert secret[-12:] not in shown


@pytest.mark.parametrize(
    ("name", "groups", "expires", "message"),
    [
        ("", (), None, "needs a name"),
        ("   ", (), None, "needs a name"),
        ("deploy\nbot", (), None, "control character"),
        (" deploy-bot", (), None, "blanks at its ends"),
        ("x" * 257, (), None, "at most 256"),
        ("deploy-bot", ("ops team",), None, "'ops team' is not a group name"),
        ("deploy-bot", ("ops,release",), None, "is not a group name"),
        ("deploy-bot", ("",), None, "'' is not a group name"),
        ("deploy-bot", (), timedelta(0), "more than no time"),
        ("deploy-bot", (), timedelta(days=-1), "more than no time"),
    ],
)
def test_a_token_that_cannot_be_is_refused_and_nothing_is_stored(
    store: TokenStore, name: str, groups: tuple[str, ...], expires: timedelta | None, message: str
) -> None:
    with pytest.raises(PlangateUsageError, match=message):
        store.create(name, groups=groups, expires=expires)
    assert store.list() == []


def test_a_name_of_256_printable_characters_is_a_name(store: TokenStore) -> None:
    token, _ = store.create("é" * 256, groups=["ops-é"])
    identity = store.authenticate(token)
    assert identity is not None
    assert identity["name"] == "é" * 256


def test_the_docstring_example_holds() -> None:
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner()
    for test in finder.find(TokenStore, "TokenStore", globs=vars(tokens_module)):
        runner.run(test, out=sys.stdout.write)
    summary = runner.summarize(verbose=False)
    assert summary.attempted > 0
    assert summary.failed == 0


# --- the command line ------------------------------------------------------------------------


def test_the_cli_prints_a_token_once_lists_it_without_it_and_revokes_it(
    url: str, tmp_path: Path
) -> None:
    cwd = tmp_path
    db = ["--db", url]
    made = plangate(cwd, "tokens", "create", "deploy-bot", "--groups", "ops,admins", *db)
    assert made.returncode == 0, made.stderr
    (token,) = made.stdout.splitlines()
    assert token.startswith("pgt_")
    assert "shown this once" in made.stderr
    assert "deploy-bot" in made.stderr
    assert "admins, ops" in made.stderr
    assert "never expires" in made.stderr
    assert token not in made.stderr
    with TokenStore(url) as store:
        identity = store.authenticate(token)
    assert identity is not None
    assert identity["groups"] == ["admins", "ops"]

    listed = plangate(cwd, "tokens", "list", *db)
    assert listed.returncode == 0, listed.stderr
    secret = token.split("_", 2)[2]
    assert secret not in listed.stdout
    assert secret[:12] not in listed.stdout
    (header, row) = listed.stdout.splitlines()
    assert header.split() == ["id", "name", "groups", "created", "expires", "status"]
    assert row.split()[1:3] == ["deploy-bot", "admins,ops"]
    assert row.split()[-2:] == ["never", "live"]

    revoked = plangate(cwd, "tokens", "revoke", "deploy-bot", *db)
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout == "Revoked 1 token: deploy-bot.\n"
    with TokenStore(url) as store:
        assert store.authenticate(token) is None
    as_json = plangate(cwd, "tokens", "list", "--json", *db)
    (line,) = as_json.stdout.splitlines()
    assert json.loads(line)["status"] == "revoked"
    assert secret not in line


def test_the_cli_says_when_a_token_expires(tmp_path: Path) -> None:
    made = plangate(tmp_path, "tokens", "create", "nightly", "--expires", "12h")
    assert made.returncode == 0, made.stderr
    assert "in no group, expires 20" in made.stderr
    with TokenStore(str(tmp_path / "plangate.db")) as store:
        (info,) = store.list()  # in the database a project-less command uses
    assert info["expires_at"] is not None
    assert info["expires_at"] in made.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("create", "deploy-bot", "--expires", "0d"), "Invalid value for '--expires': '0d'"),
        (("create", "deploy-bot", "--expires", "soon"), "'soon' is not a duration"),
        (("create", "deploy-bot", "--groups", "ops team"), "'ops team' is not a group name"),
        (("create", "deploy-bot", "--groups", ""), "'' is not a group name"),
        (("create", ""), "Invalid value for 'NAME': a token needs a name"),
    ],
)
def test_a_bad_token_on_the_command_line_is_one_line_and_exit_2(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    done = plangate(tmp_path, "tokens", *args)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr
    assert message in done.stderr
    assert not (tmp_path / "plangate.db").exists()  # nothing was made


def test_revoking_an_unknown_token_on_the_command_line_is_one_line_and_exit_1(
    tmp_path: Path,
) -> None:
    plangate(tmp_path, "tokens", "create", "deploy-bot")
    done = plangate(tmp_path, "tokens", "revoke", "deploy-btt")
    assert done.returncode == 1
    assert done.stderr.startswith("plangate: error: no token is named 'deploy-btt'")
    assert done.stderr.count("\n") == 1


def test_listing_or_revoking_in_a_missing_database_makes_none(tmp_path: Path) -> None:
    listed = plangate(tmp_path, "tokens", "list", "--db", "typo.db")
    assert (listed.returncode, listed.stdout) == (0, "No token.\n")
    revoked = plangate(tmp_path, "tokens", "revoke", "deploy-bot", "--db", "typo.db")
    assert revoked.returncode == 1
    assert "no database at typo.db" in revoked.stderr
    assert not (tmp_path / "typo.db").exists()


def test_the_cli_guides_commands_make_list_and_revoke_a_token(tmp_path: Path) -> None:
    done = run_doc_commands("docs/how-to/cli.md", "## Tokens for scripts and agents", tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    token = (tmp_path / "deploy-bot.token").read_text().strip()
    assert token.startswith("pgt_")
    assert token not in done.stdout
    assert "deploy-bot  ops,release" in done.stdout
    assert done.stdout.splitlines()[-1] == "Revoked 1 token: deploy-bot."
