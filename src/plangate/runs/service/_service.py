"""The acting side of the run service: starting runs, and going on with them after a decision,
a resume or an expiry, in worker threads; or, with `workers:` on in the service's project, in
its queue (`plangate.workers`): the service checks as it always does, then queues one `go_on`
job under the thread's lock and never runs a graph in its own process."""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointTuple
from langgraph.types import Command

from plangate._files import parse_document
from plangate._time import utc_now
from plangate.errors import (
    InvalidDecision,
    NotStopped,
    PlangateError,
    PlangateUsageError,
    PlanValidationError,
    ProfileError,
    ResumeConflict,
    StaleDecision,
    ThreadError,
)
from plangate.identity._gate import STARTER
from plangate.identity._identity import Identity, is_verified, shown_name
from plangate.plan import parse_plan
from plangate.preflight import PreflightReport, preflight, tool_rows
from plangate.project import Project, RunSetup
from plangate.runs.expiry import watch_expiry
from plangate.runs.guarded_graph import PlangateGraph
from plangate.runs.history import (
    remaining_tools,
)
from plangate.runs.service._decisions import bind_decision
from plangate.runs.service._reading import RunReader, thread_config
from plangate.runs.service._views import (
    STARTED_BY,
    DecisionTaken,
    RunStarted,
    started_by,
)
from plangate.runs.stored import (
    is_approval_request,
    run_state,
)

if TYPE_CHECKING:
    from plangate.workers import RunStart

__all__ = ("NotStopped", "RunService", "ThreadExists", "require_stopped")

log = logging.getLogger("plangate.server")

# A door's word for who started a run is read once, as the run makes its first move.
_STARTER_TTL = 300.0
# A queued start's word waits for a worker to take the job, behind the queue's backlog.
_QUEUED_STARTER_TTL = 86400.0
_THREAD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")


class ThreadExists(ThreadError):
    """A new run was to start in a thread that already holds one."""

    def __init__(self, thread_id: str):
        super().__init__(
            thread_id, f"thread {thread_id!r} already holds a run", hint="leave the thread id empty"
        )


def require_stopped(thread: str, saved: CheckpointTuple) -> None:
    """Refuse to resume `thread` unless its run stopped mid-way (`NotStopped`): a run waiting
    for a decision goes on by a decision, and a finished one has nothing left. Its latest
    checkpoint `saved` tells: a process killed after a step saved its writes but before the
    checkpoint that follows them left a run that is neither, and resumable."""
    state = run_state(saved)
    if state != "unfinished":
        raise NotStopped(thread, waiting=state == "waiting")


class RunService(RunReader):
    """The runs of one database, as the faces show and drive them: starts, decisions (bound by
    `bind_decision`), resumes and expiries go on in a pool of worker threads.

    Args:
        db: The checkpoint database, as `plangate run --db` takes it.
        project: Where new runs start (its tools, its profiles); default: the built-in demo
            beside the database. A run goes on in the project it started in.
        workers: Runs that may go on at once in this process.
        start_timeout: Seconds a request waits for a run it started or resumed to make its
            first move before answering anyway.
    """

    def __init__(
        self,
        db: str,
        *,
        project: Project | None = None,
        workers: int = 8,
        start_timeout: float = 10.0,
    ) -> None:
        super().__init__(db, project=project)
        self._graphs: dict[RunSetup, PlangateGraph] = {}
        self._start_timeout = start_timeout
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="plangate-run")

    def close(self) -> None:
        """Let the runs going on reach their next pause or their end."""
        self._pool.shutdown(wait=True)

    def _graph(self, setup: RunSetup) -> PlangateGraph:
        """One graph (and one checkpointer connection) per distinct setup, reused by all runs."""
        project = self._project_of(setup)
        with self._guard:
            if setup not in self._graphs:
                self._graphs[setup] = setup.graph(project, self.db)
            return self._graphs[setup]

    # -- acting --------------------------------------------------------------------------

    def decide(
        self, thread: str, body: Mapping[str, Any], *, caller: Identity | None = None
    ) -> DecisionTaken:
        """Check a decision on a run's pending approval, then resume the run in the background.

        `body` is a `Decision` as JSON with `approver` required (`reason` too, to reject) and,
        optionally, the `interrupt_id` of the request the approver saw: a decision on a request
        that someone else decided first is refused rather than applied to the next one. Its
        `digest`, when given, must be that request's; an edit must send real values, not the
        redaction markers of a copy taken from the trace (`parse_decision`).

        `caller` is who the face knows is deciding: a verified one (signed in, a token) decides
        as themselves, with a proof the graph checks (`bind_decision`); the body's `approver`,
        if any, must be them.

        Raises:
            UnknownThread, NoPendingApproval, StaleDecision, ResumeConflict, InvalidDecision.
        """
        snapshot = self._snapshot(thread)
        graph = self._graph(self._setup(snapshot))
        requests = {i.id: i.value for i in snapshot.interrupts if is_approval_request(i.value)}
        fields = dict(body)
        named = fields.pop("interrupt_id", None)
        bound = bind_decision(
            thread, requests, fields, graph=graph, interrupt_id=named, caller=caller
        )
        graph.reach(remaining_tools(snapshot))  # as `plangate approve`: a source down, 422
        ((interrupt_id, decision),) = bound.resume.items()
        taken: DecisionTaken = {
            "thread": thread,
            "decision": decision["decision"],
            "interrupt_id": interrupt_id,
        }
        if self.queues:  # the signed decision rides in the job, checked again there
            taken["status"], taken["job"] = "queued", self._queue(thread, bound.resume)
            return taken
        config = self._config(thread, started_by(snapshot))
        try:
            self._launch(thread, graph, bound.command, config)
        except InvalidDecision:
            # Checked above, so the graph refused the interrupt id: decided meanwhile.
            if interrupt_id not in {i.id for i in self._snapshot(thread).interrupts}:
                raise StaleDecision(thread) from None
            raise
        return taken

    def expire(self, thread: str, closing: Mapping[str, dict[str, Any]]) -> int | None:
        """Close a run's expired requests (`closing`: interrupt id -> `EXPIRED_DECISION`, as
        `sweep_expired` finds them) and let it go on in the background, as a decision does;
        with workers on, queue the closing and return the job's id (`None` when it runs here).

        Raises:
            UnknownThread, ResumeConflict (a process runs it), and what the graph refuses the
            run with (`ToolNotAvailable`, `ProfileMismatch`): the run stays paused.
        """
        snapshot = self._snapshot(thread)
        if self.queues:
            return self._queue(thread, dict(closing))
        config = self._config(thread, started_by(snapshot))
        self._launch(thread, self._graph(self._setup(snapshot)), Command(resume=closing), config)
        return None

    def watch_expiry(self, *, every: float, stop: threading.Event) -> None:
        """Close the approvals of the database as they expire (`plangate.watch_expiry`), until
        `stop` is set; each run goes on in the background. Every run closed or refused is
        logged; a failure of the watch itself (the database gone away) is logged, and the
        watch starts again `every` seconds later.

        With workers on (`queues`), it returns at once: the workers close them at their
        deadline, and a sweep here would only queue the same closings again."""
        if self.queues:
            log.info("expiry: the workers close expired approvals; no watch here")
            return
        while not stop.is_set():
            try:
                for thread, closed in watch_expiry(
                    self._probe, every=every, stop=stop, now=utc_now, close=self.expire
                ):
                    if isinstance(closed, PlangateError):
                        log.warning("expired approval of run %r left waiting: %s", thread, closed)
                    else:
                        log.info("closed the expired approvals of run %r", thread)
            except Exception:
                log.exception("the expiry watch failed; it starts again in %s s", every)
                stop.wait(every)

    def resume(self, thread: str) -> dict[str, Any]:
        """Go on with a run whose process stopped mid-way, in the background, as `plangate
        resume` does: the step it was in runs again with the same idempotency key, so tools
        that honour it do not act twice.

        Raises:
            UnknownThread, NotStopped (it waits for a decision, or has finished),
            ResumeConflict (a process runs it).
        """
        saved, snapshot = self._read(thread)
        require_stopped(thread, saved)
        setup = self._setup(snapshot)
        config = self._config(thread, started_by(snapshot))
        graph = self._graph(setup)
        graph.reach(remaining_tools(snapshot))
        if self.queues:  # a worker takes the run's lock and goes on with it
            return {"thread": thread, "status": "queued", "job": self._queue(thread)}
        # The graph takes the run's lock before it goes on: `ResumeConflict` if a process runs
        # it. A run that paused or finished between the read above and the lock is harmless to
        # go on with: given no input, it asks the same approval again, or does nothing.
        self._launch(thread, graph, None, config)
        return {"thread": thread}

    def start(
        self,
        *,
        plan: Any,
        profile: str | None = None,
        thread: str | None = None,
        offline: bool = False,
        caller: Identity | None = None,
    ) -> RunStarted:
        """Start a plan (YAML/JSON text, a mapping, or a list of steps) in the server's project
        under one of its profiles (default: the project's), as `plangate run` does, and return
        once it has made its first move. The run records `caller` as who started it, verified
        with the project's key when the face verified them (`self_approval` reads it).

        Raises:
            PlanValidationError, ProfileError, ThreadExists, PlangateUsageError.
        """
        parsed = parse_plan(_document(plan), source="plan")
        setup = self._new_setup(profile, offline)
        thread = thread or f"run-{uuid.uuid4().hex[:8]}"
        if not _THREAD_ID.fullmatch(thread):
            raise PlangateUsageError(
                f"thread id {thread!r} is not allowed",
                hint="letters, digits and . _ : - (at most 100), starting with a letter or digit",
            )
        if self._saver.get_tuple(thread_config(thread)) is not None:
            raise ThreadExists(thread)
        graph = self._graph(setup)
        if not offline:  # reach the servers the plan needs now: one that is down stores nothing
            for step in parsed.steps:
                graph.tools.get(step.tool)
        config = self._config(thread, shown_name(caller) if caller else None)
        queued = self.queues
        starter: dict[str, Any] | None = None
        if caller is not None and is_verified(caller) and graph.governance.signer is not None:
            # A queued start is read when a worker takes it, maybe after a backlog: longer.
            ttl = _QUEUED_STARTER_TTL if queued else _STARTER_TTL
            vouched = graph.governance.signer.assert_identity(caller, ttl=ttl)
            starter = {"identity": caller, "assertion": vouched}
            config["metadata"][STARTER] = starter
        started: RunStarted = {"thread": thread, "profile": setup.profile, "offline": offline}
        if queued:
            start: RunStart = {
                "plan": parsed.to_input(),
                "project": str(self.project.file or ""),
                "profile": setup.profile,
                "offline": offline,
                "fixtures": [],
                "started_by": config["metadata"].get(STARTED_BY),
                "start_id": uuid.uuid4().hex,
                "starter": starter,
            }
            started["status"], started["job"] = "queued", self._queue(thread, start=start)
            return started
        self._launch(thread, graph, {"plan": parsed}, config)
        return started

    # -- before a run ----------------------------------------------------------------------

    def check(
        self, *, plan: Any, profile: str | None = None, offline: bool = False
    ) -> PreflightReport:
        """The pre-flight report of a plan (as `start` takes it) under one of the project's
        profiles, as `plangate check` gives it: nothing runs and nothing is stored.

        Raises:
            PlanValidationError (text that is not YAML/JSON), ProfileError.
        """
        document = _document(plan)
        return preflight(self._graph(self._new_setup(profile, offline)), document)

    def tools(self, *, profile: str | None = None, offline: bool = False) -> list[dict[str, Any]]:
        """The project's tools as plans may use them under one of its profiles: each tool's
        row of `plangate tools --json`, with its description and the JSON schema of its args.
        Reaches every MCP server and OpenAPI document of the project.

        Raises:
            ProfileError, and what a tool source that cannot be reached raises.
        """
        graph = self._graph(self._new_setup(profile, offline))
        rows = tool_rows(graph, source_of=self.project.tools.source_of, offline=offline)
        for row in rows:
            tool = graph.governance.described(row["tool"])
            row["description"] = tool.description if tool else ""
            row["args"] = tool.args if tool else {}
        return rows

    def profile_named(self, profile: str | None) -> str:
        """The profile a new run starts under: `profile`, one of the project's by name, or by
        default the project's own; never a file path, which would make the service read files
        a caller names.

        Raises:
            ProfileError: No profile of the project's has that name.
        """
        profile = profile or self.project.spec.profile
        if profile not in self.project.profile_names:
            raise ProfileError(
                f"unknown profile {profile!r}",
                field="profile",
                hint=", ".join(self.project.profile_names),
            )
        return profile

    def _new_setup(self, profile: str | None, offline: bool) -> RunSetup:
        return RunSetup.start(self.project, profile=self.profile_named(profile), offline=offline)

    @staticmethod
    def _config(thread: str, starter: Any) -> RunnableConfig:
        # The run's setup rides on its graph (`Project.graph`): the project it goes on in.
        metadata = {STARTED_BY: str(starter)} if starter else {}
        return {"configurable": {"thread_id": thread}, "metadata": metadata}

    @property
    def queues(self) -> bool:
        """Whether runs of this service go on in its project's queue (`workers:` on, and the
        service's database is the project's): then nothing runs in this process."""
        project = self.project
        if not project.queued or project.db != self.db:
            return False
        _ = project.workers  # a SQLite database with workers: named, before anything is done
        return True

    def _queue(
        self,
        thread: str,
        resume: Mapping[str, Any] | None = None,
        *,
        start: RunStart | None = None,
    ) -> int:
        """Queue one `go_on` job for `thread` in the service's project's queue; its id. Every
        run of the database goes there, whatever project it started in: a worker goes on
        with each in its own project (`GoOn`), and this process never runs one."""
        from plangate.workers import queue_go_on

        return queue_go_on(self.project, thread, resume, start=start)

    def _claim(self, thread: str) -> None:
        """This process runs a thread once at a time (the graph's own lock covers the other
        processes); a second claim fails at once, as the graph's lock would."""
        with self._probing, self._guard:
            if thread in self._active:
                raise ResumeConflict(thread)
            self._active.add(thread)

    def _release(self, thread: str) -> None:
        with self._guard:
            self._active.discard(thread)

    def _launch(
        self, thread: str, graph: PlangateGraph, value: Any, config: RunnableConfig
    ) -> None:
        """Run `graph` on a worker thread; wait until it has made its first move, and raise
        what it refused with (a conflict, a bad decision) if it refused."""
        moved = threading.Event()
        refused: list[Exception] = []

        def work() -> None:
            try:
                for _ in graph.stream(value, config, stream_mode="custom"):
                    moved.set()
            except Exception as exc:
                if moved.is_set():
                    log.exception("run %r failed", thread)
                else:
                    refused.append(exc)
            finally:
                self._release(thread)
                moved.set()

        self._claim(thread)
        try:
            self._pool.submit(work)
        except RuntimeError:  # the pool is shut down: the server is stopping
            self._release(thread)
            raise
        moved.wait(self._start_timeout)
        if refused:
            raise refused[0]


def _document(plan: Any) -> Any:
    """A plan as YAML/JSON text parsed, anything else as it is."""
    if not isinstance(plan, str):
        return plan
    try:
        return parse_document(plan, what="plan")
    except ValueError as exc:
        raise PlanValidationError(str(exc)) from None
