"""How a run of the demo toolkit was set up (profile, outbox, offline mode, fixtures), kept with
the run so that any process (`plangate approve`, `plangate serve`, another worker) rebuilds the
graph the run started on."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from langchain_core.runnables import RunnableConfig
from langgraph.types import StateSnapshot

from plangate.adapters.demo import demo_mocks, demo_toolkit
from plangate.adapters.mock import mock_tools
from plangate.graph import build_graph
from plangate.profiles import load_profile
from plangate.runs.checkpoint import is_postgres_url, open_checkpointer, sqlite_path
from plangate.runs.guarded_graph import PlangateGraph

__all__ = ("SETUP_KEY", "RunSetup", "outbox_for")

SETUP_KEY = "plangate_cli"
"""The checkpoint metadata key under which a run keeps its `RunSetup`."""


def outbox_for(db: str) -> str:
    """The demo outbox beside a SQLite database; in the current folder for other databases."""
    path = ":memory:" if is_postgres_url(db) else sqlite_path(db)
    base = Path(".") if path == ":memory:" else Path(path).parent
    return str((base / "plangate-outbox.db").resolve())


@dataclass(frozen=True)
class RunSetup:
    """How `plangate run` set a run up; kept in its checkpoint metadata so that `approve`,
    `reject` and `resume`, in any process, rebuild the same graph."""

    profile: str = "enterprise"
    outbox: str = "plangate-outbox.db"
    offline: bool = False
    fixtures: tuple[str, ...] = ()

    def graph(self, db: str | None) -> PlangateGraph:
        """The graph of this setup on database `db` (`None`: no checkpointer, for checking a
        plan without running it)."""
        profile = load_profile(self.profile)
        if self.offline:
            profile = profile.model_copy(update={"offline": True})
        return build_graph(
            demo_toolkit(self.outbox),
            profile=profile,
            # A tool in a fixture file replaces the demo's mock of it.
            mocks={mock.name: mock for mock in [*demo_mocks(), *mock_tools(*self.fixtures)]},
            checkpointer=open_checkpointer(db) if db is not None else None,
        )

    def config(self, thread: str) -> RunnableConfig:
        # A JSON string: LangGraph keeps only scalar config metadata in checkpoints.
        return {
            "configurable": {"thread_id": thread},
            "metadata": {SETUP_KEY: json.dumps(asdict(self))},
        }

    @classmethod
    def reader(cls, db: str) -> RunSetup:
        """A setup for reading the runs of `db` (listing them, finding their own setup); its
        graph never runs a step, so its profile does not matter."""
        return cls(profile="technical", outbox=outbox_for(db))

    @classmethod
    def of(cls, snapshot: StateSnapshot, db: str) -> RunSetup:
        """The setup a run was started with, from its latest checkpoint's metadata."""
        stored = json.loads(str((snapshot.metadata or {}).get(SETUP_KEY) or "{}"))
        stored["fixtures"] = tuple(stored.get("fixtures", ()))
        return cls(**{"outbox": outbox_for(db), **stored})
