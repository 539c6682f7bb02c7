"""Plans: an ordered list of tool calls, validated before anything runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from plangate._files import dotted, first_error, read_document
from plangate.errors import PlanValidationError

__all__ = ("Action", "Plan", "PlanStep", "parse_plan")

Action = Literal["read", "propose", "execute"]
"""What a step does to the world: `read` nothing, `propose` a draft a human will see,
`execute` a change (send, book, pay)."""


class PlanStep(BaseModel):
    """One tool call in a plan.

    Attributes:
        id: Unique within the plan; left empty, the plan names it `step-<n>` (its 1-based
            position).
        tool: The registered name of the tool to call, e.g. `crm.lookup_account`.
        args: Keyword arguments for the tool.
        action: `read`, `propose` or `execute`, as the plan sees it. It can only raise the
            tool's trusted action (from the profile or the tool itself, see `plangate.actions`),
            never lower it; left out, the trusted action applies.
        domain: Budget domain; defaults to `metadata["domain"]`, else the part of `tool` before
            the first `.` (`crm.lookup` -> `crm`).
        depends_on: Ids of steps that must end `ok` before this one runs; otherwise it is skipped.
        description: What the step is for, in words a human approver reads.
        metadata: Free-form data carried along.
    """

    model_config = ConfigDict(extra="forbid")

    id: str = ""
    tool: str = Field(min_length=1)
    args: dict[str, Any] = Field(default_factory=dict)
    action: Action | None = None
    domain: str | None = None
    depends_on: list[str] = Field(default_factory=list)
    description: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id", mode="before")
    @classmethod
    def _null_id_is_unnamed(cls, value: Any) -> Any:
        return "" if value is None else value

    @model_validator(mode="after")
    def _default_domain(self) -> PlanStep:
        if self.domain is None:
            meta_domain = self.metadata.get("domain")
            self.domain = str(meta_domain) if meta_domain else self.tool.split(".", 1)[0]
        return self


class Plan(BaseModel):
    """An ordered list of steps with a goal.

    Steps run in list order, except that a step listed before a step it depends on is moved
    after it (a stable topological order). Duplicate ids, unknown `depends_on` ids and cycles are
    rejected with a `PlanValidationError` naming the step.

    Example:
        >>> plan = Plan.model_validate({"goal": "say hi", "steps": [{"tool": "echo.say"}]})
        >>> plan.steps[0].id, plan.steps[0].domain
        ('step-1', 'echo')
    """

    model_config = ConfigDict(extra="forbid")

    goal: str = ""
    steps: list[PlanStep] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_graph(self) -> Plan:
        self.steps = [
            step if step.id else step.model_copy(update={"id": f"step-{n}"})
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
        self.steps = _stable_topological_order(self.steps)
        return self

    def to_state(self) -> dict[str, Any]:
        """The plan as graph state holds it: plain JSON without default values (every resume
        loads it, so smaller is faster); `Plan.model_validate` restores the defaults."""
        return self.model_dump(mode="json", exclude_defaults=True)

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


def parse_plan(data: Any, *, source: str = "plan") -> Plan:
    """Validate a plan given as a `Plan`, a dict or a list of steps, naming the culprit on error."""
    if isinstance(data, Plan):
        return data
    if isinstance(data, list):
        data = {"steps": data}
    if not isinstance(data, dict):
        got = "nothing (it is empty)" if data is None else type(data).__name__
        raise PlanValidationError(
            f"{source}: expected a mapping with 'goal' and 'steps', got {got}"
        )
    try:
        return Plan.model_validate(data)
    except PlanValidationError as exc:
        raise PlanValidationError(
            f"{source}: {exc.message}", step_id=exc.step_id, hint=exc.hint
        ) from None
    except ValidationError as exc:
        loc, msg = first_error(exc)
        step_id = None
        if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
            raw = data.get("steps", [])[loc[1]]
            step_id = raw.get("id") if isinstance(raw, dict) else None
            step_id = step_id or f"step-{loc[1] + 1}"
            where = f"step {step_id!r}" + (f", field {dotted(loc[2:])!r}" if loc[2:] else "")
        else:
            where = f"field {dotted(loc)!r}"
        raise PlanValidationError(f"{source}: {where}: {msg}", step_id=step_id) from None


def _stable_topological_order(steps: list[PlanStep]) -> list[PlanStep]:
    """Keep list order, moving a step after its dependencies; raise on a cycle."""
    position = {step.id: n for n, step in enumerate(steps)}
    if all(position[d] < position[s.id] for s in steps for d in s.depends_on):
        return steps  # the usual case, kept linear for long plans
    remaining = list(steps)
    placed: set[str] = set()
    ordered: list[PlanStep] = []
    while remaining:
        ready = next((s for s in remaining if all(d in placed for d in s.depends_on)), None)
        if ready is None:
            cycle = _cycle_among(remaining, placed)
            raise PlanValidationError(
                f"step {cycle[0].id!r}: dependency cycle "
                + " -> ".join(repr(s.id) for s in [*cycle, cycle[0]]),
                step_id=cycle[0].id,
                hint="remove one depends_on link to break the cycle",
            )
        ordered.append(ready)
        placed.add(ready.id)
        remaining.remove(ready)
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
