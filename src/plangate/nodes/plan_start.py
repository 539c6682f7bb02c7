"""`plan_start`: validate the plan, open (or continue) the trace and the thread's hash chain, reset
the run's counters."""

from __future__ import annotations

import uuid
from typing import Any

from langgraph.config import get_config
from langgraph.runtime import Runtime
from langgraph.types import Overwrite

from plangate._governance import Governance, TraceWriter
from plangate.budget import empty_usage
from plangate.identity._gate import starter_of
from plangate.nodes.plan_review import review_request
from plangate.plan import parse_plan
from plangate.state import PlanState, RunCounters


def plan_start(
    state: PlanState, runtime: Runtime[Any], *, governance: Governance
) -> dict[str, Any]:
    plan = parse_plan(state.get("plan"))
    earlier = state.get("run")
    # A trace id given in the input, or kept by this thread from an earlier plan, goes on;
    # likewise the sequence, so `seq` stays monotonic across executions of one trace.
    trace_id = state.get("trace_id") or (earlier["trace_id"] if earlier else uuid.uuid4().hex)
    given_seq = state.get("trace_seq")
    seq = given_seq if given_seq is not None else (earlier["seq"] if earlier else 0)
    run: RunCounters = {
        "run_id": uuid.uuid4().hex,
        "trace_id": trace_id,
        "seq": seq,
        "cursor": 0,
        "usage": empty_usage(),
        "warned": [],
        "halted": None,
        # The thread's hash chain goes on across its runs, whatever their traces.
        "chain": earlier.get("chain", "") if earlier else "",
        "profile": governance.profile.name,
        "profile_fingerprint": governance.fingerprint,
    }
    # Read once, when the run starts: a later resume's config cannot change who it was.
    starter = starter_of(get_config(), governance.signer)
    if starter is not None:
        run["started_by"] = starter
    if governance.telemetry is not None:
        run["telemetry"] = governance.telemetry.run_span(trace_id)
    writer = TraceWriter(run, governance, runtime.stream_writer)
    writer.emit(
        "plan_created",
        {
            "goal": plan.goal,
            "steps": len(plan.steps),
            "step_ids": [step.id for step in plan.steps][:50],
            "profile": governance.profile.name,
        },
    )
    update: dict[str, Any] = {"plan": plan.to_state(), "outcomes": Overwrite({})}
    if governance.profile.plan_review is not None:
        # Built here, not in `plan_review`, which runs again from its first line on resume.
        review = review_request(run, plan, governance, writer)
        if review is not None:
            update["review"] = review
    update.update(writer.update())
    # Clear what an earlier run or this input left, but write nothing needless: every channel
    # ever written adds its version to every later checkpoint.
    for key in ("trace_id", "trace_seq", "result"):
        if state.get(key) is not None:
            update[key] = None
    return update


def after_plan_start(state: PlanState) -> str:
    """Route: to the plan review when the profile wants one, else to the first wave."""
    return "plan_review" if state.get("review") else "budget_check"
