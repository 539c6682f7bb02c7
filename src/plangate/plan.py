"""Plans: an ordered list of tool calls, validated before anything runs."""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from plangate._files import dotted, first_error, read_document
from plangate._kinds import Action, Order
from plangate._plain_json import LONE_SURROGATE, MAX_DEPTH, MAX_STRING_CHARS, plain_json_size
from plangate.errors import PlanValidationError
from plangate.references import references_in

__all__ = (
    "MAX_DEPTH",
    "MAX_NAME_CHARS",
    "MAX_PLAN_SIZE",
    "MAX_STEPS",
    "MAX_STRING_CHARS",
    "MAX_TEXT_CHARS",
    "Action",
    "Plan",
    "PlanStep",
    "Order",
    "parse_plan",
    "plain_json_size",
    "tool_domain",
)


def tool_domain(tool: str) -> str:
    """The budget domain of a tool: its name up to the first `.` (`crm.lookup` -> `crm`), the
    prefix a project gives each source's tools. Budgets, risk and sensitive domains use it, never a
    domain a plan names."""
    return tool.split(".", 1)[0]


# Limits. A plan is untrusted input (an LLM writes it) and all of it is kept in the run's
# checkpoints, so each limit is far above what a real plan needs, yet low enough that a runaway
# or hostile plan is refused at once, with a message naming the limit, instead of stalling
# validation, overflowing the stack or bloating the database. `MAX_STRING_CHARS` and `MAX_DEPTH`,
# which bound args and metadata, live with the walk that checks them (`plangate._plain_json`).

MAX_STEPS = 10_000
"""Steps in one plan: the largest budget of the built-in profiles (`technical`, 10,000 calls),
so a longer plan could not run to its end under any of them; validating 10,000 steps takes a
fraction of a second."""

MAX_PLAN_SIZE = 10_000_000
"""A plan's size: the length of every string in it (keys included) plus one for every other
value, about its size as JSON. Every 100th checkpoint of a run holds a whole copy of the plan
(`plangate.state.SNAPSHOT_EVERY`), so its size multiplies into the database. Also the most an
`edit` decision's args may hold."""

MAX_NAME_CHARS = 256
"""A step's id, tool, domain and each `depends_on` id; a decision's approver, request_id and
digest. Names appear in every trace event and error message."""

MAX_TEXT_CHARS = 10_000
"""A plan's goal, a step's description and a decision's reason: prose a person reads."""


_Name = Annotated[str, Field(max_length=MAX_NAME_CHARS)]


class PlanStep(BaseModel):
    """One tool call in a plan.

    Attributes:
        id: Unique within the plan; left empty, the plan names it `step-<n>` (its 1-based
            position).
        tool: The registered name of the tool to call, e.g. `crm.lookup_account`.
        args: Keyword arguments for the tool: plain JSON (strings, integers within 64 bits,
            finite floats, booleans, `None`, lists, and mappings with string keys), within the
            limits above; anything else (bytes, a `datetime`, a tuple, an object) is refused
            with the path to it.
        action: `read`, `propose` or `execute`, as the plan sees it. It can only raise the
            tool's trusted action (from the profile or the tool itself, see `plangate.actions`),
            never lower it; left out, the trusted action applies.
        domain: Budget domain: the part of `tool` before the first `.` (`crm.lookup` -> `crm`,
            `tool_domain`). A plan cannot choose it: inside a `Plan` it is always the tool's, and
            a domain the plan gives (here or in `metadata`) is replaced, since a made-up domain
            would open a fresh per-domain budget or dodge a sensitive domain. Code that governs
            calls itself (`GovernanceMiddleware(domains=...)`) may set it.
        depends_on: Ids of steps that must end `ok` before this one runs; otherwise it is skipped.
        description: What the step is for, in words a human approver reads.
        metadata: Free-form data carried along; plain JSON, like `args`.
    """

    model_config = ConfigDict(extra="forbid", defer_build=True)

    id: _Name = ""
    tool: _Name = Field(min_length=1)
    args: dict[str, Any] = Field(default_factory=dict)
    action: Action | None = None
    domain: _Name | None = None
    depends_on: list[_Name] = Field(default_factory=list)
    description: str = Field(default="", max_length=MAX_TEXT_CHARS)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id", mode="before")
    @classmethod
    def _null_id_is_unnamed(cls, value: Any) -> Any:
        return "" if value is None else value

    @model_validator(mode="after")
    def _plain_json(self, info: ValidationInfo) -> PlanStep:
        size = _step_size(self)
        if info.context and _SIZES in info.context:
            info.context[_SIZES][id(self)] = size
        return self

    @model_validator(mode="after")
    def _default_domain(self) -> PlanStep:
        if self.domain is None:
            self.domain = tool_domain(self.tool)
        return self


class Plan(BaseModel):
    """An ordered list of steps with a goal.

    The list is kept in order, except that a step listed before a step it depends on is moved
    after it (a stable topological order). How the steps run follows `order`: by default
    (`listed`) every effect waits for the steps listed before it and holds back those after it.
    Duplicate ids, unknown `depends_on` ids and cycles are rejected with a `PlanValidationError`
    naming the step, as are plans over the limits above (`MAX_STEPS`, `MAX_PLAN_SIZE`, ...),
    naming the field and the limit.

    Examples:
        >>> plan = Plan.model_validate({"goal": "say hi", "steps": [{"tool": "echo.say"}]})
        >>> plan.steps[0].id, plan.steps[0].domain
        ('step-1', 'echo')
    """

    model_config = ConfigDict(extra="forbid", defer_build=True)

    goal: str = Field(default="", max_length=MAX_TEXT_CHARS)
    steps: list[PlanStep] = Field(min_length=1)
    order: Order | None = Field(
        default=None,
        description="Leave it out: steps that change something run in the order listed. "
        "'dependencies' runs every step as soon as its depends_on have ended.",
    )
    """`dependencies` asks for data-flow order only (see `Order`); unset, the profile's `order`
    applies (`listed` unless it says otherwise). The order never changes which steps ask."""

    @field_validator("steps", mode="before")
    @classmethod
    def _at_most_max_steps(cls, steps: Any) -> Any:
        # Before the steps are validated one by one: a plan far too long is refused at once.
        if isinstance(steps, (list, tuple)) and len(steps) > MAX_STEPS:
            raise PydanticCustomError(
                "too_many_steps",
                "{problem}",
                {
                    "problem": f"a plan holds at most {MAX_STEPS:,} steps, not {len(steps):,}: "
                    "split the work into several plans"
                },
            )
        return steps

    @model_validator(mode="after")
    def _check_graph(self, info: ValidationInfo) -> Plan:
        sizes: dict[int, int] = (info.context or {}).get(_SIZES, {})
        size = len(self.goal)
        for n, step in enumerate(self.steps):
            # Steps given as `PlanStep` objects are not validated again by pydantic: walk those.
            known = sizes.get(id(step))
            size += known if known is not None else _step_size(step, at=("steps", n))
        if size > MAX_PLAN_SIZE:
            raise PlanValidationError(
                f"field 'steps': the plan's size is {size:,}, over the limit of "
                f"{MAX_PLAN_SIZE:,} (its strings' lengths plus one for every other value)",
                hint="split it into several plans; pass large content by reference (a path or "
                "URL the tool reads)",
            )
        self.steps = [
            step
            if step.id and step.domain == tool_domain(step.tool)
            else step.model_copy(
                update={"id": step.id or f"step-{n}", "domain": tool_domain(step.tool)}
            )
            for n, step in enumerate(self.steps, start=1)
        ]
        seen: set[str] = set()
        for step in self.steps:
            if step.id in seen:
                raise PlanValidationError(
                    f"step {step.id!r}: duplicate step id",
                    step_id=step.id,
                    hint="give every step a unique id",
                )
            seen.add(step.id)
        for step in self.steps:
            for dep in step.depends_on:
                if dep not in seen:
                    raise PlanValidationError(
                        f"step {step.id!r}: depends_on names unknown step {dep!r}",
                        step_id=step.id,
                    )
                if dep == step.id:
                    raise PlanValidationError(
                        f"step {step.id!r}: depends on itself", step_id=step.id
                    )
        referenced = {}
        for n, step in enumerate(self.steps):
            implied = _referenced_steps(step, seen)
            referenced.update({(step.id, dep): arg for dep, arg in implied.items()})
            added = [dep for dep in implied if dep not in step.depends_on]
            if added:
                self.steps[n] = step.model_copy(update={"depends_on": [*step.depends_on, *added]})
        self.steps = _stable_topological_order(self.steps, referenced)
        return self

    def to_input(self) -> dict[str, Any]:
        """The plan as plain JSON without default values, as `graph.invoke({"plan": ...})`
        takes it; `Plan.model_validate` restores the defaults."""
        return self.model_dump(mode="json", exclude_defaults=True)

    def to_state(self) -> dict[str, Any]:
        """The plan as graph state holds it: its goal, and each step as one JSON text
        (`stored_step`). Every resume loads the plan, and one string per step loads as a copy
        of its bytes, where a mapping per step is an object per key and value."""
        state: dict[str, Any] = {"goal": self.goal, "steps": [stored_step(s) for s in self.steps]}
        if self.order is not None:
            state["order"] = self.order
        followers = chain_followers(self.steps)
        if followers is not None:
            state["chained"] = followers
        return state

    @classmethod
    def from_state(cls, stored: Mapping[str, Any]) -> Plan:
        """The plan `to_state` stored (or, from a run stored before, its plain JSON)."""
        steps = [step_from_state(step) for step in stored.get("steps", [])]
        return cls.model_construct(
            goal=stored.get("goal", ""), steps=steps, order=stored.get("order")
        )

    @classmethod
    def from_file(cls, path: str | Path) -> Plan:
        """Read a plan from a YAML or JSON file.

        Raises:
            PlanValidationError: The file is missing, unreadable, or not a valid plan.
        """
        try:
            data = read_document(path, what="plan")
        except ValueError as exc:
            raise PlanValidationError(str(exc)) from None
        return parse_plan(data, source=f"plan file {str(path)!r}")


def stored_step(step: PlanStep) -> str:
    """A step as `Plan.to_state` stores it: JSON without default values."""
    return step.model_dump_json(exclude_defaults=True)


def step_from_state(stored: str | Mapping[str, Any]) -> PlanStep:
    """A step `stored_step` stored (or, from a run stored before, its plain JSON)."""
    if isinstance(stored, str):
        return PlanStep.model_validate_json(stored)
    return PlanStep.model_validate(stored)


def parse_plan(data: Any, *, source: str | None = "plan") -> Plan:
    """Validate a plan given as a `Plan`, a dict or a list of steps, naming the culprit on error.

    Each message starts with `source: `; with `source=None` it does not, for a caller that
    already says the problem is in the plan.
    """
    if isinstance(data, Plan):
        return data
    lead = f"{source}: " if source else ""
    if isinstance(data, list):
        data = {"steps": data}
    if not isinstance(data, dict):
        got = "nothing (it is empty)" if data is None else type(data).__name__
        raise PlanValidationError(f"{lead}expected a mapping with 'goal' and 'steps', got {got}")
    try:
        return Plan.model_validate(data, context={_SIZES: {}})
    except PlanValidationError as exc:
        raise PlanValidationError(
            f"{lead}{exc.message}", step_id=exc.step_id, hint=exc.hint
        ) from None
    except ValidationError as exc:
        loc, msg = first_error(exc)
        step_id = None
        if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
            raw = data.get("steps", [])[loc[1]]
            raw_id = raw.get("id") if isinstance(raw, dict) else getattr(raw, "id", None)
            # An id that is itself the problem (not a string, too long) is not repeated back.
            usable = (
                isinstance(raw_id, str)
                and 0 < len(raw_id) <= MAX_NAME_CHARS
                and not LONE_SURROGATE.search(raw_id)
            )
            step_id = raw_id if usable else f"step-{loc[1] + 1}"
            where = f"step {step_id!r}" + (f", field {dotted(loc[2:])!r}" if loc[2:] else "")
        else:
            where = f"field {dotted(loc)!r}"
        raise PlanValidationError(f"{lead}{where}: {msg}", step_id=step_id) from None


_SIZES = "plangate.plan.step_sizes"
"""Validation context key (set by `parse_plan`) under which each step validated within a plan
leaves its share of `MAX_PLAN_SIZE`, keyed by `id()` of the step, so that the plan adds the
shares up without walking the args a second time."""


def _step_size(step: PlanStep, *, at: tuple[str | int, ...] = ()) -> int:
    """A step's share of `MAX_PLAN_SIZE`, refusing args or metadata that are not plain JSON."""
    return (
        plain_json_size(step.args, at=(*at, "args"))
        + plain_json_size(step.metadata, at=(*at, "metadata"))
        + len(step.id)
        + len(step.tool)
        + len(step.description)
        + sum(map(len, step.depends_on))
    )


# --- order ---------------------------------------------------------------------------------------


def _referenced_steps(step: PlanStep, known: set[str]) -> dict[str, str]:
    """Each step `step`'s args reference (`${steps.<id>.output...}`), with the first arg that
    does; an unknown or self reference is a `PlanValidationError` naming the step and the arg."""
    found: dict[str, str] = {}
    for arg, dep in references_in(step.args):
        if dep not in known:
            raise PlanValidationError(
                f"step {step.id!r}: args.{arg} references unknown step {dep!r}", step_id=step.id
            )
        if dep == step.id:
            raise PlanValidationError(
                f"step {step.id!r}: args.{arg} references the step's own output",
                step_id=step.id,
                hint="a step can use only the outputs of steps before it",
            )
        found.setdefault(dep, arg)
    return found


def _stable_topological_order(
    steps: list[PlanStep], referenced: Mapping[tuple[str, str], str]
) -> list[PlanStep]:
    """Keep list order, moving a step after its dependencies; raise on a cycle.

    Kahn's algorithm with the ready steps in a heap keyed by list position: the step placed next
    is always the first listed of those whose dependencies are all placed, in O(n log n + e) for
    n steps and e dependencies (rescanning the steps left for each placement was O(n²)).
    `referenced` names the arg behind each dependency a reference implies, for the message."""
    position = {step.id: n for n, step in enumerate(steps)}
    if all(position[d] < position[s.id] for s in steps for d in s.depends_on):
        return steps  # the usual case, kept linear for long plans
    unmet = [0] * len(steps)
    dependents: list[list[int]] = [[] for _ in steps]
    for n, step in enumerate(steps):
        deps = set(step.depends_on)
        unmet[n] = len(deps)
        for dep in deps:
            dependents[position[dep]].append(n)
    ready = [n for n, count in enumerate(unmet) if count == 0]  # ascending: already a heap
    ordered: list[PlanStep] = []
    while ready:
        n = heapq.heappop(ready)
        ordered.append(steps[n])
        for later in dependents[n]:
            unmet[later] -= 1
            if unmet[later] == 0:
                heapq.heappush(ready, later)
    if len(ordered) < len(steps):
        placed = {step.id for step in ordered}
        cycle = _cycle_among([s for s in steps if s.id not in placed], placed)
        links = list(zip(cycle, [*cycle[1:], cycle[0]], strict=True))
        because = [
            f"args.{referenced[(a.id, b.id)]} of {a.id!r} references {b.id!r}"
            for a, b in links
            if (a.id, b.id) in referenced
        ]
        raise PlanValidationError(
            f"step {cycle[0].id!r}: dependency cycle "
            + " -> ".join(repr(s.id) for s in [*cycle, cycle[0]])
            + (f" ({'; '.join(because)})" if because else ""),
            step_id=cycle[0].id,
            hint="remove one depends_on link or reference to break the cycle",
        )
    return ordered


def _cycle_among(remaining: list[PlanStep], placed: set[str]) -> list[PlanStep]:
    """A cycle among steps none of which can be placed: follow unmet dependencies until a step
    repeats (every unplaced step has one, so this ends on a cycle, not on a step waiting on it)."""
    by_id = {step.id: step for step in remaining}
    path: list[PlanStep] = []
    seen: dict[str, int] = {}
    step = remaining[0]
    while step.id not in seen:
        seen[step.id] = len(path)
        path.append(step)
        step = by_id[next(d for d in step.depends_on if d not in placed)]
    return path[seen[step.id] :]


def chain_followers(steps: list[PlanStep]) -> list[int] | None:
    """For each step, the index of the step that goes on from it in a chain, else -1: the one
    step that depends on it, when that step depends on nothing else. `None` when no step has
    one. Worked out once, when a run starts, so that a wave finds a chain in one look
    (`budget_check` runs a chain of reads as one task, see `StepTask.lane`)."""
    position = {step.id: n for n, step in enumerate(steps)}
    dependents: list[list[int]] = [[] for _ in steps]
    for n, step in enumerate(steps):
        for dep in step.depends_on:
            dependents[position[dep]].append(n)
    followers = [
        later[0] if len(later) == 1 and len(steps[later[0]].depends_on) == 1 else -1
        for later in dependents
    ]
    return followers if any(n >= 0 for n in followers) else None
