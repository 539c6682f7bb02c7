"""The run service: what the faces read and do with the runs of one checkpoint database, without
HTTP or a terminal. Each run is rebuilt in the project and under the setup `plangate run` stored
with it (`RunSetup`), so the inbox, the CLI and any worker drive the same graph. New runs start
in the service's project.

A decision is bound to the requests it answers by one rule, `bind_decision`, whichever face it
came through (`plangate approve`/`reject`, the inbox's decide endpoint): named by interrupt id
(the request a page showed), by step (`--step`), all of them (`--all`), or bare when exactly one
request waits; a bare decision while several wait is refused, naming them. The decision is then
checked as the graph will check it (`parse_decision`), needs an approver, and a rejection a
reason, before anything runs. The faces differ only in where the run goes on: the CLI in the
foreground, printing as it goes; the inbox in a worker thread (`RunService.decide`).

Runs the server resumes, starts, or closes as expired (`watch_expiry`, in a thread of its own
while it serves) go on in a pool of worker threads: the request returns once the run has made its
first move (or refused to: a conflict, a bad decision), and the page follows the rest through the
trace, which every process can read from the checkpointer.

A run's status: its result's (`success`, `partial`, `failed`) once finished; `waiting` for a
decision; else, between two steps, `running` while some process holds the run's lock, or
`stopped` when none does: its process died mid-way (a crash, Ctrl-C, a kill) and the run goes on
only when something resumes it.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from langgraph.types import Command, StateSnapshot

from plangate._files import parse_document
from plangate._time import iso, parse_iso, utc_now
from plangate.approval import parse_decision
from plangate.errors import (
    InvalidDecision,
    NoPendingApproval,
    PlangateError,
    PlangateUsageError,
    PlanValidationError,
    ProfileError,
    ResumeConflict,
    StaleDecision,
    ThreadError,
    UnknownThread,
)
from plangate.plan import Plan, parse_plan
from plangate.profiles import Budget, Profile
from plangate.project import Project, RunSetup, demo_root, reader
from plangate.runs.expiry import watch_expiry
from plangate.runs.guarded_graph import PlangateGraph
from plangate.runs.history import (
    ended_so_far,
    get_trace,
    remaining_tools,
    trace_since,
    waiting_approvals,
)
from plangate.runs.stored import (
    WaitingInterrupt,
    interrupts_waiting,
    is_approval_request,
    list_threads,
    run_state,
)
from plangate.tracing import TraceEvent, outcome_signals, redact

__all__ = (
    "STARTED_BY",
    "BoundDecision",
    "NotStopped",
    "RunService",
    "ThreadExists",
    "bind_decision",
)

log = logging.getLogger("plangate.server")

STARTED_BY = "plangate_started_by"
"""Checkpoint metadata key naming who started a run from the inbox (carried across resumes
the inbox makes; a run started by `plangate run` has none)."""

FINISHED = ("success", "partial", "failed")
_RISKS = ("low", "medium", "high")
_THREAD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")


class ThreadExists(ThreadError):
    """A new run was to start in a thread that already holds one."""

    def __init__(self, thread_id: str):
        super().__init__(
            thread_id, f"thread {thread_id!r} already holds a run", hint="leave the thread id empty"
        )


class NotStopped(ThreadError):
    """A resume was asked for a run that has not stopped mid-way: it waits for a decision, or
    it has finished. Nothing was changed.

    Attributes:
        waiting: Whether the run waits for a decision (else it has finished).
    """

    def __init__(self, thread_id: str, *, waiting: bool):
        self.waiting = waiting
        if waiting:
            super().__init__(
                thread_id,
                f"run {thread_id!r} is waiting for an approval, not stopped",
                hint="decide it: approve or reject the step it waits for",
            )
        else:
            super().__init__(thread_id, f"run {thread_id!r} has finished", hint="nothing to resume")


def _thread_config(thread: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread}}


@dataclass(frozen=True)
class BoundDecision:
    """A decision bound to the requests it answers: those `requests` (in plan order), and what
    answers exactly them (`resume`): the decision checked for each, keyed by its interrupt's id
    and carrying its request's id and digest."""

    requests: list[dict[str, Any]]
    resume: dict[str, dict[str, Any]]

    @property
    def command(self) -> Command[Any]:
        """The value that resumes the run with this decision."""
        return Command(resume=self.resume)


def bind_decision(
    thread: str,
    waiting: Mapping[str, dict[str, Any]],
    decision: Mapping[str, Any],
    *,
    graph: PlangateGraph,
    interrupt_id: str | None = None,
    step: str | None = None,
    every: bool = False,
) -> BoundDecision:
    """Bind `decision` (a `Decision` as JSON, with its `approver`) to the requests of `waiting`
    (interrupt id -> approval request, of a run's latest state) it answers, and check it as the
    graph will, for each of them: see the module's doc for the rule.

    Raises:
        NoPendingApproval: Nothing waits.
        StaleDecision: `interrupt_id` names a request that waits no more (decided meanwhile).
        InvalidDecision: A bare decision while several requests wait; no approver; a
            rejection without a reason; what `parse_decision` refuses (an edit the tool's
            schema refuses, say). The run stays as it was.
        PlangateUsageError: `step` names a step that does not wait; more than one of
            `interrupt_id`, `step` and `every`.
    """
    if not waiting:
        raise NoPendingApproval(thread)
    if sum((interrupt_id is not None, step is not None, every)) > 1:
        raise PlangateUsageError(
            "name the requests decided one way: an interrupt id, a step or all"
        )
    ordered = sorted(waiting.items(), key=lambda item: item[1]["step_index"])
    if interrupt_id is not None:
        if not isinstance(interrupt_id, str):
            raise InvalidDecision(
                "invalid decision: interrupt_id: expected the id of a pending approval",
                field="interrupt_id",
            )
        if interrupt_id not in waiting:
            raise StaleDecision(thread)
        chosen = [(interrupt_id, waiting[interrupt_id])]
    elif step is not None:
        chosen = [(key, request) for key, request in ordered if request.get("step_id") == step]
        if not chosen:
            raise PlangateUsageError(
                f"run {thread!r} is not waiting for step {step!r} (it waits for {_steps(ordered)})",
                hint="`plangate show THREAD` prints what it waits for",
            )
    elif every or len(ordered) == 1:
        chosen = ordered
    else:
        raise InvalidDecision(
            f"invalid decision: {len(ordered)} approvals are pending ({_steps(ordered)}); "
            "name the one decided",
            field="interrupt_id",
            hint="decide one by its step or interrupt id, or all of them at once",
        )
    resume = {key: _checked(decision, request, graph) for key, request in chosen}
    return BoundDecision([request for _, request in chosen], resume)


def _steps(ordered: list[tuple[str, dict[str, Any]]]) -> str:
    return ", ".join(repr(request.get("step_id") or "the plan") for _, request in ordered)


def _checked(
    decision: Mapping[str, Any], request: dict[str, Any], graph: PlangateGraph
) -> dict[str, Any]:
    """`decision` as the resume value of `request`: bound to the request's id and digest (a
    digest the face was shown must be the request's), checked as the graph will check it."""
    fields = {"request_id": request["request_id"], "digest": request.get("digest"), **decision}
    parsed = parse_decision(
        fields, tool=graph.tools.get(request.get("tool") or ""), request=request
    )
    if parsed.approver is None:  # none given, or a blank one (`Decision.approver`)
        raise InvalidDecision(
            "invalid decision: approver: give the name of who decides", field="approver"
        )
    if parsed.decision == "reject" and not (parsed.reason or "").strip():
        raise InvalidDecision(
            "invalid decision: reason: a 'reject' decision needs a reason", field="reason"
        )
    return parsed.model_dump(exclude_none=True)


class RunService:
    """The runs of one database, as the inbox shows and drives them.

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
        self.db = db
        self.project = project or Project.demo(demo_root(db))
        self._projects: dict[str, Project] = {}
        if self.project.file:
            self._projects[str(self.project.file)] = self.project
        self._graphs: dict[RunSetup, PlangateGraph] = {}
        self._guard = threading.Lock()
        self._active: set[str] = set()
        # Held while a status read tries a run's lock, and by `_claim`: a run this server
        # starts never finds its lock taken by this server's own look at it.
        self._probing = threading.Lock()
        self._start_timeout = start_timeout
        self._probe = reader(db)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="plangate-run")

    def close(self) -> None:
        """Let the runs going on reach their next pause or their end."""
        self._pool.shutdown(wait=True)

    # -- reading -------------------------------------------------------------------------

    def _project_of(self, setup: RunSetup) -> Project:
        """The project a run goes on in, loaded once per file (its tools with it)."""
        with self._guard:
            if setup.project not in self._projects:
                self._projects[setup.project] = setup.project_for(self.db)
            return self._projects[setup.project]

    def _graph(self, setup: RunSetup) -> PlangateGraph:
        """One graph (and one checkpointer connection) per distinct setup, reused by all runs."""
        project = self._project_of(setup)
        with self._guard:
            if setup not in self._graphs:
                self._graphs[setup] = setup.graph(project, self.db)
            return self._graphs[setup]

    @property
    def _saver(self) -> BaseCheckpointSaver[Any]:
        saver = self._probe.checkpointer
        assert isinstance(saver, BaseCheckpointSaver)
        return saver

    def _snapshot(self, thread: str) -> StateSnapshot:
        snapshot = self._probe.get_state(_thread_config(thread))
        if not snapshot.values and not snapshot.next:
            raise UnknownThread(thread)
        return snapshot

    def _setup(self, snapshot: StateSnapshot) -> RunSetup:
        """The setup a run was started with, as `plangate approve` rebuilds it."""
        return RunSetup.of(snapshot)

    def _saved(self, thread: str) -> CheckpointTuple:
        saved = self._saver.get_tuple(_thread_config(thread))
        if saved is None:
            raise UnknownThread(thread)
        return saved

    def _read(self, thread: str) -> tuple[CheckpointTuple, StateSnapshot]:
        """The run's latest checkpoint and its state, both of that one checkpoint: read apart,
        a run going on could show the status of one checkpoint and the steps of another."""
        saved = self._saved(thread)
        snapshot = self._probe.get_state(saved.config)
        if not snapshot.values and not snapshot.next:
            raise UnknownThread(thread)
        return saved, snapshot

    def _status(self, thread: str, saved: CheckpointTuple) -> str:
        """The run's status (see the module's doc), from its latest checkpoint `saved`."""
        state = run_state(saved)
        if state == "finished":
            return str(saved.checkpoint["channel_values"]["result"]["status"])
        if thread in self._active:
            return "running"
        if state == "waiting":
            return "waiting"
        return "running" if self._held(thread) else "stopped"

    def _held(self, thread: str) -> bool:
        """Whether this server or another process runs `thread` now (see
        `PlangateGraph.is_running`); one probe at a time, never of a run this server starts."""
        with self._probing:
            return thread in self._active or self._probe.is_running(_thread_config(thread))

    def _profile(self, setup: RunSetup) -> Profile | None:
        try:
            return self._project_of(setup).load_profile(setup.profile)
        except PlangateUsageError:  # its project or profile file has gone since it started
            return None

    def pending(self) -> list[dict[str, Any]]:
        """Every approval request waiting for a decision, the most urgent first."""
        now = utc_now()
        found: list[dict[str, Any]] = []
        for thread, requests in waiting_approvals(self._probe):
            if thread in self._active:  # being decided right now, by this server
                continue
            snapshot = self._probe.get_state(_thread_config(thread))
            setup = self._setup(snapshot)
            found.extend(self._approval(thread, i, snapshot, setup, now) for i in requests)
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

    def _approval(
        self,
        thread: str,
        waiting: WaitingInterrupt,
        snapshot: StateSnapshot,
        setup: RunSetup,
        now: datetime,
    ) -> dict[str, Any]:
        request = waiting.value
        left = (parse_iso(request["expires_at"]) - now).total_seconds()
        keys = (
            "request_id",
            "step_id",
            "step_index",
            "tool",
            "action",
            "action_source",
            "irreversible",
            "domain",
            "description",
            "risk",
            "consequence",
            "args",
            "requested_at",
            "expires_at",
            "allowed_decisions",
            "digest",
            "references",
            "approvals_required",
            "approvals_so_far",
            "type",
            "steps",
            "budget",
            "covers",
            "order",
            "review_changed",
        )
        return {
            "thread": thread,
            "interrupt_id": waiting.id,
            **{key: request.get(key) for key in keys},
            "expires_in_seconds": round(left, 1),
            "expired": left <= 0,
            "error": request.get("error"),
            "goal": (snapshot.values.get("plan") or {}).get("goal", ""),
            "profile": setup.profile,
            "offline": setup.offline,
            "started_by": (snapshot.metadata or {}).get(STARTED_BY),
        }

    def runs(self, limit: int = 50) -> list[dict[str, Any]]:
        """A summary of each of the `limit` most recently written runs."""
        summaries = []
        for thread in list_threads(self._saver)[:limit]:
            saved = self._saver.get_tuple(_thread_config(thread))
            if saved is None:  # deleted since the listing
                continue
            snapshot = self._probe.get_state(saved.config)
            if not snapshot.values:
                continue
            plan = snapshot.values.get("plan") or {}
            outcomes = snapshot.values.get("outcomes") or {}
            summaries.append(
                {
                    "thread": thread,
                    "goal": plan.get("goal", ""),
                    "profile": self._setup(snapshot).profile,
                    "status": self._status(thread, saved),
                    "steps": len(plan.get("steps", [])),
                    "done": len(outcomes),
                    "started_by": (snapshot.metadata or {}).get(STARTED_BY),
                    "updated_at": snapshot.created_at,
                }
            )
        return summaries

    def run(self, thread: str) -> dict[str, Any]:
        """Everything the run view shows: steps, budget, golden signals, what it waits for."""
        saved, snapshot = self._read(thread)
        setup = self._setup(snapshot)
        values = snapshot.values
        status = self._status(thread, saved)
        plan = Plan.from_state(values["plan"])
        # With the steps of the wave in progress that ended beside the ones waiting.
        outcomes = ended_so_far(snapshot)
        counters = values.get("run") or {}
        running = set(counters.get("running") or ())
        # Not `snapshot.interrupts`: the state of a given checkpoint still lists the requests
        # decided while others of their wave wait.
        asked = interrupts_waiting(saved)
        if asked is None:  # answered and asked again: only the latest state untangles it
            asked = list(self._snapshot(thread).interrupts)
        waiting = [i for i in asked if is_approval_request(i.value)]
        waiting.sort(key=lambda i: i.value["step_index"])
        waiting_steps = {i.value["step_id"] for i in waiting}
        profile = self._profile(setup)
        # Only the waiting approvals carry the real args (the approver must see what they
        # approve); the steps are what the trace shows, redacted as the profile says.
        shown = redact if profile is None or profile.redact else _as_is
        steps = []
        for index, step in enumerate(plan.steps):
            outcome = outcomes.get(step.id)
            if outcome is not None:
                state = str(outcome["status"])
            elif step.id in waiting_steps:
                state = "waiting"
            elif status in ("running", "stopped") and step.id in running:
                state = status  # a step of the wave it is in, or was in when its process died
            else:
                state = "pending"
            steps.append(
                {
                    "index": index,
                    "step_id": step.id,
                    "tool": step.tool,
                    "action": step.action,
                    "description": step.description,
                    "depends_on": step.depends_on,
                    "args": shown(step.args),
                    "status": state,
                    "attempts": outcome["attempts"] if outcome else 0,
                    "duration_ms": outcome["duration_ms"] if outcome else None,
                    "mocked": bool(outcome and outcome.get("mocked")),
                    "error": shown(outcome["error"]) if outcome else None,
                    "output": shown(outcome["output"]) if outcome else None,
                    "approval": shown(outcome["approval"]) if outcome else None,
                }
            )
        usage = counters.get("usage") or {"total": 0, "domains": {}, "tools": {}}
        budget = _budget_view(usage, profile.budget if profile else None, plan)
        result = values.get("result")
        if result:
            signals = result["signals"]
        else:
            done = [outcomes[s.id] for s in plan.steps if s.id in outcomes]
            signals = outcome_signals(done, budget["utilisation"])
        now = utc_now()
        return {
            "thread": thread,
            "goal": plan.goal,
            "status": status,
            "profile": profile.name if profile else setup.profile,
            "offline": setup.offline,
            "started_by": (snapshot.metadata or {}).get(STARTED_BY),
            "trace_id": counters.get("trace_id"),
            "updated_at": snapshot.created_at,
            "server_time": iso(now),
            "steps": steps,
            "waiting": [self._approval(thread, i, snapshot, setup, now) for i in waiting],
            "budget": budget,
            "signals": signals,
            "halted": (result or {}).get("halted", counters.get("halted")),
            "failure_context": (result or {}).get("failure_context"),
        }

    def trace(self, thread: str) -> list[TraceEvent]:
        self._snapshot(thread)
        return get_trace(self._probe, _thread_config(thread))

    def poll(
        self, thread: str, seen: str | None, *, status: bool = False
    ) -> tuple[str | None, list[TraceEvent] | None, str | None]:
        """(latest checkpoint id, the trace events written since `seen`, status) when the thread
        has a checkpoint newer than `seen`, else (`seen`, None, None), or with `status`
        (`seen`, None, status): one indexed read when nothing moved, and never the whole history
        again while a long run goes on. `status` is for a run that may stop without writing
        anything: its process dies between two steps."""
        saved = self._saved(thread)
        latest = saved.config["configurable"].get("checkpoint_id")
        if latest == seen:
            return seen, None, self._status(thread, saved) if status else None
        return (
            latest,
            trace_since(self._probe, _thread_config(thread), seen),
            self._status(thread, saved),
        )

    def running(self, thread: str) -> bool:
        return thread in self._active

    # -- acting --------------------------------------------------------------------------

    def decide(self, thread: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Check a decision on a run's pending approval, then resume the run in the background.

        `body` is a `Decision` as JSON with `approver` required (`reason` too, to reject) and,
        optionally, the `interrupt_id` of the request the approver saw: a decision on a request
        that someone else decided first is refused rather than applied to the next one. Its
        `digest`, when given, must be that request's; an edit must send real values, not the
        redaction markers of a copy taken from the trace (`parse_decision`).

        Raises:
            UnknownThread, NoPendingApproval, StaleDecision, ResumeConflict, InvalidDecision.
        """
        snapshot = self._snapshot(thread)
        graph = self._graph(self._setup(snapshot))
        requests = {i.id: i.value for i in snapshot.interrupts if is_approval_request(i.value)}
        fields = dict(body)
        named = fields.pop("interrupt_id", None)
        bound = bind_decision(thread, requests, fields, graph=graph, interrupt_id=named)
        graph.reach(remaining_tools(snapshot))  # as `plangate approve`: a source down, 422
        ((interrupt_id, decision),) = bound.resume.items()
        config = self._config(thread, (snapshot.metadata or {}).get(STARTED_BY))
        try:
            self._launch(thread, graph, bound.command, config)
        except InvalidDecision:
            # Checked above, so the graph refused the interrupt id: decided meanwhile.
            if interrupt_id not in {i.id for i in self._snapshot(thread).interrupts}:
                raise StaleDecision(thread) from None
            raise
        return {"thread": thread, "decision": decision["decision"], "interrupt_id": interrupt_id}

    def expire(self, thread: str, closing: Mapping[str, dict[str, Any]]) -> None:
        """Close a run's expired requests (`closing`: interrupt id -> `EXPIRED_DECISION`, as
        `sweep_expired` finds them) and let it go on in the background, as a decision does.

        Raises:
            UnknownThread, ResumeConflict (a process runs it), and what the graph refuses the
            run with (`ToolNotAvailable`, `ProfileMismatch`): the run stays paused.
        """
        snapshot = self._snapshot(thread)
        config = self._config(thread, (snapshot.metadata or {}).get(STARTED_BY))
        self._launch(thread, self._graph(self._setup(snapshot)), Command(resume=closing), config)

    def watch_expiry(self, *, every: float, stop: threading.Event) -> None:
        """Close the approvals of the database as they expire (`plangate.watch_expiry`), until
        `stop` is set; each run goes on in the background. Every run closed or refused is
        logged; a failure of the watch itself (the database gone away) is logged, and the
        watch starts again `every` seconds later."""
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
        state = run_state(saved)
        if state != "unfinished":
            raise NotStopped(thread, waiting=state == "waiting")
        setup = self._setup(snapshot)
        config = self._config(thread, (snapshot.metadata or {}).get(STARTED_BY))
        graph = self._graph(setup)
        graph.reach(remaining_tools(snapshot))
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
        started_by: str | None = None,
    ) -> dict[str, Any]:
        """Start a plan (YAML/JSON text, a mapping, or a list of steps) in the server's project
        under one of its profiles (default: the project's), as `plangate run` does, and return
        once it has made its first move.

        Raises:
            PlanValidationError, ProfileError, ThreadExists, PlangateUsageError.
        """
        if isinstance(plan, str):
            try:
                plan = parse_document(plan, what="plan")
            except ValueError as exc:
                raise PlanValidationError(str(exc)) from None
        parsed = parse_plan(plan, source="plan")
        profile = profile or self.project.spec.profile
        if profile not in self.project.profile_names:
            # Never a file path: the page must not make the server read files.
            raise ProfileError(
                f"unknown profile {profile!r}",
                field="profile",
                hint=", ".join(self.project.profile_names),
            )
        thread = thread or f"run-{uuid.uuid4().hex[:8]}"
        if not _THREAD_ID.fullmatch(thread):
            raise PlangateUsageError(
                f"thread id {thread!r} is not allowed",
                hint="letters, digits and . _ : - (at most 100), starting with a letter or digit",
            )
        if self._saver.get_tuple(_thread_config(thread)) is not None:
            raise ThreadExists(thread)
        setup = RunSetup.start(self.project, profile=profile, offline=offline)
        graph = self._graph(setup)
        if not offline:  # reach the servers the plan needs now: one that is down stores nothing
            for step in parsed.steps:
                graph.tools.get(step.tool)
        self._launch(thread, graph, {"plan": parsed}, self._config(thread, started_by))
        return {"thread": thread, "profile": profile, "offline": offline}

    @staticmethod
    def _config(thread: str, started_by: Any) -> RunnableConfig:
        # The run's setup rides on its graph (`Project.graph`): the project it goes on in.
        metadata = {STARTED_BY: str(started_by)} if started_by else {}
        return {"configurable": {"thread_id": thread}, "metadata": metadata}

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


def _as_is(value: Any) -> Any:
    return value


def _budget_view(usage: Mapping[str, Any], budget: Budget | None, plan: Plan) -> dict[str, Any]:
    """Used and limit of every tier the plan touches, with the share used and a level: `ok`,
    `warn` (at or past the profile's warning threshold) or `full` (no call left)."""
    threshold = budget.warning_threshold if budget else 0.8
    domains = dict.fromkeys([*(s.domain or "" for s in plan.steps), *usage.get("domains", {})])
    tools = dict.fromkeys([*(s.tool for s in plan.steps), *usage.get("tools", {})])

    def tier(kind: str, name: str, used: int, limit: int | None) -> dict[str, Any]:
        share = used / limit if limit else (1.0 if limit == 0 else 0.0)
        level = "full" if limit is not None and used >= limit else "ok"
        if level == "ok" and limit and share >= threshold:
            level = "warn"
        key = "total" if kind == "total" else f"{kind}:{name}"
        return {
            "tier": key,
            "kind": kind,
            "name": name,
            "used": used,
            "limit": limit,
            "share": round(share, 4),
            "level": level,
        }

    tiers = [tier("total", "total", int(usage.get("total", 0)), _limit(budget, "total_calls"))]
    tiers += [
        tier("domain", d, usage.get("domains", {}).get(d, 0), _limit(budget, "calls_per_domain"))
        for d in domains
    ]
    tiers += [
        tier("tool", t, usage.get("tools", {}).get(t, 0), _limit(budget, "calls_per_tool"))
        for t in tools
    ]
    shares = [t["share"] for t in tiers if t["limit"]]
    return {
        "warning_threshold": threshold,
        "utilisation": round(max(shares, default=0.0), 4),
        "tiers": tiers,
    }


def _limit(budget: Budget | None, field: str) -> int | None:
    return None if budget is None else getattr(budget, field)
