"""`budget_check`: decide what happens to the next wave of steps before anything runs.

A step is ready when every step it depends on has ended and, in listed order (the default, see
`plangate.plan.Order`), when it is a read with no effect before it still to end, or an effect
with every step before it ended. Ready steps are taken in plan order, at most
`Profile.max_concurrency` of them, looking ahead at most `LOOKAHEAD` steps past the first
step that has not ended. For each, in order: a step whose dependencies did not all end `ok` is
skipped; a tool nobody registered (offline: with no mock), or that the profile does not allow, is
blocked; a call that would exceed a budget tier is blocked. The budget is charged here, in plan
order, before anything is dispatched: of two steps that would both cross a tier, the one listed
first goes on and the other is blocked, whatever order their calls would end in. Then the step's
policy is worked out from trusted sources (the plan may raise its action, never lower it; a
lowering is recorded as `policy_override`). A step the profile gates has its args checked
against the tool's schema (refused args end it `error` without asking anyone) and gets an
approval request carrying the real args and a digest that binds the decision to them (built
here, once, so that the timestamps do not change when `approval_interrupt` runs again on
resume).

Each step that goes on is sent (a LangGraph `Send`) to `approval_interrupt` or `tool_exec`; the
tasks of a wave run side by side, and `trace_emit` records the wave when all of them have ended.

A wave is a LangGraph superstep, which ends when its slowest task does: the next step of a
quick chain would wait for the slowest call beside it. So a read sent to `tool_exec` takes the
chain of reads that goes on from it along in its task (`StepTask.lane`, at most `LANE_STEPS`):
each step that depends on the one before it alone, and that step alone on it
(`Plan.chained`). They are cleared and charged here, after the wave's own steps, as any step
is; `tool_exec` runs each once the one before it ended `ok`, and hands the rest back untouched
otherwise. Only reads: a task's calls are stored when it ends, so a crash runs the lane again,
which an effect must never be.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from langgraph.runtime import Runtime
from langgraph.types import Command, Send

from plangate._channels import outcome_from_state
from plangate._governance import Governance, StepLinks, TraceWriter, step_links
from plangate._time import iso
from plangate.actions import StepPolicy
from plangate.approval import DECISIONS, approval_digest, args_problem, consequence_of
from plangate.budget import charge, exceeded_tier
from plangate.nodes._outcome import closed_outcome
from plangate.plan import MAX_PLAN_SIZE, PlanStep, step_from_state
from plangate.references import Resolved, UnresolvedReference, resolve
from plangate.state import (
    ApprovalRecord,
    ApprovalRequest,
    BudgetUsage,
    LaneStep,
    PlanState,
    ReviewGrant,
    RunCounters,
    StepOutcome,
    StepReport,
    StepTask,
)

LOOKAHEAD = 256
"""How many steps past the first one that has not ended a wave looks at for ready steps. It
bounds the work of every wave, however long the plan: a ready step further on waits until the
steps before it end."""

LANE_STEPS = 32
"""The most steps of a chain one task runs after its own: it bounds how many reads a crash
makes run again, and how long their trace events wait to be numbered."""


def ready_steps(
    steps: list[Any],
    ended: Mapping[str, Any],
    cursor: int,
    limit: int,
    *,
    is_effect: Callable[[StepLinks], bool] | None = None,
) -> Iterator[int]:
    """Indices of the first `limit` steps from `cursor` on that have not ended and whose
    dependencies all have. Steps only depend on steps before them (`parse_plan` orders them),
    so the step at `cursor` is always one: nothing is in flight between waves.

    In listed order (`is_effect` tells the effects) an effect is ready only at `cursor`, when
    every step listed before it has ended, and no step listed after an effect that has not ended
    is ready: the reads between two effects run together, the effects one at a time, in order."""
    found = 0
    for index in range(cursor, min(len(steps), cursor + LOOKAHEAD)):
        links = step_links(steps[index])
        if links.id in ended:
            continue
        if is_effect is not None and is_effect(links):
            if index == cursor:
                yield index
            return
        if any(dep not in ended for dep in links.depends_on):
            continue
        yield index
        found += 1
        if found == limit:
            return


def budget_check(state: PlanState, runtime: Runtime[Any], *, governance: Governance) -> Command:
    run = state["run"]
    steps = state["plan"]["steps"]
    stored = state.get("outcomes", {})
    writer = TraceWriter(run, governance, runtime.stream_writer)
    usage = run["usage"]
    closed: list[StepReport] = []
    sends: list[Send] = []
    running: list[str] = []
    # Sent to `tool_exec`: each may take a chain along, in a plan that has chains.
    chained: list[int] = state["plan"].get("chained") or []
    reads: list[StepTask] = []
    profile = governance.profile
    # `halt` promises that nothing listed after a failing step runs: any step may fail, so under
    # `on_error: halt` steps run one at a time.
    limit = 1 if profile.on_error == "halt" else profile.max_concurrency
    listed = (state["plan"].get("order") or profile.order) == "listed"
    is_effect = governance.is_effect if listed else None
    covered: Mapping[str, dict[str, Any]] = state["plan"].get("covered") or {}
    for index in ready_steps(steps, stored, run["cursor"], limit, is_effect=is_effect):
        step = step_from_state(steps[index])
        # Only the dependencies' outcomes are read (and decoded), never the whole map.
        deps = {dep: outcome_from_state(stored[dep]) for dep in step.depends_on}
        task: StepTask = {
            "index": index,
            "step": steps[index],
            "run_id": run["run_id"],
            "trace_id": run["trace_id"],
        }
        outcome = _refusal(step, deps, usage, governance, writer)
        if outcome is None:
            shown = covered.get(step.id)
            outcome = _gate(
                run, step, task, governance=governance, writer=writer, deps=deps, shown=shown
            )
        if outcome is not None:
            closed.append({"index": index, "events": [], "outcome": outcome})
            continue
        usage = charge(usage, step)  # what the wave may spend: the join charges what it did
        if "telemetry" in run:  # the step's span shows the budget its call uses
            task["telemetry"] = {**run["telemetry"], "calls": usage["total"]}
        asks = "request" in task
        sends.append(Send("approval_interrupt" if asks else "tool_exec", task))
        running.append(step.id)
        if (
            chained
            and chained[index] >= 0
            and not asks
            and "approval" not in task
            and not governance.is_effect(step_links(steps[index]))
        ):
            reads.append(task)
        if asks and "halt" in (profile.on_reject, profile.expiry_policy):
            # Likewise nothing after a step that may be rejected, or expire, until it is decided.
            break
    # After the wave's own steps are charged: a chain never takes the budget of a step of it.
    for task in reads:
        lane, usage = _lane(
            task["index"],
            steps,
            chained,
            usage=usage,
            run=run,
            governance=governance,
            listed=listed,
        )
        if lane:
            task["lane"] = lane
            running += [step_links(steps[entry["index"]]).id for entry in lane]
    update: dict[str, Any] = writer.update(running=running)
    if closed:
        update["wave"] = closed
    return Command(update=update, goto=sends or "trace_emit")


def _lane(
    head: int,
    steps: list[Any],
    chained: list[int],
    *,
    usage: BudgetUsage,
    run: RunCounters,
    governance: Governance,
    listed: bool,
) -> tuple[list[LaneStep], BudgetUsage]:
    """The chain of reads that goes on from the read at `head` in its task, and the usage
    with each of them charged. It stops at a step that is not a read, needs a person, may not
    run, would exceed a budget tier, or (in listed order) is listed after an effect."""
    lane: list[LaneStep] = []
    at = head
    # Within the window a wave looks at: what a lane looks through is bounded like a wave.
    while len(lane) < LANE_STEPS and (after := chained[at]) >= 0 and after - head <= LOOKAHEAD:
        links = step_links(steps[after])
        between = range(at + 1, after) if listed else range(0)
        if governance.is_effect(links) or any(
            governance.is_effect(step_links(steps[n])) for n in between
        ):
            break
        step = step_from_state(steps[after])
        tool = governance.tool(step.tool)
        if (
            tool is None
            or not governance.profile.allows(step.tool)
            or governance.policy(step).needs_approval
            or exceeded_tier(usage, step, governance.profile.budget) is not None
        ):
            break
        usage = charge(usage, step)
        entry: LaneStep = {"index": after, "step": steps[after]}
        if "telemetry" in run:
            entry["telemetry"] = {**run["telemetry"], "calls": usage["total"]}
        lane.append(entry)
        at = after
    return lane, usage


def _refusal(
    step: PlanStep,
    deps: dict[str, StepOutcome],
    usage: BudgetUsage,
    governance: Governance,
    writer: TraceWriter,
) -> StepOutcome | None:
    """The outcome of a step that may not run at all (skipped or blocked), else `None`."""
    profile = governance.profile
    unmet = [(dep, o["status"]) for dep, o in deps.items() if o["status"] != "ok"]
    if unmet:
        dep, status = unmet[0]
        return closed_outcome(
            step, "skipped", "dependency_failed", f"depends on step {dep!r}, which ended {status}"
        )
    if governance.tool(step.tool) is None:
        reason = "no_mock" if profile.offline else "tool_not_registered"
        return closed_outcome(step, "blocked", reason, governance.unknown_tool(step.tool))
    if not profile.allows(step.tool):
        return closed_outcome(
            step,
            "blocked",
            "tool_not_allowed",
            f"tool {step.tool!r} is not in the allowlist of profile {profile.name!r}",
        )
    exceeded = exceeded_tier(usage, step, profile.budget)
    if exceeded is not None:
        writer.emit("budget_exceeded", exceeded, step=step)
        tier, used, limit = exceeded["tier"], exceeded["used"], exceeded["limit"]
        return closed_outcome(
            step,
            "blocked",
            "budget_exceeded",
            f"budget tier {tier} is used up ({used}/{limit} calls)",
        )
    return None


def _gate(
    run: RunCounters,
    step: PlanStep,
    task: StepTask,
    *,
    governance: Governance,
    writer: TraceWriter,
    deps: dict[str, StepOutcome],
    shown: Mapping[str, Any] | None,
) -> StepOutcome | None:
    """Make `task` ready for `tool_exec`, or for a person (with its request); or the outcome of
    a step closed for args that cannot be used. `shown` is the step's row in the approved plan
    review, when that showed it as covered."""
    try:
        # References are all among the dependencies, which ended `ok`.
        outputs = {dep: o["output"] for dep, o in deps.items()}
        resolved = resolve(step.args, outputs, limit=MAX_PLAN_SIZE)
    except UnresolvedReference as exc:
        return closed_outcome(step, "error", "unresolved_reference", f"{step.tool}: {exc}")
    if resolved.args != step.args:  # references, or `$${` escapes; else the step's own
        task["args"] = resolved.args
    policy = governance.policy(step)
    if policy.lowered is not None:
        writer.emit(
            "policy_override",
            {
                "plan_action": policy.lowered,
                "action": policy.action,
                "action_source": policy.source,
            },
            step=step,
        )
    tool = governance.described(step.tool)
    problem = args_problem(tool, resolved.args) if policy.needs_approval and tool else None
    if problem is not None:
        field, message = problem
        return closed_outcome(
            step,
            "error",
            "invalid_arguments",
            f"{step.tool}: invalid arguments: {field}: {message}",
        )
    grant = run.get("review")
    changed = review_changes(shown, policy, governance.declaration(step.tool)) if shown else None
    if policy.needs_approval and grant and shown and changed is None:
        task["approval"] = covered_approval(grant, step, resolved, policy, governance)
    elif policy.needs_approval:
        task["request"] = ask_for_approval(
            run,
            step,
            task["index"],
            resolved,
            governance=governance,
            policy=policy,
            writer=writer,
            review_changed=changed,
        )
    return None


def review_changes(shown: Mapping[str, Any], policy: StepPolicy, declaration: str) -> str | None:
    """What differs between a step's row in the approved plan review and the step as it is
    about to run, in words for the person now asked; `None` when nothing does."""
    now = {
        "action": policy.action,
        "action_source": policy.source,
        "irreversible": policy.irreversible,
        "risk": policy.risk,
        "declaration": declaration,
    }
    changed = [key for key in now if shown.get(key) != now[key]]
    if not changed:
        return None

    def described(row: Mapping[str, Any]) -> str:
        undone = "irreversible" if row.get("irreversible") else "reversible"
        return f"{row.get('action')} ({row.get('action_source')}), {row.get('risk')} risk, {undone}"

    what = f"the plan review showed it as {described(shown)}; it is now {described(now)}"
    if "declaration" in changed:
        what += "; its tool's declaration changed since"
    return what + ", so the review's approval does not stand for it"


def covered_approval(
    grant: ReviewGrant,
    step: PlanStep,
    resolved: Resolved,
    policy: StepPolicy,
    governance: Governance,
) -> ApprovalRecord:
    """The approval record of a step the approved plan review covers: the reviewer's decision
    on the plan stands for this call (with its references resolved as the plan said), bound to
    it by its digest as any approval is."""
    record: ApprovalRecord = {
        "request_id": grant["request_id"],
        "step_id": step.id,
        "tool": step.tool,
        "decision": "approve",
        "approver": grant["approver"],
        "reason": None,
        "args": None,
        "message": None,
        "requested_at": grant["requested_at"],
        "decided_at": grant["decided_at"],
        "wait_ms": grant["wait_ms"],
        "digest": approval_digest(
            step.tool,
            resolved.args,
            policy.action,
            policy.risk,
            governance.fingerprint,
            declaration=governance.declaration(step.tool),
        ),
        "covered_by": "plan_review",
    }
    if "identity" in grant:
        record["identity"] = grant["identity"]
    if "proofs" in grant:
        record["proofs"] = grant["proofs"]
    return record


_TRACED = (
    "request_id",
    "action",
    "action_source",
    "risk",
    "consequence",
    "expires_at",
    "args",
    "digest",
)
"""The request's fields the trace keeps (redacted as the profile says)."""


def ask_for_approval(
    run: RunCounters,
    step: PlanStep,
    index: int,
    resolved: Resolved,
    *,
    governance: Governance,
    policy: StepPolicy,
    writer: TraceWriter,
    review_changed: str | None = None,
) -> ApprovalRequest:
    """The approval request of `step`, traced as `approval_requested`: what the person deciding
    sees, the real args with references resolved (the trace gets a redacted copy), which args
    came from which step, the effective action and where it came from, the risk, and a digest
    binding all of it."""
    requested = governance.clock()
    args = resolved.args
    request: ApprovalRequest = {
        "type": "approval_request",
        "request_id": uuid.uuid4().hex,
        "trace_id": run["trace_id"],
        "step_id": step.id,
        "step_index": index,
        "tool": step.tool,
        "args": args,
        "action": policy.action,
        "action_source": policy.source,
        "irreversible": policy.irreversible,
        "domain": step.domain or "",
        "description": step.description,
        "risk": policy.risk,
        "consequence": consequence_of(step, policy, args),
        "profile": governance.profile.name,
        "digest": approval_digest(
            step.tool,
            args,
            policy.action,
            policy.risk,
            governance.fingerprint,
            declaration=governance.declaration(step.tool),
        ),
        "requested_at": iso(requested),
        "expires_at": iso(requested + governance.profile.approval_timeout),
        "allowed_decisions": list(DECISIONS),
        "response_schema": governance.response_schema(step.tool),
    }
    if run.get("started_by") is not None:
        request["started_by"] = run["started_by"]
    if resolved.sources:
        request["references"] = resolved.sources
    if review_changed is not None:
        request["review_changed"] = review_changed
    needed = governance.profile.approvals_needed(policy.risk)
    if needed > 1:
        request["approvals_required"], request["approvals_so_far"] = needed, []
    fields: dict[str, Any] = dict(request)
    traced = {k: fields[k] for k in (*_TRACED, "references", "review_changed") if k in fields}
    writer.emit("approval_requested", traced, step=step)
    return request
