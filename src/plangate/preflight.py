"""The pre-flight report: what a plan would meet under a graph's governance, before it runs.

For people (`plangate check PLAN`) and for LLM planners that want to repair a plan before they
submit it: every step's tool (known? allowed?), its args against the tool's schema, its effective
action and where it came from, its risk, whether it will ask a person, and the budget tiers the
plan would run out of, at which step. Nothing runs and nothing is stored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from plangate._governance import Governance
from plangate.actions import ActionSource
from plangate.approval import args_problem
from plangate.budget import charge, empty_usage, exceeded_tier
from plangate.errors import PlanValidationError
from plangate.plan import Action, Order, Plan, PlanStep, parse_plan, tool_domain
from plangate.profiles import Budget, Risk
from plangate.references import references_in
from plangate.state import BudgetUsage

if TYPE_CHECKING:
    from plangate.runs.guarded_graph import PlangateGraph

__all__ = (
    "PreflightProblem",
    "PreflightReport",
    "PreflightStep",
    "TierForecast",
    "plan_report",
    "preflight",
    "tool_rows",
)

ProblemKind = Literal["plan", "unknown_tool", "tool_not_allowed", "invalid_arguments", "budget"]


class PreflightProblem(BaseModel):
    """One thing that keeps the plan from running as written.

    Attributes:
        kind: `plan` (the plan itself is invalid), `unknown_tool`, `tool_not_allowed`,
            `invalid_arguments` or `budget` (a tier runs out before this step).
        step_id: The step to blame, when one is.
        message: What is wrong, in one line, naming the field or tier.
    """

    model_config = ConfigDict(frozen=True)

    kind: ProblemKind
    step_id: str | None
    message: str


class PreflightStep(BaseModel):
    """How one step would be governed.

    Attributes:
        step_id: The step's id.
        tool: The tool it calls.
        known: Whether the graph has the tool (offline: a mock of it).
        allowed: Whether the profile's allowlist lets it run.
        action: The effective action (the plan can raise the trusted one, never lower it).
        action_source: Where `action` came from (`profile`, `tool`, `mcp`, `openapi`,
            `default`, `plan`).
        irreversible: Whether the call cannot be undone.
        exempt: Irreversible, yet it runs without a person: the profile names its tool in
            `irreversible_exempt`.
        risk: The call's risk under the profile.
        asks: Whether it waits for a person's decision.
        blocked_by: The budget tier it would find used up (`total`, `domain:crm`,
            `tool:email.send`), or `None`.
        references: Arg path -> the step whose output it takes (`${steps.<id>.output...}`);
            those args are checked against the tool's schema only when the step runs.
    """

    model_config = ConfigDict(frozen=True)

    step_id: str
    tool: str
    known: bool
    allowed: bool
    action: Action
    action_source: ActionSource
    irreversible: bool
    exempt: bool = False
    risk: Risk
    asks: bool
    blocked_by: str | None
    references: dict[str, str] = Field(default_factory=dict)


class TierForecast(BaseModel):
    """How a plan would use one budget tier.

    Attributes:
        tier: `total`, `domain:<d>` or `tool:<t>`.
        limit: The tier's limit, or `None` for none.
        calls: The calls the plan would make in it (its steps that are not blocked).
        blocked: The steps blocked because this tier is used up by then, in plan order.
    """

    model_config = ConfigDict(frozen=True)

    tier: str
    limit: int | None
    calls: int
    blocked: list[str] = Field(default_factory=list)


class PreflightReport(BaseModel):
    """What a plan would meet under a graph's governance; `ok` when nothing stops it.

    `order` is the order the plan would run in (`plangate.plan.Order`): the plan's own, else
    the profile's. `model_dump(mode="json")` is plain JSON, for handing back to a planner.
    """

    model_config = ConfigDict(frozen=True)

    ok: bool
    profile: str
    order: Order = "listed"
    steps: list[PreflightStep]
    problems: list[PreflightProblem]
    budget: list[TierForecast] = Field(default_factory=list)


def preflight(graph: PlangateGraph, plan: Any) -> PreflightReport:
    """Check `plan` against `graph`'s tools and profile without running anything.

    The budget forecast assumes every step runs (each approval given, no step skipped after a
    failure), in the order the graph would run them: the steps it names as `blocked_by` are
    the ones a run would block first.

    Args:
        graph: A graph from `build_graph`.
        plan: A `Plan`, a dict or a list of steps, as `graph.invoke({"plan": ...})` takes.

    Returns:
        The report; a plan that is not valid at all gives `ok=False`, no steps, and one
        `plan` problem naming the step and field.

    Examples:
        >>> from plangate import build_graph, demo_toolkit
        >>> graph = build_graph(demo_toolkit("/tmp/outbox.db"), profile="smb")
        >>> report = preflight(graph, [{"tool": "email.send", "action": "read",
        ...     "args": {"to": "a@b.example", "subject": "s", "body": "b"}}])
        >>> report.ok, report.steps[0].action, report.steps[0].asks
        (True, 'execute', True)
    """
    try:
        # The problem's kind says it is the plan: its message need not start with "plan: " too.
        parsed = parse_plan(plan, source=None)
    except PlanValidationError as exc:
        problem = PreflightProblem(kind="plan", step_id=exc.step_id, message=exc.message)
        profile = graph.governance.profile
        return PreflightReport(
            ok=False, profile=profile.name, order=profile.order, steps=[], problems=[problem]
        )
    return plan_report(graph.governance, parsed)


def plan_report(governance: Governance, plan: Plan) -> PreflightReport:
    """The pre-flight report of a plan already validated, under `governance` (a graph's)."""
    profile = governance.profile
    steps: list[PreflightStep] = []
    problems: list[PreflightProblem] = []
    usage = empty_usage()
    blocked: dict[str, list[str]] = {}
    for step in plan.steps:
        policy = governance.policy(step)
        tool = governance.described(step.tool)
        known = governance.tool(step.tool) is not None
        allowed = profile.allows(step.tool)
        exceeded = exceeded_tier(usage, step, profile.budget) if known and allowed else None
        stopped: tuple[ProblemKind, str] | None = None
        if not known:
            stopped = ("unknown_tool", governance.unknown_tool(step.tool))
        elif not allowed:
            stopped = (
                "tool_not_allowed",
                f"tool {step.tool!r} is not in the allowlist of profile {profile.name!r}",
            )
        elif exceeded is not None:
            blocked.setdefault(exceeded["tier"], []).append(step.id)
            stopped = (
                "budget",
                f"budget tier {exceeded['tier']} is used up by then "
                f"({exceeded['used']}/{exceeded['limit']} calls)",
            )
        else:
            usage = charge(usage, step)
        if stopped is not None:
            problems.append(PreflightProblem(kind=stopped[0], step_id=step.id, message=stopped[1]))
        referenced = dict(references_in(step.args))
        # Referenced args get their values when the step runs: checked then.
        found = args_problem(tool, step.args, unknown_yet=referenced) if tool is not None else None
        if found is not None:
            field, message = found
            problems.append(
                PreflightProblem(
                    kind="invalid_arguments",
                    step_id=step.id,
                    message=f"{step.tool}: {field}: {message}",
                )
            )
        steps.append(
            PreflightStep(
                step_id=step.id,
                tool=step.tool,
                known=known,
                allowed=allowed,
                action=policy.action,
                action_source=policy.source,
                irreversible=policy.irreversible,
                exempt=policy.exempt,
                risk=policy.risk,
                asks=policy.needs_approval,
                blocked_by=exceeded["tier"] if exceeded else None,
                references=referenced,
            )
        )
    return PreflightReport(
        ok=not problems,
        profile=profile.name,
        order=plan.order or profile.order,
        steps=steps,
        problems=problems,
        budget=_forecast(usage, blocked, profile.budget),
    )


def _forecast(
    usage: BudgetUsage, blocked: dict[str, list[str]], budget: Budget
) -> list[TierForecast]:
    """Each tier the plan uses or runs out of: its calls, its limit and the steps it blocks."""
    tiers = {
        "total": (usage["total"], budget.total_calls),
        **{f"domain:{d}": (n, budget.calls_per_domain) for d, n in usage["domains"].items()},
        **{f"tool:{t}": (n, budget.calls_per_tool) for t, n in usage["tools"].items()},
    }
    for tier in blocked:  # a tier may block a step without having been charged by this plan
        if tier not in tiers:
            kind = tier.split(":", 1)[0]
            limit = budget.calls_per_domain if kind == "domain" else budget.calls_per_tool
            tiers[tier] = (0, limit)
    return [
        TierForecast(tier=tier, limit=limit, calls=calls, blocked=blocked.get(tier, []))
        for tier, (calls, limit) in tiers.items()
    ]


def tool_rows(
    graph: PlangateGraph, *, source_of: Callable[[str], str], offline: bool = False
) -> list[dict[str, Any]]:
    """Each tool a plan may call under `graph`'s profile, as `plangate tools --json` lists it:
    its source, domain, effective action and where that comes from, whether it is irreversible
    (and exempt from asking), its risk, whether the profile lets it run and makes it ask.

    Args:
        graph: A graph from `build_graph` or `Project.graph`; its tools are all loaded.
        source_of: Where a tool comes from (`LazyTools.source_of`).
        offline: Also list the tools only a mock stands for, with source `mock`.
    """
    governance = graph.governance
    mocked = [name for name in governance.mocks if name not in graph.tools] if offline else []
    rows = []
    for name in sorted({*graph.tools, *mocked}):
        policy = governance.policy(PlanStep(id="tool", tool=name))
        rows.append(
            {
                "tool": name,
                "source": "mock" if name in mocked else source_of(name),
                "domain": tool_domain(name),
                "action": policy.action,
                "action_source": policy.source,
                "irreversible": policy.irreversible,
                "exempt": policy.exempt,
                "risk": policy.risk,
                "allowed": governance.profile.allows(name),
                "asks": policy.needs_approval,
            }
        )
    return rows
