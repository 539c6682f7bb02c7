"""The three budget tiers: total calls, calls per domain, calls per tool."""

from __future__ import annotations

from typing import Any

from plangate.plan import PlanStep
from plangate.profiles import Budget
from plangate.state import BudgetUsage

__all__ = ("charge", "crossed_warnings", "empty_usage", "exceeded_tier", "usage_report")


def empty_usage() -> BudgetUsage:
    return {"total": 0, "domains": {}, "tools": {}}


def _tiers(usage: BudgetUsage, step: PlanStep, budget: Budget) -> list[tuple[str, int, int | None]]:
    """(tier name, calls used, limit) for the three tiers a call of `step` counts against."""
    domain = step.domain or ""
    return [
        ("total", usage["total"], budget.total_calls),
        (f"domain:{domain}", usage["domains"].get(domain, 0), budget.calls_per_domain),
        (f"tool:{step.tool}", usage["tools"].get(step.tool, 0), budget.calls_per_tool),
    ]


def exceeded_tier(usage: BudgetUsage, step: PlanStep, budget: Budget) -> dict[str, Any] | None:
    """The first tier one more call of `step` would exceed, as `{tier, used, limit}`, or None."""
    for tier, used, limit in _tiers(usage, step, budget):
        if limit is not None and used + 1 > limit:
            return {"tier": tier, "used": used, "limit": limit}
    return None


def charge(usage: BudgetUsage, step: PlanStep) -> BudgetUsage:
    """Usage after one call of `step` (a new value: state must not be mutated in place)."""
    domain = step.domain or ""
    return {
        "total": usage["total"] + 1,
        "domains": {**usage["domains"], domain: usage["domains"].get(domain, 0) + 1},
        "tools": {**usage["tools"], step.tool: usage["tools"].get(step.tool, 0) + 1},
    }


def crossed_warnings(
    usage: BudgetUsage, step: PlanStep, budget: Budget, warned: list[str]
) -> list[dict[str, Any]]:
    """Tiers of `step` at or past the warning threshold that have not been warned about yet."""
    return [
        {"tier": tier, "used": used, "limit": limit, "threshold": budget.warning_threshold}
        for tier, used, limit in _tiers(usage, step, budget)
        if limit and tier not in warned and used / limit >= budget.warning_threshold
    ]


def usage_report(usage: BudgetUsage, budget: Budget) -> dict[str, Any]:
    """Used and limit per tier, and the highest share of any tier used."""

    def tier(used: int, limit: int | None) -> dict[str, Any]:
        return {"used": used, "limit": limit}

    report: dict[str, Any] = {
        "total": tier(usage["total"], budget.total_calls),
        "domains": {d: tier(n, budget.calls_per_domain) for d, n in usage["domains"].items()},
        "tools": {t: tier(n, budget.calls_per_tool) for t, n in usage["tools"].items()},
    }
    shares = [
        entry["used"] / entry["limit"]
        for entry in [report["total"], *report["domains"].values(), *report["tools"].values()]
        if entry["limit"]
    ]
    report["utilisation"] = round(max(shares, default=0.0), 4)
    return report
