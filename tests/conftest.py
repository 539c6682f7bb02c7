"""Fixtures: every graph test gets a real SQLite file, and `runner` runs it sync and async."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _support import CallLog, Clock, Runner


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
