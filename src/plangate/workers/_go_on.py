"""Workers: going on with one run, as a `go_on` job does, in the worker's process.

A job carries JSON only: the thread, and either a resume value (a decision checked by the door,
by interrupt id, as `BoundDecision.resume`; or an expiry's closing, `EXPIRED_DECISION` by
interrupt id), a start (the plan and the setup `plangate run` checked), or neither (go on with
a run whose process stopped between two steps). The run goes on under its thread's lock, taken
by the graph itself (`PlangateGraph.stream`), until it pauses or ends.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.errors import GraphDrained
from langgraph.runtime import RunControl
from langgraph.types import Command, StateSnapshot
from typing_extensions import NotRequired, TypedDict

from plangate._time import parse_iso
from plangate.errors import (
    AdapterError,
    PlangateUsageError,
    ResumeConflict,
    UnknownThread,
)
from plangate.identity._gate import STARTED_BY, STARTER
from plangate.project import Project, RunSetup
from plangate.runs.guarded_graph import PlangateGraph
from plangate.runs.service import ThreadExists
from plangate.runs.stored import EXPIRED_DECISION, is_approval_request

__all__ = ("START_ID", "Drains", "GoOn", "RunStart", "is_refusal")

log = logging.getLogger("plangate.workers")

START_ID = "plangate_start"
"""The checkpoint metadata key of the start job a run was started by."""


class RunStart(TypedDict):
    """What a `go_on` job that starts a run carries: the plan as `plangate run` validated it,
    the setup it checked (the project file, the profile, offline mode, fixtures), and an id of
    its own that the run records, so that an attempt of the job tried again knows its run from
    another one started in the same thread meanwhile."""

    plan: dict[str, Any]
    project: str
    profile: str | None
    offline: bool
    fixtures: list[str]
    started_by: str | None
    start_id: str
    starter: NotRequired[dict[str, Any] | None]
    """A door's word for who starts it (`STARTER`: `{"identity", "assertion"}`, signed with
    the project's key), when the door verified them (the inbox signed in); `plan_start`
    checks it as it checks one given in a run's own process."""


def is_refusal(exc: BaseException) -> bool:
    """Whether `exc` says the job can never succeed as it is (a stale or invalid decision, a
    profile mismatch, a tool not available, nothing pending): the job fails, without retry, and
    the run stays as it was. A run held by another process (`ResumeConflict`), a tool source
    that cannot be reached (`AdapterError`) and anything else (the database gone away) is
    infrastructure: retried with backoff."""
    if isinstance(exc, (ResumeConflict, AdapterError)):
        return False
    return isinstance(exc, PlangateUsageError)


def _closes_expired(resume: Mapping[str, Any]) -> bool:
    return all(value == EXPIRED_DECISION for value in resume.values())


class Drains:
    """The runs going on in this worker process, each with the `RunControl` that stops it where
    one step ends and the next has not started: a worker asked to stop finishes the steps in
    flight, and queues the rest of each run again."""

    def __init__(self) -> None:
        self._controls: set[RunControl] = set()
        self._guard = threading.Lock()
        self.stopping = False

    def add(self, control: RunControl) -> None:
        with self._guard:
            self._controls.add(control)
            if self.stopping:
                control.request_drain("worker stopping")

    def discard(self, control: RunControl) -> None:
        with self._guard:
            self._controls.discard(control)

    def drain_all(self) -> None:
        with self._guard:
            self.stopping = True
            for control in self._controls:
                control.request_drain("worker stopping")


class GoOn:
    """Goes on with runs of one database, one graph per run setup (as `RunService` keeps them:
    one checkpointer pool per setup, shared by the worker's jobs).

    Args:
        db: The database of the runs (the worker's project's).
        project: Where runs without a project file of their own go on, and new runs start
            when a start names none.
        drains: Where a worker asked to stop finds the runs to drain.
    """

    def __init__(self, db: str, project: Project, drains: Drains) -> None:
        self.db = db
        self.project = project
        self.drains = drains
        self._graphs: dict[RunSetup, PlangateGraph] = {}
        self._reader: PlangateGraph | None = None
        self._guard = threading.Lock()

    @property
    def reader(self) -> PlangateGraph:
        """A graph for reading the database's runs (one pool for the worker's reads)."""
        from plangate.project import reader

        with self._guard:
            if self._reader is None:
                self._reader = reader(self.db)
            return self._reader

    def deadlines(self, thread: str) -> dict[str, datetime]:
        """Interrupt id -> deadline of each request `thread` waits on now; `{}` for a thread
        that waits on nothing (decided, finished, or not started)."""
        snapshot = self.reader.get_state({"configurable": {"thread_id": thread}})
        return {
            waiting.id: parse_iso(waiting.value["expires_at"])
            for waiting in snapshot.interrupts
            if is_approval_request(waiting.value)
        }

    def graph(self, setup: RunSetup, project: Project) -> PlangateGraph:
        with self._guard:
            if setup not in self._graphs:
                self._graphs[setup] = setup.graph(project, self.db)
            return self._graphs[setup]

    def __call__(
        self,
        thread: str,
        resume: Mapping[str, Any] | None = None,
        start: RunStart | None = None,
        *,
        retried: bool = False,
    ) -> str:
        """Go on with `thread` until it pauses or ends; returns where it stands (`waiting`,
        `finished`, `drained`).

        A job tried again (`retried`: its worker died, or the infrastructure failed it) may
        find that an earlier attempt got further: its decision applied, its run started. It
        then goes on from where the run stands, as a resume of a stopped run does, and does
        nothing to a run that waits or has finished.

        Raises:
            What the graph refuses the run with (see `is_refusal`), and `ResumeConflict`.
        """
        config: RunnableConfig = {"configurable": {"thread_id": thread}}
        value: Any = None if resume is None else Command(resume=dict(resume))
        existing = self._existing(thread)
        if existing is not None:
            graph, snapshot = existing
            waiting = {i.id for i in snapshot.interrupts}
            # An expiry's closing queued twice (two sweeps before a worker took the first) is
            # as harmless as a retried job: the requests it closes are closed already.
            again = retried or (resume is not None and _closes_expired(resume))
            taken = resume is not None and again and not waiting & set(resume)
            if start is not None and (snapshot.metadata or {}).get(START_ID) != start["start_id"]:
                raise ThreadExists(thread)  # another start got there first
            if start is not None or taken:  # an earlier attempt or job got this far
                if waiting:
                    return "waiting"
                if snapshot.values.get("result") is not None:
                    return "finished"
                value = None
        elif start is not None:
            graph, value = self._starting(start), {"plan": start["plan"]}
            config["metadata"] = {START_ID: start["start_id"]}
            if start["started_by"]:
                config["metadata"][STARTED_BY] = start["started_by"]
            if start.get("starter"):
                config["metadata"][STARTER] = start["starter"]
        else:
            raise UnknownThread(thread)
        control = RunControl()
        self.drains.add(control)
        try:
            for _ in graph.stream(value, config, stream_mode="custom", control=control):
                pass
        except GraphDrained:
            log.info("run %r drained: the worker stops; it goes on in another job", thread)
            return "drained"
        finally:
            self.drains.discard(control)
        return "waiting" if graph.get_state(config).interrupts else "finished"

    def _existing(self, thread: str) -> tuple[PlangateGraph, StateSnapshot] | None:
        """The graph `thread` goes on with, in its own project and setup, and its state;
        `None` for a thread nobody started yet."""
        snapshot = self.reader.get_state({"configurable": {"thread_id": thread}})
        if not snapshot.values and not snapshot.next:
            return None
        setup = RunSetup.of(snapshot)
        return self.graph(setup, setup.project_for(self.db, self._own(setup))), snapshot

    def _own(self, setup: RunSetup) -> Project | None:
        """This worker's project for runs that started in it (or in no file: the demo)."""
        file = str(self.project.file) if self.project.file else ""
        return self.project if file and setup.project == file else None

    def _starting(self, start: RunStart) -> PlangateGraph:
        project = (
            self.project
            if start["project"] in ("", str(self.project.file))
            else Project.load(start["project"])
        )
        setup = RunSetup.start(
            project, profile=start["profile"], offline=start["offline"], fixtures=start["fixtures"]
        )
        return self.graph(setup, project)
