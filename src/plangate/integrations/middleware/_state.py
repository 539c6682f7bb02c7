"""The middleware's channel of agent state (part of the integrations: `GovernanceMiddleware`).

Everything that must survive a pause (budget usage, warned tiers, the trace id and the next
sequence number, the turn's admitted calls) is one channel of agent state, `plangate`, so it is
per thread and kept by the agent's checkpointer. Its size is fixed but for the latest turn's
calls; its reducer folds in what the concurrent tool-call tasks of a turn give back.
"""

from __future__ import annotations

import uuid
from typing import Annotated, cast

from langchain.agents.middleware.types import AgentState, PrivateStateAttr, ResponseT
from typing_extensions import NotRequired, TypedDict

from plangate.budget import empty_usage
from plangate.plan import Action
from plangate.state import ApprovalRequest, BudgetUsage, RunCounters

__all__ = (
    "CallTicket",
    "GovernanceCounters",
    "GovernanceState",
    "Settlement",
    "new_counters",
    "run_counters",
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


class Settlement(TypedDict):
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
    current: GovernanceCounters, update: GovernanceCounters | Settlement
) -> GovernanceCounters:
    """Reducer of the `plangate` channel: `after_model` writes whole values; the concurrent
    tool-call tasks of a turn write `Settlement`s, folded in one after another."""
    if "settle" not in update:
        return update
    settlement = cast("Settlement", update)
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


def new_counters() -> GovernanceCounters:
    """The counters of a thread's first tool call: a new trace, nothing charged yet."""
    return {
        "trace_id": uuid.uuid4().hex,
        "seq": 0,
        "usage": empty_usage(),
        "warned": [],
        "calls": {},
    }


def run_counters(counters: GovernanceCounters, seq: int) -> RunCounters:
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
