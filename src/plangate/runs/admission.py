"""Runs: what a `PlangateGraph` admits, checked before LangGraph stores it.

LangGraph stores a resume value before the interrupted node runs again, so a bad value must
never get that far: a plan is validated here (raising `PlanValidationError`), and a resume value
is validated as a `Decision` on the pending request it answers (raising `InvalidDecision`); a
decision naming a request no longer pending is `StaleDecision`, and one for a step whose tool
this graph lacks is `ToolNotAvailable`. The run stays paused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.types import Command

from plangate._files import parse_document
from plangate._governance import Governance
from plangate.approval import Decision, parse_decision
from plangate.errors import (
    InvalidDecision,
    NoPendingApproval,
    PlanValidationError,
    StaleDecision,
    ToolNotAvailable,
)
from plangate.hitl import approver_of, is_langchain
from plangate.nodes.approval_interrupt import RECEIVED_AT
from plangate.plan import parse_plan
from plangate.runs.stored import WaitingInterrupt, is_approval_request

__all__ = ("admit", "plan_from_messages", "several_pending", "thread_id_of")

_CHAT_HINT = "send the plan as the message's text, JSON or YAML: {'goal': ..., 'steps': [...]}"


def plan_from_messages(input: Any) -> Any:
    """A chat client's input, `{"messages": [...]}` with no `plan` (Agent Chat UI sends only
    that), as a plan's input: the last human message's text, read as JSON or YAML, is the plan;
    the messages stay in the input, so the thread keeps the message the run started from. Any
    other input is returned as it is.

    Raises:
        PlanValidationError: No human message, or its text is not JSON or YAML.
    """
    if not isinstance(input, Mapping) or "plan" in input or "messages" not in input:
        return input
    texts = [_text(m) for m in input["messages"] or [] if _role(m) in ("human", "user")]
    if not texts:
        raise PlanValidationError("messages: no human message to read a plan from", hint=_CHAT_HINT)
    try:
        plan = parse_document(texts[-1], what="messages: the last human message")
    except ValueError as exc:  # read as a plan file is (`plangate run`, the inbox's Start)
        raise PlanValidationError(str(exc), hint=_CHAT_HINT) from None
    return {**input, "plan": plan}


def _role(message: Any) -> Any:
    if isinstance(message, Mapping):
        return message.get("type") or message.get("role")
    return getattr(message, "type", None)


def _text(message: Any) -> str:
    """A message's text: its content, or its text blocks joined."""
    content = message.get("content") if isinstance(message, Mapping) else message.content
    if isinstance(content, str):
        return content
    blocks = content if isinstance(content, list) else []
    return "\n".join(
        str(block.get("text", "")) if isinstance(block, Mapping) else str(block)
        for block in blocks
        if isinstance(block, str) or (isinstance(block, Mapping) and block.get("type") == "text")
    )


def admit(
    input: Any,
    config: RunnableConfig | None,
    waiting: list[WaitingInterrupt] | None,
    governance: Governance,
) -> Any:
    """`input` as the graph may take it: a plan validated (`PlanValidationError`), a resume
    value validated as a decision on the request it answers (see the module's doc)."""
    if isinstance(input, Mapping) and "plan" in input:
        return {**input, "plan": parse_plan(input["plan"]).to_input()}
    if _carries_nothing(input):
        raise InvalidDecision(
            "a resume needs a decision: Command(resume=None) carries none",
            field="resume",
            hint="resume with Command(resume={'decision': 'approve'}) or a plangate.Decision",
        )
    if waiting is None or not isinstance(input, Command):
        return input
    pending = {i.id: i for i in waiting if is_approval_request(i.value)}
    if not pending:
        raise NoPendingApproval(thread_id_of(config or {}))
    resume = input.resume
    value: Any
    if isinstance(resume, Mapping) and resume and set(resume) <= set(pending):
        value = {
            key: _decision(pending[key].value, item, config or {}, governance)
            for key, item in resume.items()
        }
    elif _keyed_by_interrupt(resume):  # by interrupts that wait no more: decided meanwhile
        raise StaleDecision(thread_id_of(config or {}))
    else:
        key = _addressed(pending, resume, config or {})
        value = _decision(pending[key].value, resume, config or {}, governance)
        if len(pending) > 1:  # LangGraph takes a decision on one of several by its id
            value = {key: value}
    return Command(resume=value, update=input.update, goto=input.goto, graph=input.graph)


def _keyed_by_interrupt(resume: Any) -> bool:
    """Whether `resume` is a mapping of interrupt id to decision: a decision itself (plangate's,
    or LangChain's forms) holds text or lists among its values, never only mappings."""
    return (
        isinstance(resume, Mapping)
        and bool(resume)
        and all(isinstance(value, Mapping) for value in resume.values())
    )


def _addressed(pending: Mapping[str, WaitingInterrupt], resume: Any, config: RunnableConfig) -> str:
    """The interrupt a single decision answers: the one its `request_id` names, else the
    only one pending. LangChain's forms have no `request_id`: one there is refused as the
    extra field it is, not taken as an address."""
    plangate_form = isinstance(resume, Mapping) and not is_langchain(resume)
    request_id = resume.get("request_id") if plangate_form else None
    request_id = getattr(resume, "request_id", request_id)
    if request_id is not None:
        for key, waiting in pending.items():
            if waiting.value.get("request_id") == request_id:
                return key
        raise StaleDecision(thread_id_of(config), request_id=str(request_id))
    if len(pending) > 1:
        raise several_pending(
            [waiting.value for waiting in pending.values()],
            field="resume",
            hint="resume with a mapping of interrupt id to decision; ids: " + ", ".join(pending),
        )
    return next(iter(pending))


def several_pending(requests: list[Mapping[str, Any]], *, field: str, hint: str) -> InvalidDecision:
    """The refusal of a decision that names none of the several requests waiting, the same on
    every face (the graph, the run service): it names their steps, in plan order."""
    ordered = sorted(requests, key=lambda request: request.get("step_index", 0))
    steps = ", ".join(repr(request.get("step_id") or "the plan") for request in ordered)
    return InvalidDecision(
        f"invalid decision: {len(ordered)} approvals are pending ({steps}); name the one decided",
        field=field,
        hint=hint,
    )


def _decision(
    request: Mapping[str, Any], value: Any, config: RunnableConfig, governance: Governance
) -> dict[str, Any]:
    tool_name = request["tool"]  # `None` for a plan review, which is about no one tool
    if tool_name is not None and governance.tool(tool_name) is None:
        raise ToolNotAvailable(thread_id_of(config), tool=tool_name)
    tool = governance.described(tool_name) if tool_name is not None else None
    if isinstance(value, Decision):
        # Validated when it was made, but perhaps changed since (its args are a mutable
        # dict) or made by `model_construct`: check it again, as the graph will hold it.
        value = value.model_dump(exclude_none=True)
    decision = parse_decision(
        value,
        tool=tool,
        request=request,
        approver=approver_of(config),
        gate=governance.gate(config),
    )
    if decision.request_id not in (None, request.get("request_id")):
        raise StaleDecision(thread_id_of(config), request_id=decision.request_id)
    return {**decision.model_dump(exclude_none=True), RECEIVED_AT: governance.now()}


def _carries_nothing(input: Any) -> bool:
    """Whether `input` is a `Command` with no resume value, no update and nowhere to go: LangGraph
    reads `Command(resume=None)` as no resume at all, and with nothing else in it fails deep
    inside the run loop instead of saying so; refused here, the run stays as it was."""
    return (
        isinstance(input, Command)
        and input.resume is None
        and input.update is None
        and not input.goto
    )


def thread_id_of(config: RunnableConfig) -> str:
    return str((config.get("configurable") or {}).get("thread_id"))
