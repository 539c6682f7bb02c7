"""`GovernanceMiddleware` itself: LangChain's middleware hooks, wired to the parts that govern
(part of the integrations; see this package's docstring for where each rule is applied).

Each hook hands its work to one module: `CallRules` (what a call is governed as),
`admit_turn` (after the model's turn), `admit_call` and `finish_call` (around each tool call).
The class keeps only what lives as long as the agent: the profile, the rules, and the
`Governance` its trace events are written under.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from langchain.agents.middleware.types import (
    AgentMiddleware,
    ModelCallResult,
    ModelRequest,
    ModelResponse,
    ToolCallRequest,
)
from langchain_core.messages import ToolMessage
from langgraph.errors import GraphBubbleUp
from langgraph.runtime import Runtime
from langgraph.types import Command

from plangate._governance import Governance
from plangate._time import utc_now
from plangate.identity import DecisionSigner
from plangate.integrations.middleware._admission import admit_turn
from plangate.integrations.middleware._rules import CallRules
from plangate.integrations.middleware._state import GovernanceState
from plangate.integrations.middleware._tool_call import Admitted, admit_call, finish_call
from plangate.plan import Action
from plangate.profiles import Profile

__all__ = ("GovernanceMiddleware",)


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
      `Command(resume={interrupt.id: decision, ...})`; LangChain's decisions are taken too
      (`plangate.hitl`), and the run's config may ask for LangChain's per-call request form
      (`interrupt_mode: per_call`). `approve` runs the call; `edit` runs it
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
        signer: The project's signing key (`plangate.identity.DecisionSigner`): decisions
            with its proofs, and LangGraph server users plangate's auth handler vouched for,
            are verified; the profile's `identity_required`, `approvers` and `self_approval`
            judge every decision either way (`plangate.identity`).

    Raises:
        ProfileError: The profile is unknown or invalid.
        PlangateUsageError: An action in `actions` or `default_action` is not one of
            `read`, `propose`, `execute`.

    Examples:
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
        signer: DecisionSigner | None = None,
    ) -> None:
        super().__init__()
        self._rules = CallRules(
            profile, actions=actions or {}, default_action=default_action, domains=domains or {}
        )
        self.profile = self._rules.profile
        # Its tools stay empty: approval requests are built before the tool is at hand, and
        # `wrap_tool_call` puts the tool's own argument schema into the request it asks with.
        self._governance = Governance(profile=self.profile, tools={}, clock=clock, signer=signer)

    def action_of(self, tool: str) -> Action:
        """The action a call of `tool` is governed as."""
        return self._rules.action_of(tool)

    def domain_of(self, tool: str) -> str:
        """The budget domain of `tool` (see the class docstring)."""
        return self._rules.domain_of(tool)

    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> ModelCallResult[Any]:
        """Note what the agent's tools declare of themselves, then call the model."""
        self._rules.note_tools(request.tools)
        return handler(request)

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelCallResult[Any]:
        """Async `wrap_model_call`."""
        self._rules.note_tools(request.tools)
        return await handler(request)

    def after_model(
        self, state: GovernanceState[Any], runtime: Runtime[Any]
    ) -> dict[str, Any] | None:
        """Admit or block each new tool call, charge the budget, build approval requests,
        and reserve the event numbers of the admitted calls.

        Returns:
            The `plangate` counters, and an error `ToolMessage` for each blocked call; `None`
            when the model asked for no tool.
        """
        return admit_turn(state, runtime, rules=self._rules, governance=self._governance)

    async def aafter_model(
        self, state: GovernanceState[Any], runtime: Runtime[Any]
    ) -> dict[str, Any] | None:
        """Async `after_model` (the same work: nothing in it waits)."""
        return self.after_model(state, runtime)

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
        admitted = admit_call(request, governance=self._governance)
        if not isinstance(admitted, Admitted):
            return admitted
        try:
            outcome: ToolMessage | Command[Any] | Exception = handler(admitted.request)
        except GraphBubbleUp:  # the tool itself paused the agent
            raise
        except Exception as exc:  # the profile's `on_error` decides, in `finish_call`
            outcome = exc
        return finish_call(admitted, outcome, halt=self.profile.on_error == "halt")

    async def awrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], Awaitable[ToolMessage | Command[Any]]],
    ) -> ToolMessage | Command[Any]:
        """Async `wrap_tool_call`."""
        admitted = admit_call(request, governance=self._governance)
        if not isinstance(admitted, Admitted):
            return admitted
        try:
            outcome: ToolMessage | Command[Any] | Exception = await handler(admitted.request)
        except GraphBubbleUp:
            raise
        except Exception as exc:
            outcome = exc
        return finish_call(admitted, outcome, halt=self.profile.on_error == "halt")
