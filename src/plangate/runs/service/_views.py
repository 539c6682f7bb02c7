"""The run service's views: a waiting request, a run's steps and budget, as the faces show them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from langgraph.types import StateSnapshot

from plangate._time import parse_iso
from plangate.plan import Plan
from plangate.profiles import Budget
from plangate.project import RunSetup
from plangate.runs.stored import WaitingInterrupt

__all__ = (
    "STARTED_BY",
    "approval_view",
    "as_is",
    "budget_view",
    "step_rows",
    "waiting_view",
)

STARTED_BY = "plangate_started_by"
"""Checkpoint metadata key naming who started a run from the inbox (carried across resumes
the inbox makes; a run started by `plangate run` has none)."""


def approval_view(
    thread: str,
    waiting: WaitingInterrupt,
    snapshot: StateSnapshot,
    setup: RunSetup,
    now: datetime,
) -> dict[str, Any]:
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


def waiting_view(request: Mapping[str, Any], shown: Callable[[Any], Any]) -> dict[str, Any]:
    """A waiting request (`approval_view`) as shown outside the decision path: which step
    waits, on what kind of decision, how risky, until when, `shown` as the profile says; not
    its args, its digest or its interrupt id, which are for the approver and the decision."""
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
) -> list[dict[str, Any]]:
    """Each step of a run as the run view lists it: its status (its outcome's, `waiting`, the
    run's own while it runs or stopped mid-step, else `pending`), and what it did, `shown` as
    the profile says."""
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
