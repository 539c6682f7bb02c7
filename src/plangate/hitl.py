"""LangChain's human-in-the-loop forms, spoken beside plangate's own.

LangChain v1's `HumanInTheLoopMiddleware` has two. Batched (its default) interrupts with
`{"action_requests": [{"name", "args", "description"}], "review_configs": [{"action_name",
"allowed_decisions"}]}` and reads back `{"decisions": [{"type": ...}]}`; approval UIs built for
it (Agent Chat UI, Agent Inbox) look for those keys. Per-call (`interrupt_mode="per_call"`,
LangChain 1.5) interrupts once per tool call with a `ToolApprovalRequest`, `{"type":
"tool_approval", "tool_call_id", "name", "args", "description"}`, and reads back one decision,
`{"type": ...}`, keyed by the interrupt's id.

plangate always asks about one call (or one plan review) per interrupt, so the mode only picks
the keys its request carries beside plangate's own (`in_form`); the run's config names it
(`interrupt_mode_of`), as LangChain's clients choose what they read. A resume in either form is
taken whatever the request was shown in, and turned into a plangate decision (`from_langchain`)
before it is checked like any other: schema, redaction markers, the call's own tool. Neither form
names an approver: it comes from the run's config (`approver_of`).

A per-call answer names no request id or digest. It is bound by where it is sent: keyed by its
interrupt's id, it answers that interrupt's request; sent bare, it answers the only request
waiting, and is refused when several wait (`PlangateGraph`; LangGraph itself refuses it inside
an agent). If it names a `tool_call_id`, that must be the request's (its step id).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal, cast, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from plangate._files import refused_decision
from plangate._names import same_person_key
from plangate.errors import InvalidDecision, PlangateUsageError

__all__ = (
    "APPROVER_KEY",
    "INTERRUPT_MODE_KEY",
    "InterruptMode",
    "approver_of",
    "from_langchain",
    "in_form",
    "interrupt_mode_of",
    "is_langchain",
)

APPROVER_KEY = "approver"
"""Where a LangChain-form resume's approver is read from: `config["configurable"]["approver"]`,
else `config["metadata"]["approver"]` (what a LangGraph SDK client sends with its run)."""

INTERRUPT_MODE_KEY = "interrupt_mode"
"""Where the form of a run's requests is read from, as the approver is (`configurable`, else
`metadata`): LangChain's name for the same choice."""

InterruptMode = Literal["batched", "per_call"]
"""`batched`: a request carries `action_requests` and `review_configs` (LangChain's `HITLRequest`,
one action). `per_call`: a request about one tool call is a `ToolApprovalRequest` (its `type` is
`tool_approval`); a plan review, about no one call, stays batched."""

PLAN_ACTION = "plan"
"""The action name a plan review is shown under: its args are the whole plan."""


def _description(request: Mapping[str, Any]) -> str:
    """What a person reads about the call: the step's description, then its consequence."""
    if request.get("description"):
        return f"{request['description']}\n\n{request['consequence']}"
    return str(request["consequence"])


def in_form(request: Mapping[str, Any], mode: InterruptMode) -> dict[str, Any]:
    """A plangate request (a step's approval request or a plan review) with LangChain's keys
    for `mode` beside its own: valid against LangChain's `HITLRequest`, or, per call and about
    one tool call, its `ToolApprovalRequest` (whose `type` replaces plangate's)."""
    if mode == "per_call" and request["tool"] is not None:
        return {
            **request,
            "type": "tool_approval",
            "tool_call_id": request["step_id"],
            "name": request["tool"],
            "args": request["args"],
            "description": _description(request),
        }
    name = request["tool"] or PLAN_ACTION
    return {
        **request,
        "action_requests": [
            {"name": name, "args": request["args"], "description": _description(request)}
        ],
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
_DECISION: TypeAdapter[_HitlDecision] = TypeAdapter(_HitlDecision)
_EDIT_HINT = "an edit has 'edited_action' ({'name': the same tool, 'args': {...}})"
_HINT = f"send {{'decisions': [{{'type': 'approve'}}]}}, or a reject with a 'message'; {_EDIT_HINT}"
_PER_CALL_HINT = f"send {{'type': 'approve'}}, or a reject with a 'message'; {_EDIT_HINT}"


def is_langchain(value: Any) -> bool:
    """Whether a resume value is in one of LangChain's forms: batched (it has `decisions`) or
    per call (it has `type`)."""
    return isinstance(value, Mapping) and ("decisions" in value or "type" in value)


def from_langchain(
    value: Mapping[str, Any], request: Mapping[str, Any], approver: str | None
) -> dict[str, Any]:
    """The plangate decision a resume in LangChain's form stands for, on `request`: `approve`;
    `edit` with the edited action's args (it must name the request's own tool); `reject` with
    its message as the reason; `respond` with its message. One decision per request: plangate
    asks about one call per interrupt. A per-call answer naming a `tool_call_id` must name the
    request's step.

    Raises:
        InvalidDecision: The value is not an answer to this request in LangChain's form; the
            message names the field (`decisions.0.edited_action.name`, `edited_action.name`).
    """
    if "decisions" in value:
        try:
            (decision,) = _RESPONSE.validate_python(dict(value)).decisions
        except ValidationError as exc:
            raise refused_decision(exc, default="decisions", hint=_HINT) from None
        return _as_plangate(decision, request, approver, at="decisions.0.")
    answer = dict(value)
    named = answer.pop("tool_call_id", None)
    try:
        decision = _DECISION.validate_python(answer)
    except ValidationError as exc:
        raise refused_decision(exc, default="type", hint=_PER_CALL_HINT) from None
    if named is not None and named != request.get("step_id"):
        raise InvalidDecision(
            f"invalid decision: tool_call_id: the answer is about tool call {named!r}, and the "
            f"request it was sent to is about {request.get('step_id')!r}",
            field="tool_call_id",
            hint="answer each request by its interrupt id: Command(resume={interrupt.id: ...})",
        )
    return _as_plangate(decision, request, approver, at="")


def _as_plangate(
    decision: _HitlDecision, request: Mapping[str, Any], approver: str | None, *, at: str
) -> dict[str, Any]:
    """`decision` as a plangate decision's fields; `at` is where it sat in the resume value."""
    answer: dict[str, Any] = {"decision": decision.type}
    if approver:
        answer["approver"] = approver
    if isinstance(decision, _Edit):
        name = request["tool"] or PLAN_ACTION
        if decision.edited_action.name != name:
            raise InvalidDecision(
                f"invalid decision: {at}edited_action.name: the request is about {name!r}; an "
                f"edit cannot call {decision.edited_action.name!r} instead",
                field=f"{at}edited_action.name",
                hint="edit the args of the same action; reject it to call nothing",
            )
        answer["args"] = decision.edited_action.args
    elif isinstance(decision, _Reject) and decision.message:
        answer["reason"] = decision.message
    elif isinstance(decision, _Respond):
        answer["message"] = decision.message
    return answer


def _settings(config: Mapping[str, Any] | None, key: str) -> Iterator[Any]:
    """`key`'s values in a run's config: in `configurable`, then in `metadata`."""
    for part in ("configurable", "metadata"):
        value = ((config or {}).get(part) or {}).get(key)
        if value is not None:
            yield value


def approver_of(config: Mapping[str, Any] | None) -> str | None:
    """Who decides, as a run's config names them (see `APPROVER_KEY`); a blank name is none."""
    return next(
        (
            named
            for named in _settings(config, APPROVER_KEY)
            if isinstance(named, str) and same_person_key(named) is not None
        ),
        None,
    )


def interrupt_mode_of(config: Mapping[str, Any] | None) -> InterruptMode:
    """The form a run's requests take (see `INTERRUPT_MODE_KEY`); `batched` when unnamed.

    Raises:
        PlangateUsageError: The config names another mode.
    """
    mode = next(_settings(config, INTERRUPT_MODE_KEY), "batched")
    if mode not in get_args(InterruptMode):
        raise PlangateUsageError(
            f"{INTERRUPT_MODE_KEY}: must be 'batched' or 'per_call', got {mode!r}",
            hint=f"set config['configurable'][{INTERRUPT_MODE_KEY!r}] to 'per_call' for "
            "LangChain's ToolApprovalRequest, or leave it out",
        )
    return cast("InterruptMode", mode)
