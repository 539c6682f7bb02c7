"""Approval requests and the human decisions that answer them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from langchain_core.tools import BaseTool
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from plangate._files import dotted, first_error
from plangate.errors import InvalidDecision
from plangate.plan import PlanStep
from plangate.profiles import Profile, Risk

__all__ = ("Decision", "consequence_of", "parse_decision", "response_schema")

DECISIONS = ("approve", "edit", "reject", "respond")


class Decision(BaseModel):
    """A human's answer to an approval request; resume with `Command(resume=Decision(...))`.

    Attributes:
        decision: `approve`, `edit` (run with new `args`), `reject` (with a `reason`), or
            `respond` (answer with `message` in the tool's place; the tool does not run).
        args: The replacement arguments; required for `edit`, not allowed otherwise.
        message: The answer given instead of the tool's output; required for `respond`.
        reason: Why; recorded in the approval record and the trace.
        approver: Who decided; recorded in the approval record.

    Example:
        >>> Decision(decision="edit", args={"to": "ana@example.com"}, approver="lee").decision
        'edit'
    """

    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "edit", "reject", "respond"]
    # validate_default: the checks below must also run when the field is left out, so that a
    # missing `args` or `message` is reported at its own location.
    args: dict[str, Any] | None = Field(default=None, validate_default=True)
    message: str | None = Field(default=None, validate_default=True)
    reason: str | None = None
    approver: str | None = None

    @field_validator("args")
    @classmethod
    def _args_only_for_edit(
        cls, args: dict[str, Any] | None, info: ValidationInfo
    ) -> dict[str, Any] | None:
        decision = info.data.get("decision")
        if decision == "edit" and args is None:
            raise ValueError("an 'edit' decision needs 'args', the step's new arguments")
        if decision not in (None, "edit") and args is not None:
            raise ValueError(f"'args' is only for 'edit' decisions, not {decision!r}")
        return args

    @field_validator("message")
    @classmethod
    def _message_for_respond(cls, message: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("decision") == "respond" and not message:
            raise ValueError("a 'respond' decision needs 'message', the answer to give")
        return message


def parse_decision(value: Any, *, tool: BaseTool | None = None) -> Decision:
    """Validate a resume value (dict or `Decision`), including edited args against the tool.

    Raises:
        InvalidDecision: The value is not a valid decision; the message names the field.
    """
    if isinstance(value, Decision):
        decision = value
    elif isinstance(value, Mapping):
        try:
            decision = Decision.model_validate(dict(value))
        except ValidationError as exc:
            loc, msg = first_error(exc)
            field = dotted(loc) or "decision"
            raise InvalidDecision(
                f"invalid decision: {field}: {msg}",
                field=field,
                hint="send {'decision': 'approve'|'edit'|'reject'|'respond', ...}",
            ) from None
    else:
        raise InvalidDecision(
            "invalid decision: expected a mapping or plangate.Decision, "
            f"got {type(value).__name__}",
            field="decision",
            hint="send {'decision': 'approve'|'edit'|'reject'|'respond', ...}",
        )
    if decision.decision == "edit" and tool is not None:
        _check_args(tool, decision.args or {})
    return decision


def _check_args(tool: BaseTool, args: dict[str, Any]) -> None:
    schema = tool.get_input_schema()
    try:
        schema.model_validate(args)  # type: ignore[union-attr]
    except ValidationError as exc:
        loc, msg = first_error(exc)
        field = f"args.{dotted(loc)}" if loc else "args"
        raise InvalidDecision(
            f"invalid edit for tool {tool.name!r}: {field}: {msg}",
            field=field,
            hint="the args must match the tool's argument schema in response_schema",
        ) from None


def response_schema(tool: BaseTool | None) -> dict[str, Any]:
    """JSON schema of a decision, with the tool's argument schema under `args` for edits."""
    schema = Decision.model_json_schema()
    schema["description"] = (
        "A decision on the approval request: approve, edit (with args), reject (with a reason), "
        "or respond (with a message given in the tool's place)."
    )
    if tool is not None:
        args_schema = tool.get_input_schema().model_json_schema()  # type: ignore[union-attr]
        args_schema.pop("title", None)
        schema["properties"]["args"] = {
            "anyOf": [args_schema, {"type": "null"}],
            "description": "New arguments for the step (edit only).",
        }
    return schema


def consequence_of(step: PlanStep, profile: Profile, risk: Risk) -> str:
    """One sentence a human reads before approving: what happens, to whom, and whether it can
    be undone."""
    if step.description:
        what, to_whom = step.description.rstrip("."), ""
    else:
        target = _target(step.args)
        what, to_whom = f"call {step.tool}", f" with {target}" if target else ""
    if step.action == "read":
        effect = "It only reads data; nothing is changed."
    elif step.action == "propose":
        effect = "It prepares a draft for review; nothing is sent or changed yet."
    elif profile.is_irreversible(step.tool):
        effect = "It changes the world and cannot be undone."
    else:
        effect = "It changes the world; undoing it needs a follow-up action."
    return (
        f"If approved, plangate will {what[0].lower() + what[1:]}{to_whom} ({risk} risk). {effect}"
    )


def _target(args: Mapping[str, Any]) -> str | None:
    for key in ("to", "recipient", "email", "account_id", "account", "customer", "opportunity_id"):
        if args.get(key):
            return f"{key} {args[key]}"
    return None
