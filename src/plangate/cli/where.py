"""Where a command works: its project (`--project`, `PLANGATE_PROJECT`, the nearest
`plangate.yaml`, else the built-in demo), its database, and the runs in it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plangate.cli.output import say
from plangate.errors import (
    PlangateUsageError,
    UnknownThread,
)
from plangate.identity import DecisionSigner
from plangate.plan import Plan
from plangate.project import Project, RunSetup, demo_root
from plangate.runs.anchors import AnchorSink, read_anchor_file
from plangate.runs.checkpoint import is_postgres_url, sqlite_path
from plangate.runs.stored import (
    Reread,
    StoredRun,
    WaitingInterrupt,
    open_store,
    read_stored_run,
)

# The graph (LangGraph's graph machinery) is imported where a command goes on with a run: the
# commands that only read runs read them with the saver alone (`plangate.runs.stored`).
if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig
    from langgraph.checkpoint.base import BaseCheckpointSaver
    from langgraph.types import StateSnapshot

    from plangate.runs.guarded_graph import PlangateGraph
    from plangate.tracing import Anchor

DEFAULT_DB = "plangate.db"

# The database a command uses when given no --db (`find_project` sets it): hints leave it out.
_implied_db = [DEFAULT_DB]


def db_flag(db: str) -> str:
    return "" if db in (DEFAULT_DB, _implied_db[0]) else f" --db {db}"


def find_project(project: str | None, db: str | None) -> tuple[Project | None, str]:
    """The project the command works in (the one named, else the nearest), and its database:
    `--db`, else the project's, else `plangate.db`."""
    found = Project.find(project)
    _implied_db[0] = found.db if found else DEFAULT_DB
    return found, db or _implied_db[0]


def project_of_runs(project: str | None, db: str | None) -> tuple[Project | None, str]:
    """For commands on existing runs: the project named with --project (a run goes on under
    its own project unless one is named) and the database (see `find_project`)."""
    found, url = find_project(project, db)
    return (found if project else None), url


# --- reading runs -----------------------------------------------------------------------------


def require_db(db: str) -> None:
    """Refuse a SQLite database that does not exist: opening it would create it (and its
    folders), leaving an empty database behind a mistyped --db. A folder goes on, for opening
    it to say it is one."""
    if is_postgres_url(db):
        return
    path = sqlite_path(db)
    if path != ":memory:" and not Path(path).exists():
        raise PlangateUsageError(
            f"no database at {path}; pass --db PATH or start a run with plangate run"
        )


def _readable(db: str) -> str:
    """The database to read runs from: `db`, refused if it is not there (`require_db`); a
    project's database that no run has made yet reads as empty (and is not made by reading)."""
    implied = db != DEFAULT_DB and db == _implied_db[0] and not is_postgres_url(db)
    if implied and not Path(sqlite_path(db)).exists():
        return "sqlite:///:memory:"
    require_db(db)
    return db


def open_reader(db: str) -> PlangateGraph:
    """A graph over an existing database, for reading its runs; it loads no tools."""
    from plangate.project import reader

    return reader(_readable(db))


def open_runs(db: str) -> BaseCheckpointSaver[Any]:
    """The saver of an existing database, for reading its runs without a graph
    (`plangate.runs.stored`)."""
    return open_store(_readable(db))


def stored_run(db: str, thread: str) -> tuple[BaseCheckpointSaver[Any], StoredRun]:
    """The saver of `db` and `thread`'s run as stored in it."""
    saver = open_runs(db)
    run = read_stored_run(saver, thread)
    if run is None:
        raise UnknownThread(thread)
    return saver, run


def rereader(db: str) -> Reread:
    """`plangate.runs.stored.Reread` for `db`: the interrupts a thread waits on, from its state
    rebuilt by a reader graph, made at the first run that needs one."""
    graphs: list[PlangateGraph] = []

    def reread(thread: str) -> Sequence[WaitingInterrupt]:
        if not graphs:
            graphs.append(open_reader(db))
        return graphs[0].get_state({"configurable": {"thread_id": thread}}).interrupts

    return reread


def read_run(db: str, thread: str) -> tuple[PlangateGraph, StateSnapshot]:
    """A reader of `db` and the state of `thread` in it."""
    probe = open_reader(db)
    snapshot = probe.get_state({"configurable": {"thread_id": thread}})
    if not snapshot.values and not snapshot.next:
        raise UnknownThread(thread)
    return probe, snapshot


def audited_run(
    project: str | None, db: str | None, thread: str, file: Path | None
) -> tuple[PlangateGraph, AnchorSink | list[Anchor] | None, DecisionSigner | None]:
    """A reader of the database a run is in, where the run's anchors are (`file`, given with
    `--anchors` and read now, else the sink of the project it runs in, see `existing_run`),
    and the key its decision proofs are checked with (that project's `identity:`). A thread
    with no checkpoint left may have been deleted whole: its anchors are looked for in the
    project named or found here, and `verify_trace` says it is unknown only if there are
    none."""
    found, db = find_project(project, db)
    graph = open_reader(db)
    snapshot = graph.get_state({"configurable": {"thread_id": thread}})
    if not snapshot.values and not snapshot.next:
        runs_in = found
    else:
        runs_in = RunSetup.of(snapshot).project_for(db, found if project else None)
    signer = runs_in.signer if runs_in else None
    if file is not None:
        return graph, read_anchor_file(file), signer
    return graph, runs_in.anchors if runs_in else None, signer


def existing_run(
    db: str,
    thread: str,
    project: Project | None,
    *,
    graphs: dict[RunSetup, PlangateGraph] | None = None,
) -> tuple[PlangateGraph, RunnableConfig, StateSnapshot]:
    """The graph and config a thread goes on with (in its own project, unless `project` is
    named; its profile, offline mode and fixtures, from its checkpoint metadata), and the
    thread's state as read to find them. The graph records the project it goes on in.

    A command that goes on with many runs passes `graphs`: the graph of each setup, built once
    and kept there, so that it holds one database connection (and one tool session) per setup,
    not one per run."""
    _, snapshot = read_run(db, thread)
    setup = RunSetup.of(snapshot)
    where = setup.project_for(db, project)
    if where.file and setup.project_fingerprint not in ("", where.fingerprint):
        # Said on stdout, as part of what the command shows: stderr stays one line on error.
        if str(where.file) == setup.project:
            say(f"Note: {where.file} has changed since run {thread} started.")
        else:
            say(
                f"Note: run {thread} started in project {setup.project}; it goes on in "
                f"{where.file}, a different file."
            )
    graph = graphs.get(setup) if graphs is not None else None
    if graph is None:
        graph = setup.graph(where, db)
        if graphs is not None:
            graphs[setup] = graph
    return graph, {"configurable": {"thread_id": thread}}, snapshot


def plan_steps(values: Mapping[str, Any]) -> list[str]:
    """The ids of a run's steps, in the order they run (the plan is stored in that order)."""
    return [step.id for step in Plan.from_state(values.get("plan") or {}).steps]


def new_run_project(project: str | None, db: str | None) -> tuple[Project, str]:
    """The project new runs start in, and its database; without a project file, the built-in
    demo beside the database."""
    found, url = find_project(project, db)
    return found or Project.demo(demo_root(url)), url
