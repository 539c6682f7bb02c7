"""The read side of the run service: the runs of one database as the faces show them."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from langgraph.types import StateSnapshot

from plangate._time import iso, utc_now
from plangate.errors import (
    PlangateUsageError,
    UnknownThread,
)
from plangate.identity import DecisionGate, Identity
from plangate.plan import Plan
from plangate.profiles import Profile
from plangate.project import Project, RunSetup, demo_root, reader
from plangate.runs.checkpoint import is_postgres_url
from plangate.runs.history import (
    waiting_approvals,
)
from plangate.runs.queue import QueuedDecision, QueuedStart, queued_decisions, queued_start
from plangate.runs.service._views import (
    ApprovalView,
    QueuedRunView,
    RunSummary,
    RunView,
    approval_view,
    as_is,
    budget_view,
    queued_run_view,
    started_by,
    step_rows,
    waiting_view,
    with_queue,
)
from plangate.runs.stored import (
    FINISHED,
    StoredRun,
    WaitingInterrupt,
    is_approval_request,
    list_threads,
    open_store,
    read_stored_run,
    run_status,
    stored_values,
    thread_checkpoints,
    trace_of,
)
from plangate.runs.stored import trace_since as stored_trace_since
from plangate.tracing import TraceEvent, outcome_signals, redact

__all__ = ("FINISHED", "RunReader", "thread_config")

_RISKS = ("low", "medium", "high")


def thread_config(thread: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread}}


class RunReader:
    """The runs of one database, as the faces show them: what waits for whom, each run's steps,
    budget and signals, its trace and how far it got. `RunService` acts on them too.

    Args:
        db: The checkpoint database, as `plangate run --db` takes it.
        project: Where new runs start (its tools, its profiles); default: the built-in demo
            beside the database. A run goes on in the project it started in.
    """

    def __init__(self, db: str, *, project: Project | None = None) -> None:
        self.db = db
        self.project = project or Project.demo(demo_root(db))
        self._projects: dict[str, Project] = {}
        if self.project.file:
            self._projects[str(self.project.file)] = self.project
        self._guard = threading.Lock()
        # The runs this process runs now (`RunService` starts them).
        self._active: set[str] = set()
        # Held while a status read tries a run's lock, and by `RunService._claim`: a run this
        # process starts never finds its lock taken by this process's own look at it.
        self._probing = threading.Lock()
        # The graph that rebuilds a run's whole state, for going on with it; reading a run
        # needs only the saver (`plangate.runs.stored`), as the CLI's reading commands do.
        self._probe = reader(db)
        self._store = open_store(db)

    def _project_of(self, setup: RunSetup) -> Project:
        """The project a run goes on in, loaded once per file (its tools with it)."""
        with self._guard:
            if setup.project not in self._projects:
                self._projects[setup.project] = setup.project_for(self.db)
            return self._projects[setup.project]

    @property
    def _saver(self) -> BaseCheckpointSaver[Any]:
        saver = self._probe.checkpointer
        assert isinstance(saver, BaseCheckpointSaver)
        return saver

    def _snapshot(self, thread: str) -> StateSnapshot:
        snapshot = self._probe.get_state(thread_config(thread))
        if not snapshot.values and not snapshot.next:
            raise UnknownThread(thread)
        return snapshot

    def _setup(self, snapshot: StateSnapshot) -> RunSetup:
        """The setup a run was started with, as `plangate approve` rebuilds it."""
        return RunSetup.of(snapshot)

    def _saved(self, thread: str) -> CheckpointTuple:
        saved = self._saver.get_tuple(thread_config(thread))
        if saved is None:
            raise UnknownThread(thread)
        return saved

    def _stored(self, thread: str) -> StoredRun:
        """The run as its latest checkpoint stored it, read with the saver alone."""
        run = read_stored_run(self._store, thread)
        # A run's first checkpoint holds its input alone, not yet its plan: a run that starts
        # this instant (a worker has just taken its start) is not there yet to be shown.
        if run is None or "plan" not in run.values:
            raise UnknownThread(thread)
        return run

    def _read(self, thread: str) -> tuple[CheckpointTuple, StateSnapshot]:
        """The run's latest checkpoint and its state, both of that one checkpoint: read apart,
        a run going on could show the status of one checkpoint and the steps of another."""
        saved = self._saved(thread)
        snapshot = self._probe.get_state(saved.config)
        if not snapshot.values and not snapshot.next:
            raise UnknownThread(thread)
        return saved, snapshot

    def _status(self, thread: str, saved: CheckpointTuple) -> str:
        """The run's status (`run_status`), from its latest checkpoint `saved`.

        A `stopped` is read again by the callers: the run may have paused or ended and let go
        of its lock between the read of `saved` and the look at its lock, and a pause adds its
        interrupt to the same checkpoint id. Read after the lock was seen free, everything the
        run wrote is there, so a second `stopped` is true.
        """
        status = run_status(saved, lambda: self._held(thread))
        # A run this process goes on with now shows as running, though its latest checkpoint
        # may still be the pause a decision was taken at.
        return "running" if status == "waiting" and thread in self._active else status

    def _held(self, thread: str) -> bool:
        """Whether this server or another process runs `thread` now (see
        `PlangateGraph.is_running`); one probe at a time, never of a run this server starts."""
        with self._probing:
            return thread in self._active or self._probe.is_running(thread_config(thread))

    def _gate(self, setup: RunSetup) -> DecisionGate | None:
        """Who may decide a run's requests, as its graph will judge it; `None` when its project
        or profile has gone."""
        profile = self._profile(setup)
        if profile is None:
            return None
        return DecisionGate(profile, self._project_of(setup).signer)

    def _profile(self, setup: RunSetup) -> Profile | None:
        try:
            return self._project_of(setup).load_profile(setup.profile)
        except PlangateUsageError:  # its project or profile file has gone since it started
            return None

    def pending(self, caller: Identity | None = None) -> list[ApprovalView]:
        """Every approval request waiting for a decision, the most urgent first; given a
        `caller`, each says whether they may approve it (`may_decide`) and if not, why
        (`why_not`: the profile's rules, four eyes)."""
        now = utc_now()
        found: list[ApprovalView] = []
        for thread, requests in waiting_approvals(self._probe):
            if thread in self._active:  # being decided right now, by this server
                continue
            run = read_stored_run(self._store, thread)
            if run is None:  # deleted since the listing
                continue
            setup = RunSetup.of(run.saved)
            views = [approval_view(thread, i, run, setup, now) for i in requests]
            if caller is not None:
                gate = self._gate(setup)
                for view, waiting in zip(views, requests, strict=True):
                    why = gate.why_not(caller, waiting.value) if gate else "its profile is gone"
                    view["may_decide"], view["why_not"] = why is None, why
            found.extend(views)
        decided = self._decisions_in_queue({view["thread"] for view in found})
        for view in found:
            with_queue(view, decided.get((view["thread"], view["interrupt_id"])))
        # The most urgent first: what expires within the hour, then the riskiest, then the
        # soonest to expire; expired requests (a decision now is recorded as expired) last.
        found.sort(
            key=lambda a: (
                a["expired"],
                a["expires_in_seconds"] > 3600,
                -_RISKS.index(a["risk"]),
                a["expires_at"],
            )
        )
        return found

    def runs(self, limit: int = 50) -> list[RunSummary]:
        """A summary of each of the `limit` most recently written runs."""
        summaries: list[RunSummary] = []
        for thread in list_threads(self._saver)[:limit]:
            saved = self._saver.get_tuple(thread_config(thread))
            if saved is None:  # deleted since the listing
                continue
            values = stored_values(self._store, saved)
            if not values:
                continue
            plan = values.get("plan") or {}
            outcomes = values.get("outcomes") or {}
            summaries.append(
                {
                    "thread": thread,
                    "goal": plan.get("goal", ""),
                    "profile": RunSetup.of(saved).profile,
                    "status": self._status(thread, saved),
                    "steps": len(plan.get("steps", [])),
                    "done": len(outcomes),
                    "started_by": started_by(saved),
                    "updated_at": saved.checkpoint["ts"],
                }
            )
        return summaries

    @property
    def _reads_queue(self) -> bool:
        """Whether the runs of this database go on in the project's queue (`workers:` on, on
        a PostgreSQL database, the project's): its decisions and starts queued are read
        beside the checkpoints, with psycopg alone."""
        project = self.project
        return project.queued and project.db == self.db and is_postgres_url(self.db)

    def _decisions_in_queue(self, threads: set[str]) -> dict[tuple[str, str], QueuedDecision]:
        """The queue's newest decision on each request of `threads` not yet applied, or failed
        (`queued_decisions`); `{}` without workers."""
        if not self._reads_queue or not threads:
            return {}
        return queued_decisions(self.db, threads)

    def run(self, thread: str) -> RunView | QueuedRunView:
        """Everything the run view shows: steps, budget, golden signals, what it waits for.

        With workers on, a run whose start is queued and not yet made (it has no checkpoint)
        is `queued` (`QueuedRunView`): its start's `job`, the `worker` starting it, if one is,
        and what happens `next`.

        Raises:
            UnknownThread: Nothing was started or queued in `thread`.
        """
        found = self._view_or_start(thread)
        if isinstance(found, QueuedStart):
            return queued_run_view(thread, found, utc_now())
        return found[0]

    def status(self, thread: str) -> dict[str, Any]:
        """A run as a face outside the decision path shows it (the MCP face, to the agent that
        submitted it): its status, each step's status with its output or error, and what it
        waits for, but not the args of a waiting request: those are for the approver, behind
        the decision's own door. What it shows is redacted as the trace is.

        With workers on, a run whose start is queued and not yet made (it has no checkpoint)
        is `queued`, with its start's `job` and the `worker` starting it, if one is.

        Raises:
            UnknownThread: Nothing was started or queued in `thread`.
        """
        found = self._view_or_start(thread)
        if isinstance(found, QueuedStart):
            return _queued_status(thread, found)
        view, shown = found
        kept = ("thread", "goal", "status", "profile", "offline", "trace_id", "updated_at")
        compact = ("step_id", "tool", "action", "status", "output", "error")
        # Read as plain mappings: the keys kept are named here, not each spelled out.
        whole: Mapping[str, Any] = view
        return {
            **{key: whole[key] for key in kept},
            "steps": [
                {key: row[key] for key in compact}
                for row in cast(list[Mapping[str, Any]], view["steps"])
            ],
            "waiting": [waiting_view(request, shown) for request in view["waiting"]],
            "budget_utilisation": view["budget"]["utilisation"],
            "halted": view["halted"],
        }

    def _view_or_start(self, thread: str) -> tuple[RunView, Callable[[Any], Any]] | QueuedStart:
        """The run view (see `_view`), or with workers on `thread`'s start while it is queued
        and not yet made."""
        try:
            return self._view(thread)
        except UnknownThread:
            start = queued_start(self.db, thread) if self._reads_queue else None
            if start is not None:
                return start
            return self._view(thread)  # started since the first look, or unknown

    def _view(self, thread: str) -> tuple[RunView, Callable[[Any], Any]]:
        """The run view (see `run`) and how what leaves the decision path is shown in it."""
        stored = self._stored(thread)
        status = self._status(thread, stored.saved)
        if status == "stopped":  # or paused or ended just now: see `_status`
            stored = self._stored(thread)
            status = self._status(thread, stored.saved)
        saved = stored.saved
        setup = RunSetup.of(saved)
        values = stored.values
        plan = Plan.from_state(values["plan"])
        # With the steps of the wave in progress that ended beside the ones waiting.
        outcomes = stored.ended
        counters = values.get("run") or {}
        running = set(counters.get("running") or ())
        # Read from the checkpoint's writes: the state of a given checkpoint still lists the
        # requests decided while others of their wave wait.
        asked = stored.interrupts
        if asked is None:  # answered and asked again: only the latest state untangles it
            asked = list(self._snapshot(thread).interrupts)
        waiting = [i for i in asked if is_approval_request(i.value)]
        waiting.sort(key=lambda i: i.value["step_index"])
        waiting_steps = {i.value["step_id"] for i in waiting}
        profile = self._profile(setup)
        # Only the waiting approvals carry the real args (the approver must see what they
        # approve); the steps are what the trace shows, redacted as the profile says.
        shown = redact if profile is None or profile.redact else as_is
        steps = step_rows(
            plan,
            outcomes,
            waiting_steps=waiting_steps,
            status=status,
            running=running,
            shown=shown,
        )
        usage = counters.get("usage") or {"total": 0, "domains": {}, "tools": {}}
        budget = budget_view(usage, profile.budget if profile else None, plan)
        result = values.get("result")
        if result:
            signals = result["signals"]
        else:
            done = [outcomes[s.id] for s in plan.steps if s.id in outcomes]
            signals = outcome_signals(done, budget["utilisation"])
        now = utc_now()
        view: RunView = {
            "thread": thread,
            "goal": plan.goal,
            "status": status,
            "profile": profile.name if profile else setup.profile,
            "offline": setup.offline,
            "started_by": started_by(saved),
            "trace_id": counters.get("trace_id"),
            "updated_at": saved.checkpoint["ts"],
            "server_time": iso(now),
            "steps": steps,
            "waiting": self._waiting_views(thread, waiting, stored, setup),
            "budget": budget,
            "signals": signals,
            "halted": (result or {}).get("halted", counters.get("halted")),
            "failure_context": (result or {}).get("failure_context"),
        }
        return view, shown

    def _waiting_views(
        self, thread: str, waiting: list[WaitingInterrupt], run: StoredRun, setup: RunSetup
    ) -> list[ApprovalView]:
        """What `thread` waits on, as its run view shows it: each request with a decision
        queued on it (`with_queue`)."""
        now = utc_now()
        views = [approval_view(thread, i, run, setup, now) for i in waiting]
        decided = self._decisions_in_queue({thread} if views else set())
        for view in views:
            with_queue(view, decided.get((thread, view["interrupt_id"])))
        return views

    def trace(self, thread: str) -> list[TraceEvent]:
        self._stored(thread)
        return trace_of(thread_checkpoints(self._store, thread))

    def poll(
        self, thread: str, seen: str | None, *, status: bool = False
    ) -> tuple[str | None, list[TraceEvent] | None, str | None]:
        """(latest checkpoint id, the trace events written since `seen`, status) when the thread
        has a checkpoint newer than `seen`, else (`seen`, None, None), or with `status`
        (`seen`, None, status): one indexed read when nothing moved, and never the whole history
        again while a long run goes on. `status` is for a run that may stop without writing
        anything: its process dies between two steps."""
        saved = self._saved(thread)
        now = self._status(thread, saved)
        if now == "stopped":  # or paused or ended just now: see `_status`
            saved = self._saved(thread)
            now = self._status(thread, saved)
        latest = saved.config["configurable"].get("checkpoint_id")
        if latest == seen:
            return seen, None, now if status else None
        return latest, stored_trace_since(self._store, thread, seen), now

    def running(self, thread: str) -> bool:
        return thread in self._active


def _queued_status(thread: str, start: QueuedStart) -> dict[str, Any]:
    """`thread`'s start as `RunReader.status` shows it while it is queued."""
    return {
        "thread": thread,
        "goal": start.goal,
        "status": "queued",
        "job": start.job,
        "worker": start.worker,
        "profile": start.profile,
        "offline": start.offline,
        "trace_id": None,
        "updated_at": None,
        "steps": [],
        "waiting": [],
        "budget_utilisation": 0.0,
        "halted": None,
    }
