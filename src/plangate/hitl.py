"""LangChain's human-in-the-loop format, spoken beside plangate's own.

LangChain v1's `HumanInTheLoopMiddleware` interrupts with
`{"action_requests": [{"name", "args", "description"}], "review_configs": [{"action_name",
"allowed_decisions"}]}` and reads back `{"decisions": [{"type": ...}]}`; approval UIs built for
it (Agent Chat UI, Agent Inbox) look for those keys. Every plangate request carries them too
(`hitl_keys`, one action: the call asked about, or for a plan review the whole plan), and a
resume in that form is turned into a plangate decision (`from_hitl`) before it is checked like
any other: schema, redaction markers, the call's own tool. The HITL form has no approver: it
comes from the run's config (`approver_of`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from plangate._files import refused_decision
from plangate._names import same_person_key
from plangate.errors import InvalidDecision

__all__ = ("APPROVER_KEY", "approver_of", "from_hitl", "hitl_keys", "is_hitl")

APPROVER_KEY = "approver"
"""Where a HITL resume's approver is read from: `config["configurable"]["approver"]`, else
`config["metadata"]["approver"]` (what a LangGraph SDK client sends with its run)."""

PLAN_ACTION = "plan"
"""The action name a plan review is shown under: its args are the whole plan."""


def hitl_keys(request: Mapping[str, Any]) -> dict[str, Any]:
    """The `action_requests` and `review_configs` of a plangate request (a step's approval
    request or a plan review), valid against LangChain's `HITLRequest`."""
    name = request["tool"] or PLAN_ACTION
    description = request["consequence"]
    if request.get("description"):
        description = f"{request['description']}\n\n{description}"
    return {
        "action_requests": [{"name": name, "args": request["args"], "description": description}],
        "review_configs": [
            {"action_name": name, "allowed_decisions": list(request["allowed_decisions"])}
        ],
    }


class _Approve(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["approve"]


class _EditedAction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    args: dict[str, Any]


class _Edit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["edit"]
    edited_action: _EditedAction


class _Reject(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["reject"]
    message: str | None = None


class _Respond(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["respond"]
    message: str


_HitlDecision = Annotated[_Approve | _Edit | _Reject | _Respond, Field(discriminator="type")]


class _HitlResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decisions: list[_HitlDecision] = Field(min_length=1, max_length=1)


_RESPONSE = TypeAdapter(_HitlResponse)
_HINT = (
    "send {'decisions': [{'type': 'approve'}]}, or an edit with 'edited_action' "
    "({'name': the same tool, 'args': {...}}), or a reject with a 'message'"
)


def is_hitl(value: Any) -> bool:
    """Whether a resume value is in LangChain's HITL form (it has `decisions`)."""
    return isinstance(value, Mapping) and "decisions" in value


def from_hitl(
    value: Mapping[str, Any], request: Mapping[str, Any], approver: str | None
) -> dict[str, Any]:
    """The plangate decision a HITL resume stands for, on `request`: `approve`; `edit` with
    the edited action's args (it must name the request's own tool); `reject` with its message
    as the reason; `respond` with its message. One decision per request: plangate asks about one
    call per interrupt.

    Raises:
        InvalidDecision: The value is not a HITL response for this request; the message names
            the field (`decisions.0.edited_action.name`).
    """
    try:
        response = _RESPONSE.validate_python(dict(value))
    except ValidationError as exc:
        raise refused_decision(exc, default="decisions", hint=_HINT) from None
    (decision,) = response.decisions
    answer: dict[str, Any] = {"decision": decision.type}
    if approver:
        answer["approver"] = approver
    if isinstance(decision, _Edit):
        name = request["tool"] or PLAN_ACTION
        if decision.edited_action.name != name:
            raise InvalidDecision(
                f"invalid decision: decisions.0.edited_action.name: the request is about "
                f"{name!r}; an edit cannot call {decision.edited_action.name!r} instead",
                field="decisions.0.edited_action.name",
                hint="edit the args of the same action; reject it to call nothing",
            )
        answer["args"] = decision.edited_action.args
    elif isinstance(decision, _Reject) and decision.message:
        answer["reason"] = decision.message
    elif isinstance(decision, _Respond):
        answer["message"] = decision.message
    return answer


def approver_of(config: Mapping[str, Any] | None) -> str | None:
    """Who decides, as a run's config names them (see `APPROVER_KEY`); a blank name is none."""
    for part in ("configurable", "metadata"):
        named = ((config or {}).get(part) or {}).get(APPROVER_KEY)
        if isinstance(named, str) and same_person_key(named) is not None:
            return named
    return None
