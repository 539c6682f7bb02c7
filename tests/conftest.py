"""Fixtures: every graph test gets a real SQLite file, and `runner` runs it sync and async."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from _support import CHROMIUM_ARGS, CallLog, Clock, Runner
from playwright.sync_api import Browser, sync_playwright

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def log() -> CallLog:
    return CallLog()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "runs.db"


@pytest.fixture(params=["sync", "async"])
def runner(request: pytest.FixtureRequest, db_path: Path) -> Iterator[Runner]:
    """Runs each graph test twice: through `invoke`/`stream` and through `ainvoke`/`astream`,
    each on a real SQLite file."""
    driver = Runner(mode=request.param, db_path=db_path)
    yield driver
    driver.close()


# The server `.ci/postgres` starts, with the role and database it creates.
DEFAULT_POSTGRES_URL = "postgresql://plangate:plangate@127.0.0.1:5432/plangate"


def _reachable(url: str) -> bool:
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.OperationalError:
        return False
    except psycopg.ProgrammingError as error:
        pytest.fail(f"not a PostgreSQL URL: {url!r} ({error})")
    return True


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """A URL of a running PostgreSQL server: `PLANGATE_TEST_POSTGRES_URL`, or the machine's
    own cluster, started by `.ci/postgres` if it is down. Never a skip: the PostgreSQL tests are
    part of what plangate promises."""
    url = os.environ.get("PLANGATE_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    if not _reachable(url) and url == DEFAULT_POSTGRES_URL:
        subprocess.run(
            [str(ROOT / ".ci" / "postgres")],
            check=False,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
        )
    if not _reachable(url):
        pytest.fail(
            f"PostgreSQL is not reachable at {url}: run .ci/postgres (as root), or set "
            "PLANGATE_TEST_POSTGRES_URL to a server where the role may create databases"
        )
    return url


@pytest.fixture(scope="module")
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A database of its own for each test module, dropped afterwards."""
    import psycopg

    name = f"plangate_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield postgres_server.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium, headless, for the tests of pages (the inbox, its sign-in)."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()
