"""The run service's views: a waiting request, a run's steps and budget, as the faces show them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Literal, cast

from langgraph.checkpoint.base import CheckpointTuple
from langgraph.types import StateSnapshot
from typing_extensions import NotRequired, TypedDict

from plangate._time import iso, parse_iso
from plangate.identity._gate import STARTED_BY
from plangate.plan import Plan
from plangate.profiles import Budget
from plangate.project import RunSetup
from plangate.runs.queue import QueuedDecision, QueuedStart
from plangate.runs.stored import StoredRun, WaitingInterrupt

__all__ = (
    "STARTED_BY",
    "ApprovalView",
    "DecisionTaken",
    "QueuedRunView",
    "RunStarted",
    "RunSummary",
    "RunView",
    "StepRow",
    "approval_view",
    "as_is",
    "budget_view",
    "queued_run_view",
    "started_by",
    "step_rows",
    "waiting_view",
    "with_queue",
)


class ApprovalView(TypedDict, total=False):
    """A request waiting for a decision, as every face shows it (`RunReader.pending`, a run's
    `waiting`): the request's own fields (see `ApprovalRequest`; a plan review's too), and
    which run it is of, how long it has left and who started it."""

    thread: str
    interrupt_id: str
    type: str
    request_id: str
    step_id: str | None
    step_index: int
    tool: str | None
    action: str
    action_source: str
    irreversible: bool
    domain: str
    description: str
    risk: str
    consequence: str
    args: Any
    requested_at: str
    expires_at: str
    allowed_decisions: list[str]
    digest: str
    references: Any
    approvals_required: int
    approvals_so_far: list[Any]
    steps: list[Any]
    budget: Any
    covers: str
    order: str
    review_changed: Any
    expires_in_seconds: float
    expired: bool
    error: str | None
    goal: str
    profile: str
    offline: bool
    started_by: str | None
    # Set for a caller (`RunService.pending(caller)`): whether they may approve it, and why not.
    may_decide: NotRequired[bool]
    why_not: NotRequired[str | None]
    # With workers on: a decision taken and queued, which a worker is yet to apply (`job`,
    # `decision`, `approver`): the request is decided, and no other decision is taken on it; or
    # the last decision, whose job failed (with its `error`): the request is decidable again.
    queued: NotRequired[dict[str, Any]]
    last_failed: NotRequired[dict[str, Any]]


class StepRow(TypedDict):
    """A step of a run as its view lists it."""

    index: int
    step_id: str
    tool: str
    action: str | None
    description: str | None
    depends_on: list[str]
    args: Any
    status: str
    attempts: int
    duration_ms: float | None
    mocked: bool
    error: Any
    output: Any
    approval: Any


class RunSummary(TypedDict):
    """A run as the list of runs shows it (`RunReader.runs`)."""

    thread: str
    goal: str
    profile: str | None
    status: str
    steps: int
    done: int
    started_by: str | None
    updated_at: str | None


class RunView(TypedDict):
    """Everything a run's view shows (`RunReader.run`)."""

    thread: str
    goal: str
    status: str
    profile: str | None
    offline: bool
    started_by: str | None
    trace_id: str | None
    updated_at: str | None
    server_time: str
    steps: list[StepRow]
    waiting: list[ApprovalView]
    budget: dict[str, Any]
    signals: dict[str, Any]
    halted: Any
    failure_context: Any


class QueuedRunView(TypedDict):
    """A run's view (`RunReader.run`) while its start is queued, with workers on, and no
    worker has made it yet: it has no checkpoint, so no steps, budget or trace to show.

    `job` is the start's job, `worker` the worker starting it once one has taken it, `next`
    what happens next, in a sentence; `queued_at` when the start was queued."""

    thread: str
    goal: str
    status: Literal["queued"]
    profile: str | None
    offline: bool
    started_by: str | None
    job: int
    worker: str | None
    queued_at: str | None
    next: str
    trace_id: None
    updated_at: None
    server_time: str
    steps: list[StepRow]
    waiting: list[ApprovalView]


class DecisionTaken(TypedDict):
    """A decision the service took, the run going on with it (`RunService.decide`); with
    workers on, `status` is `queued` and `job` the id of the job that goes on with it."""

    thread: str
    decision: str
    interrupt_id: str
    status: NotRequired[Literal["queued"]]
    job: NotRequired[int]


class RunStarted(TypedDict):
    """A run the service started (`RunService.start`); with workers on, `status` is `queued`
    and `job` the id of the job that starts it on a worker."""

    thread: str
    profile: str
    offline: bool
    status: NotRequired[Literal["queued"]]
    job: NotRequired[int]


def started_by(latest: StateSnapshot | CheckpointTuple) -> str | None:
    """Who started a run from a face that says (`STARTED_BY`), from its checkpoint's metadata."""
    found = (latest.metadata or {}).get(STARTED_BY)
    return None if found is None else str(found)


def approval_view(
    thread: str,
    waiting: WaitingInterrupt,
    run: StoredRun,
    setup: RunSetup,
    now: datetime,
) -> ApprovalView:
    """A request waiting for a decision, as the faces show it: what it asks, how long it has
    left, and about which run."""
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
    # The request's fields as it holds them: a step's request and a plan review hold different
    # ones, which `ApprovalView` lists together.
    return cast(
        ApprovalView,
        {
            "thread": thread,
            "interrupt_id": waiting.id,
            **{key: request.get(key) for key in keys},
            "expires_in_seconds": round(left, 1),
            "expired": left <= 0,
            "error": request.get("error"),
            "goal": (run.values.get("plan") or {}).get("goal", ""),
            "profile": setup.profile,
            "offline": setup.offline,
            "started_by": started_by(run.saved),
        },
    )


def queued_run_view(thread: str, start: QueuedStart, now: datetime) -> QueuedRunView:
    """`thread`'s view while its start (`queued_start`) is queued: what it will run, under
    which profile, the job and the worker starting it, and what happens next."""
    if start.worker:
        then = f"{start.worker} is starting the run (job {start.job}); its steps show in a moment"
    else:
        then = (
            f"job {start.job} waits for a plangate worker to start the run; its steps show "
            "once one has"
        )
    return {
        "thread": thread,
        "goal": start.goal,
        "status": "queued",
        "profile": start.profile,
        "offline": start.offline,
        "started_by": start.started_by,
        "job": start.job,
        "worker": start.worker,
        "queued_at": iso(start.queued_at) if start.queued_at else None,
        "next": then,
        "trace_id": None,
        "updated_at": None,
        "server_time": iso(now),
        "steps": [],
        "waiting": [],
    }


def with_queue(view: ApprovalView, found: QueuedDecision | None) -> None:
    """Mark `view` with the newest decision job answering it (`queued_decisions`), if any: a
    queued one makes it decided (`queued`), not decidable by anyone; a failed one is said
    (`last_failed`) beside a request decidable again."""
    if found is None:
        return
    view.update(cast(ApprovalView, found.mark()))
    if found.queued and "may_decide" in view:
        view["may_decide"] = False
        view["why_not"] = found.refusal(view["thread"]).message


def waiting_view(request: Mapping[str, Any], shown: Callable[[Any], Any]) -> dict[str, Any]:
    """A waiting request (`approval_view`) as shown outside the decision path: which step
    waits, on what kind of decision, how risky, until when, a decision queued on it, `shown`
    as the profile says; not its args, its digest or its interrupt id, which are for the
    approver and the decision."""
    keys = (
        "step_id",
        "tool",
        "action",
        "irreversible",
        "risk",
        "type",
        "approvals_required",
        "approvals_so_far",
        "expires_at",
        "expired",
        "queued",
    )
    return {
        **{key: request.get(key) for key in keys},
        "consequence": shown(request.get("consequence")),
    }


def step_rows(
    plan: Plan,
    outcomes: Mapping[str, Any],
    *,
    waiting_steps: set[str],
    status: str,
    running: set[str],
    shown: Callable[[Any], Any],
) -> list[StepRow]:
    """Each step of a run as the run view lists it: its status (its outcome's, `waiting`, the
    run's own while it runs or stopped mid-step, else `pending`), and what it did, `shown` as
    the profile says."""
    steps: list[StepRow] = []
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
    return steps


def as_is(value: Any) -> Any:
    return value


def budget_view(usage: Mapping[str, Any], budget: Budget | None, plan: Plan) -> dict[str, Any]:
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
