"""Integrations: `GovernanceMiddleware`, a plangate profile applied to a LangChain agent's own
tool calls.

`langchain.agents.create_agent` runs a loop: the model asks for tool calls, the tools run, the
model reads their results. This middleware governs that loop the way plangate governs a plan,
with no plan at all: each tool call the model asks for is one step.

Where each rule is applied, and why there:

- `after_model` (one task, right after the model's turn, never paused) goes through the turn's
  tool calls in the order the model listed them: a tool outside the allowlist is blocked, a call
  past a budget tier is blocked (`budget_exceeded`), the rest are charged (`budget_warning`
  once per tier crossing its threshold) and, when the profile gates their action, get their
  approval request, built here so that its id and timestamps are in state before anyone waits
  (`approval_requested`). A blocked call gets an error `ToolMessage` and is never sent to its
  tool. The state update also reserves the sequence numbers of every admitted call's events.
- `wrap_model_call` only notes what the agent's tools declare of themselves
  (`metadata["plangate"]`, MCP annotations), so that `after_model` governs each call by its
  tool's trusted action.
- `wrap_tool_call` (one task per call; LangGraph runs a turn's calls concurrently) pauses a
  gated call with `interrupt()`: all of a turn's gated calls wait at once, each answered by its
  interrupt id. It does nothing before `interrupt()` (the task runs again from its first line on
  resume), then applies the decision and runs the tool between `tool_call_start` and
  `tool_call_complete` / `tool_call_error`.

Everything that must survive a pause (budget usage, warned tiers, the trace id and the next
sequence number, the turn's admitted calls) is one channel of agent state, `plangate`, so it is
per thread and kept by the agent's checkpointer.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Annotated, Any, cast, get_args

from langchain.agents.middleware.types import (
    AgentMiddleware,
    AgentState,
    ModelCallResult,
    ModelRequest,
    ModelResponse,
    PrivateStateAttr,
    ResponseT,
    ToolCallRequest,
)
from langchain_core.messages import AIMessage, AnyMessage, ToolCall, ToolMessage
from langchain_core.tools import BaseTool
from langgraph.errors import GraphBubbleUp
from langgraph.runtime import Runtime
from langgraph.types import Command
from pydantic import ValidationError
from typing_extensions import NotRequired, TypedDict

from plangate._files import dotted, first_error
from plangate._governance import Governance, TraceWriter
from plangate._time import parse_iso, utc_now
from plangate.actions import (
    StepPolicy,
    ToolDeclaration,
    step_policy,
    tool_declaration,
    trusted_declaration,
)
from plangate.approval import Decision, response_schema
from plangate.budget import charge, crossed_warnings, empty_usage, exceeded_tier
from plangate.errors import PlangateUsageError
from plangate.nodes.approval_interrupt import collect_decisions
from plangate.nodes.budget_check import ask_for_approval
from plangate.plan import Action, PlanStep
from plangate.profiles import Profile, load_profile
from plangate.references import Resolved
from plangate.state import ApprovalRequest, BudgetUsage, RunCounters

__all__ = (
    "CallTicket",
    "GovernanceCounters",
    "GovernanceMiddleware",
    "GovernanceState",
)

_ACTIONS: tuple[str, ...] = get_args(Action)
_RAN = 2
"""Events of a call that runs: `tool_call_start`, then `tool_call_complete` or `_error`."""
_GATED = 3
"""Events of a gated call that runs: `approval_received` before the two of `_RAN`."""
_EDIT_NOTICE = (
    "Note: a person edited the arguments of this tool call before it ran; it ran with {args}."
)


class CallTicket(TypedDict):
    """A tool call `after_model` admitted: what it is governed as, and its reserved events.

    Attributes:
        tool: The tool's name, as admitted (a call renamed afterwards is blocked).
        domain: Its budget domain.
        action: `read`, `propose` or `execute`.
        seq: The first sequence number reserved for the call's events.
        size: How many numbers are reserved (`2`, or `3` when it waits for approval).
        request: The approval request, when the call waits for a decision.
    """

    tool: str
    domain: str
    action: Action
    seq: int
    size: int
    request: NotRequired[ApprovalRequest]


class GovernanceCounters(TypedDict):
    """The middleware's part of the agent state: fixed size but for the latest turn's calls.

    Attributes:
        trace_id: The thread's trace id, made at its first tool call.
        seq: The number of the next event `after_model` emits.
        usage: Calls charged so far, per tier.
        warned: Tiers a `budget_warning` was emitted for.
        calls: The latest turn's admitted calls, by tool call id.
    """

    trace_id: str
    seq: int
    usage: BudgetUsage
    warned: list[str]
    calls: dict[str, CallTicket]


class _Settlement(TypedDict):
    """What a gated call that did not run writes: its charge is given back, and its unused
    event numbers are too when no later call's numbers follow them."""

    settle: str
    next_seq: int


def _give_back(usage: BudgetUsage, ticket: CallTicket) -> BudgetUsage:
    """`usage` without the charge of `ticket`'s call (counts that reach zero are dropped)."""

    def less(counts: dict[str, int], key: str) -> dict[str, int]:
        left = {**counts, key: counts.get(key, 0) - 1}
        return {k: n for k, n in left.items() if n > 0}

    return {
        "total": usage["total"] - 1,
        "domains": less(usage["domains"], ticket["domain"]),
        "tools": less(usage["tools"], ticket["tool"]),
    }


def _settle(
    current: GovernanceCounters, update: GovernanceCounters | _Settlement
) -> GovernanceCounters:
    """Reducer of the `plangate` channel: `after_model` writes whole values; the concurrent
    tool-call tasks of a turn write `_Settlement`s, folded in one after another."""
    if "settle" not in update:
        return update
    settlement = cast("_Settlement", update)
    ticket = current.get("calls", {}).get(settlement["settle"])
    if ticket is None:
        return current
    seq = current["seq"]
    if ticket["seq"] + ticket["size"] == seq:
        seq = settlement["next_seq"]
    return {**current, "usage": _give_back(current["usage"], ticket), "seq": seq}


class GovernanceState(AgentState[ResponseT]):
    """Agent state with the middleware's counters (private: not in the agent's input or
    output; read them with `agent.get_state(config).values["plangate"]`)."""

    plangate: NotRequired[Annotated[GovernanceCounters, PrivateStateAttr, _settle]]


@dataclass(frozen=True, slots=True)
class _Admitted:
    """A call cleared to run: what `wrap_tool_call` needs around the tool itself."""

    request: ToolCallRequest
    writer: TraceWriter
    step: PlanStep
    edited: bool
    started: float


def _run_counters(counters: GovernanceCounters, seq: int) -> RunCounters:
    """The counters a `TraceWriter` numbers events from."""
    return {
        "run_id": counters["trace_id"],
        "trace_id": counters["trace_id"],
        "seq": seq,
        "cursor": 0,
        "usage": counters["usage"],
        "warned": counters["warned"],
        "halted": None,
    }


def _pending_calls(messages: Sequence[AnyMessage]) -> list[tuple[int, ToolCall]]:
    """The latest AI message's tool calls that no `ToolMessage` answers yet, with their index."""
    answered: set[str] = set()
    for message in reversed(messages):
        if isinstance(message, AIMessage):
            return [
                (index, call)
                for index, call in enumerate(message.tool_calls)
                if call["id"] not in answered
            ]
        if isinstance(message, ToolMessage):
            answered.add(message.tool_call_id)
    return []


def _not_run(call: ToolCall, content: str, outcome: str, *, status: str = "error") -> ToolMessage:
    """The message the model reads in place of a call's result, when the call did not run.

    `artifact` (never sent to the model) says why, for the application: `outcome` is
    `blocked`, `rejected`, `expired` or `responded`.
    """
    return ToolMessage(
        content=content,
        name=call["name"],
        tool_call_id=call["id"],
        status=status,
        artifact={"plangate": {"outcome": outcome}},
    )


def _tool_message(result: ToolMessage | Command[Any]) -> ToolMessage | None:
    if isinstance(result, ToolMessage):
        return result
    update = result.update if isinstance(result.update, dict) else {}
    found = [m for m in update.get("messages", []) if isinstance(m, ToolMessage)]
    return found[0] if found else None


class GovernanceMiddleware(AgentMiddleware[GovernanceState[Any], Any, Any]):
    """Govern an agent's own tool calls with a plangate profile: allowlist, three-tier budget,
    approvals, and canonical trace events on `stream_mode="custom"`.

    Each tool call the model asks for is a step whose id is the tool call id:

    - **action**: from trusted sources only, first match wins: the first glob pattern of
      `actions` (the operator's config) that matches the tool's name, the profile's
      `tool_actions`, the tool's own declaration (`declare_action`, `metadata["plangate"]`,
      MCP annotations), else `default_action` (`execute`: a tool nobody classified is assumed
      to change the world); the profile gates approvals on it (`Profile.needs_approval`) and
      rates its risk (an irreversible tool, by the profile or its own word, is riskier).
    - **domain**: the first glob pattern of `domains` that matches, else the part of the name
      before the first `.` (`crm.lookup` -> `crm`), else the whole name: a tool named without
      a dot (`send_email`; most chat model APIs accept no dots in tool names) is a domain of
      its own unless `domains` groups it (`{"crm_*": "crm"}`).
    - **allowlist**: a tool the profile does not allow is blocked and never called.
    - **budget**: a call is charged when admitted, that is when it runs or waits for approval
      (so calls the model makes together cannot overrun a tier while they wait); a call that
      waited and did not run is given its charge back. A call past a tier is blocked
      (`budget_exceeded`, `step_blocked`); crossing a tier's threshold emits one
      `budget_warning` per tier per thread. Usage is per thread and survives pauses.
    - **approval**: a gated call pauses the agent with `interrupt()`, whose value is a plangate
      `ApprovalRequest` (`risk`, `consequence`, `requested_at`, `expires_at`,
      `response_schema` with the tool's argument schema; `step_id` is the tool call id and
      `step_index` the call's place in the model's turn). Resume with a plangate decision:
      `Command(resume={"decision": "approve"})`, or, when several calls wait at once,
      `Command(resume={interrupt.id: decision, ...})`. `approve` runs the call; `edit` runs it
      with new `args` (checked against the tool's schema) and tells the model so; `reject`
      and `respond` do not run it, the model reads the reason or the person's `message`; a
      decision arriving after `expires_at` does not run it either (`approval_timeout`). An
      invalid decision is asked again with an `error` in the request.
    - **errors**: under the profile's `on_error: continue` a tool that raises becomes an error
      `ToolMessage` the model reads (`tool_call_error`); under `halt` the exception ends the
      run.
    - **trace**: every event is a `TraceEvent` streamed on `stream_mode="custom"`, redacted
      when the profile redacts. `seq` grows across the thread's turns, pauses and resumes.
      The calls of one turn run concurrently, so each admitted call has its numbers reserved
      in the order the model listed it (calls that run at once first, then calls waiting for
      approval): events of concurrent calls may stream interleaved, and `seq` orders them.
      A call that waited and did not run leaves two numbers unused unless its block was the
      last one reserved.

    The profile's `offline`, `mock_fallback`, timeouts and retries concern plangate's own
    adapters and are not applied here; use LangChain's `ToolRetryMiddleware` for retries.

    Args:
        profile: A built-in profile name, a profile file path, or a `Profile`.
        actions: Glob pattern of tool names -> `read` / `propose` / `execute`; the first match
            wins.
        default_action: The action of a tool no pattern in `actions` matches.
        domains: Glob pattern of tool names -> budget domain; the first match wins.
        clock: Returns the current UTC time; approval expiry reads it (inject one in tests).

    Raises:
        ProfileError: The profile is unknown or invalid.
        PlangateUsageError: An action in `actions` or `default_action` is not one of
            `read`, `propose`, `execute`.

    Example:
        >>> governance = GovernanceMiddleware(
        ...     profile="smb", actions={"crm.lookup*": "read", "email.draft": "propose"}
        ... )
        >>> governance.action_of("email.send"), governance.domain_of("send_email")
        ('execute', 'send_email')
    """

    state_schema = GovernanceState

    def __init__(
        self,
        *,
        profile: str | Path | Profile = "enterprise",
        actions: Mapping[str, Action] | None = None,
        default_action: Action = "execute",
        domains: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        super().__init__()
        self._actions = dict(actions or {})
        for pattern, action in [*self._actions.items(), ("default_action", default_action)]:
            if action not in _ACTIONS:
                raise PlangateUsageError(
                    f"GovernanceMiddleware: {pattern!r}: unknown action {action!r}",
                    hint=f"use one of {', '.join(_ACTIONS)}",
                )
        self.profile = load_profile(profile)
        # The operator's `actions` come before the profile's own `tool_actions`.
        self._rules = self.profile.model_copy(
            update={"tool_actions": {**self._actions, **self.profile.tool_actions}}
        )
        self._default_action: Action = default_action
        # What each of the agent's tools declares, noted as the model is called.
        self._declared: dict[str, ToolDeclaration | None] = {}
        self._domains = dict(domains or {})
        self._clock = clock
        # Its tools stay empty: approval requests are built before the tool is at hand, and
        # `wrap_tool_call` puts the tool's own argument schema into the request it asks with.
        self._governance = Governance(profile=self.profile, tools={}, clock=clock)

    def action_of(self, tool: str) -> Action:
        """The action a call of `tool` is governed as."""
        return self._trusted(tool).action

    def _trusted(self, tool: str) -> ToolDeclaration:
        return trusted_declaration(
            tool, self._declared.get(tool), self._rules, default=self._default_action
        )

    def _policy(self, step: PlanStep) -> StepPolicy:
        return step_policy(step, self._trusted(step.tool), self.profile)

    # --- the model's turn: note what the tools declare -----------------------------------

    def _note_tools(self, tools: Sequence[BaseTool | dict[str, Any]]) -> None:
        for tool in tools:
            if isinstance(tool, BaseTool) and tool.name not in self._declared:
                self._declared[tool.name] = tool_declaration(tool)

    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> ModelCallResult[Any]:
        """Note what the agent's tools declare of themselves, then call the model."""
        self._note_tools(request.tools)
        return handler(request)

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelCallResult[Any]:
        """Async `wrap_model_call`."""
        self._note_tools(request.tools)
        return await handler(request)

    def domain_of(self, tool: str) -> str:
        """The budget domain of `tool` (see the class docstring)."""
        return next(
            (domain for pattern, domain in self._domains.items() if fnmatchcase(tool, pattern)),
            tool.split(".", 1)[0],
        )

    # --- after the model's turn: allowlist, budget, approval requests -----------------------

    def after_model(
        self, state: GovernanceState[Any], runtime: Runtime[Any]
    ) -> dict[str, Any] | None:
        """Admit or block each new tool call, charge the budget, build approval requests,
        and reserve the event numbers of the admitted calls.

        Returns:
            The `plangate` counters, and an error `ToolMessage` for each blocked call; `None`
            when the model asked for no tool.
        """
        pending = _pending_calls(state["messages"])
        if not pending:
            return None
        counters: GovernanceCounters = state.get("plangate") or {
            "trace_id": uuid.uuid4().hex,
            "seq": 0,
            "usage": empty_usage(),
            "warned": [],
            "calls": {},
        }
        profile = self.profile
        run = _run_counters(counters, counters["seq"])
        writer = TraceWriter(run, self._governance, runtime.stream_writer)
        usage, warned = counters["usage"], counters["warned"]
        blocked: list[ToolMessage] = []
        admitted: list[tuple[str, CallTicket]] = []
        for index, call in pending:
            try:
                step = PlanStep(
                    id=call["id"] or "",
                    tool=call["name"],
                    args=call["args"],
                    domain=self.domain_of(call["name"]),
                )
            except ValidationError as exc:  # args that are not plain JSON within the limits
                blocked.append(self._refuse_args(call, exc, writer))
                continue
            policy = self._policy(step)
            exceeded = exceeded_tier(usage, step, profile.budget)
            if not profile.allows(step.tool) or exceeded is not None:
                blocked.append(self._block(call, step, exceeded, writer))
                continue
            usage = charge(usage, step)
            for warning in crossed_warnings(usage, step, profile.budget, warned):
                writer.emit("budget_warning", warning, step=step)
                warned = [*warned, warning["tier"]]
            ticket: CallTicket = {
                "tool": step.tool,
                "domain": step.domain or "",
                "action": policy.action,
                "seq": 0,
                "size": _RAN,
            }
            if policy.needs_approval:
                request = ask_for_approval(
                    run,
                    step,
                    index,
                    # A model's call has no plan to reference: its args are taken as they are.
                    Resolved(step.args),
                    governance=self._governance,
                    policy=policy,
                    writer=writer,
                )
                ticket.update({"size": _GATED, "request": request})
            admitted.append((step.id, ticket))
        seq = writer.next_seq
        # Calls that run now are numbered first, calls that wait for a person after them.
        for _, ticket in sorted(admitted, key=lambda item: "request" in item[1]):
            ticket["seq"], seq = seq, seq + ticket["size"]
        update: GovernanceCounters = {
            "trace_id": counters["trace_id"],
            "seq": seq,
            "usage": usage,
            "warned": warned,
            "calls": dict(admitted),
        }
        return {"plangate": update, **({"messages": blocked} if blocked else {})}

    async def aafter_model(
        self, state: GovernanceState[Any], runtime: Runtime[Any]
    ) -> dict[str, Any] | None:
        """Async `after_model` (the same work: nothing in it waits)."""
        return self.after_model(state, runtime)

    def _block(
        self,
        call: ToolCall,
        step: PlanStep,
        exceeded: dict[str, Any] | None,
        writer: TraceWriter,
    ) -> ToolMessage:
        profile = self.profile
        if not profile.allows(step.tool):
            error_type = "tool_not_allowed"
            reason = f"tool {step.tool!r} is not in the allowlist of profile {profile.name!r}"
        else:
            assert exceeded is not None
            writer.emit("budget_exceeded", exceeded, step=step)
            error_type = "budget_exceeded"
            reason = (
                f"budget tier {exceeded['tier']} is used up "
                f"({exceeded['used']}/{exceeded['limit']} calls)"
            )
        writer.emit("step_blocked", {"reason": reason, "error_type": error_type}, step=step)
        return _not_run(
            call,
            f"Blocked: {reason}. The tool was not called; do not call it again.",
            "blocked",
        )

    def _refuse_args(
        self, call: ToolCall, error: ValidationError, writer: TraceWriter
    ) -> ToolMessage:
        """Block a call whose arguments a plan step could not hold (not plain JSON, past a
        size limit): the model reads why, and the agent's run goes on."""
        loc, msg = first_error(error)
        reason = f"invalid arguments: {dotted(loc)}: {msg}"
        # Built without validation: the args are what failed it, and the event is redacted.
        step = PlanStep.model_construct(
            id=call["id"] or "", tool=call["name"], args={}, domain=self.domain_of(call["name"])
        )
        writer.emit(
            "step_blocked", {"reason": reason, "error_type": "invalid_arguments"}, step=step
        )
        return _not_run(
            call, f"Blocked: {reason}. The tool was not called; fix the arguments.", "blocked"
        )

    # --- around each tool call: the decision, then the call ----------------------------------

    def _admit(self, request: ToolCallRequest) -> _Admitted | ToolMessage | Command[Any]:
        """Ask for a decision when the call waits for one, then emit `tool_call_start`.

        Returns the call to run, or what the model reads instead when it does not run.
        Nothing before `interrupt()` (in `collect_decisions`) has an effect: on resume this
        runs again from its first line.
        """
        call = request.tool_call
        counters: GovernanceCounters | None = (request.state or {}).get("plangate")
        ticket = counters["calls"].get(call["id"] or "") if counters else None
        if counters is None or ticket is None or ticket["tool"] != call["name"]:
            # Not a call `after_model` saw under this name (added or renamed after it ran).
            return _not_run(
                call,
                f"Blocked: this call of {call['name']!r} was not admitted by the agent's "
                "governance; the tool was not called.",
                "blocked",
            )
        step = PlanStep(
            id=call["id"] or "",
            tool=ticket["tool"],
            args=call["args"],
            action=ticket["action"],
            domain=ticket["domain"],
        )
        writer = TraceWriter(
            _run_counters(counters, ticket["seq"]),
            self._governance,
            request.runtime.stream_writer,
        )
        edited = False
        if "request" in ticket:
            outcome = self._decide(request, ticket["request"], step, writer)
            if isinstance(outcome, ToolMessage):
                settlement: _Settlement = {"settle": step.id, "next_seq": writer.next_seq}
                return Command(update={"messages": [outcome], "plangate": settlement})
            if outcome.decision == "edit":
                edited = True
                request = request.override(tool_call={**call, "args": outcome.args or {}})
        writer.emit(
            "tool_call_start",
            {"args": request.tool_call["args"], "action": step.action},
            step=step,
        )
        return _Admitted(request, writer, step, edited, time.perf_counter())

    def _decide(
        self,
        request: ToolCallRequest,
        approval: ApprovalRequest,
        step: PlanStep,
        writer: TraceWriter,
    ) -> Decision | ToolMessage:
        """Wait for the person's decision on a gated call: the decision when the call runs
        (`approve` / `edit`), else the message the model reads."""
        tools = {step.tool: request.tool} if request.tool is not None else {}
        governance = Governance(profile=self.profile, tools=tools, clock=self._clock)
        asked: ApprovalRequest = {**approval, "response_schema": response_schema(request.tool)}
        decision = collect_decisions(asked, step, governance).effective
        decided = self._clock()
        call = request.tool_call
        if decided > parse_iso(approval["expires_at"]):
            writer.emit(
                "approval_timeout",
                {"request_id": approval["request_id"], "expires_at": approval["expires_at"]},
                step=step,
            )
            return _not_run(
                call,
                f"The approval request for this call of {step.tool!r} expired at "
                f"{approval['expires_at']}; the tool was not called.",
                "expired",
            )
        wait = decided - parse_iso(approval["requested_at"])
        writer.emit(
            "approval_received",
            {
                "request_id": approval["request_id"],
                "decision": decision.decision,
                "approver": decision.approver,
                "reason": decision.reason,
                "args": decision.args,
                "wait_ms": round(wait.total_seconds() * 1000, 3),
            },
            step=step,
        )
        if decision.decision == "reject":
            reason = f": {decision.reason}" if decision.reason else ""
            return _not_run(
                call,
                f"A person rejected this call of {step.tool!r}{reason}. The tool was not "
                "called; do not call it again unless the user asks.",
                "rejected",
            )
        if decision.decision == "respond":
            return _not_run(call, decision.message or "", "responded", status="success")
        return decision

    def _finish(
        self, admitted: _Admitted, outcome: ToolMessage | Command[Any] | Exception
    ) -> ToolMessage | Command[Any]:
        """Emit the call's end (`outcome` is what the tool returned, or what it raised) and
        return what the model reads."""
        duration = round((time.perf_counter() - admitted.started) * 1000, 3)
        writer, step, call = admitted.writer, admitted.step, admitted.request.tool_call
        if isinstance(outcome, Exception):
            message = str(outcome) or type(outcome).__name__
            writer.emit(
                "tool_call_error",
                {"error_type": type(outcome).__name__, "message": message, "duration_ms": duration},
                step=step,
            )
            if self.profile.on_error == "halt":
                raise outcome
            return ToolMessage(
                content=f"Error: {message}",
                name=call["name"],
                tool_call_id=call["id"],
                status="error",
            )
        reply = _tool_message(outcome)
        content = reply.content if reply is not None else None
        if reply is not None and reply.status == "error":
            writer.emit(
                "tool_call_error",
                {"error_type": "tool_error", "message": content, "duration_ms": duration},
                step=step,
            )
        else:
            writer.emit(
                "tool_call_complete", {"duration_ms": duration, "output": content}, step=step
            )
        if admitted.edited and isinstance(outcome, ToolMessage) and isinstance(content, str):
            notice = _EDIT_NOTICE.format(args=json.dumps(call["args"], default=str))
            return outcome.model_copy(update={"content": f"{notice}\n\n{content}"})
        return outcome

    def wrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], ToolMessage | Command[Any]],
    ) -> ToolMessage | Command[Any]:
        """Wait for a decision when the call is gated, then run the tool between
        `tool_call_start` and `tool_call_complete` / `tool_call_error`.

        Raises:
            GraphInterrupt: The call waits for a decision (the agent pauses).
        """
        admitted = self._admit(request)
        if not isinstance(admitted, _Admitted):
            return admitted
        try:
            outcome: ToolMessage | Command[Any] | Exception = handler(admitted.request)
        except GraphBubbleUp:  # the tool itself paused the agent
            raise
        except Exception as exc:  # the profile's `on_error` decides, in `_finish`
            outcome = exc
        return self._finish(admitted, outcome)

    async def awrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], Awaitable[ToolMessage | Command[Any]]],
    ) -> ToolMessage | Command[Any]:
        """Async `wrap_tool_call`."""
        admitted = self._admit(request)
        if not isinstance(admitted, _Admitted):
            return admitted
        try:
            outcome: ToolMessage | Command[Any] | Exception = await handler(admitted.request)
        except GraphBubbleUp:
            raise
        except Exception as exc:
            outcome = exc
        return self._finish(admitted, outcome)
