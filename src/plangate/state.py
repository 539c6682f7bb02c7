"""Graph state and the payloads that cross an interrupt or a checkpoint: plain JSON TypedDicts.

Why the state looks like this: the SQLite saver writes every channel's whole value into every
checkpoint. So nothing here grows with the steps already done. The plan and the per-step
outcomes live in `DeltaChannel`s, whose checkpoints store only the writes of each step and
which LangGraph rebuilds on load; trace events live in `events`, which holds only the batch
written by the latest node (the whole trace is read back from the checkpoint history by
`get_trace`). `wave` holds at most a wave's reports (`Profile.max_concurrency` steps) and is
emptied when the wave ends. Everything else is a fixed-size counter.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from langchain_core.messages import AnyMessage
from langgraph.channels.delta import DeltaChannel
from typing_extensions import NotRequired, TypedDict

from plangate._channels import (
    SNAPSHOT_EVERY,
    chat_messages,
    latest_write,
    merged_writes,
    wave_writes,
)
from plangate.identity._identity import Identity
from plangate.profiles import Risk
from plangate.telemetry import RunSpan
from plangate.tracing import TraceEvent

__all__ = (
    "ApprovalRecord",
    "ApprovalRequest",
    "BudgetUsage",
    "FailureContext",
    "GivenApproval",
    "LaneStep",
    "PlanInput",
    "PlanReviewRequest",
    "PlanState",
    "ReviewGrant",
    "RunCounters",
    "StepOutcome",
    "StepReport",
    "StepStatus",
    "StepTask",
)

StepStatus = Literal["ok", "error", "rejected", "expired", "skipped", "blocked"]
DecisionKind = Literal["approve", "edit", "reject", "respond", "expired"]


class FailureContext(TypedDict):
    """Why a step did not end `ok`, in a form a program can branch on."""

    step_id: str
    tool: str
    error_type: str
    message: str


class GivenApproval(TypedDict):
    """One person's `approve` or `edit` of a request that needs several (`approvals_required`)."""

    approver: str | None
    decision: Literal["approve", "edit"]
    at: str
    identity: NotRequired[Identity]


class SignedDecision(TypedDict):
    """A verified decision as its proof covers it (`plangate.identity.DecisionSigner`): the
    request it answered (id, digest shown), what was decided, by whom, and the proof, so that
    `plangate verify` checks it again."""

    request_id: str
    digest: str | None
    decision: str
    args: dict[str, Any] | None
    message: str | None
    reason: str | None
    identity: Identity
    proof: str


class ApprovalRecord(TypedDict):
    """Who decided what about a step, and when. Where the profile asks for several approvals,
    `approvals` lists each that counted, the last one's being the record's own."""

    request_id: str
    step_id: str
    tool: str
    decision: DecisionKind
    approver: str | None
    reason: str | None
    args: dict[str, Any] | None
    message: str | None
    requested_at: str
    decided_at: str
    wait_ms: float
    digest: NotRequired[str]
    approvals: NotRequired[list[GivenApproval]]
    # Who decided, and how that was known (`verified_by`); the proof of every verified decision
    # on the request, in the order they came.
    identity: NotRequired[Identity]
    proofs: NotRequired[list[SignedDecision]]
    # Set when no one was asked about the step: the plan review approved it with the plan.
    covered_by: NotRequired[Literal["plan_review"]]


class StepOutcome(TypedDict):
    """How one plan step ended."""

    step_id: str
    tool: str
    status: StepStatus
    output: Any
    error: str | None
    attempts: int
    duration_ms: float | None
    approval: ApprovalRecord | None
    failure_context: FailureContext | None
    mocked: bool
    # The effective action the tool ran under, and who said it (`plangate.actions`).
    action: NotRequired[str]
    action_source: NotRequired[str]


class _PendingDecision(TypedDict):
    """What every request for a person's decision holds, a step's or a plan review's."""

    request_id: str
    trace_id: str
    step_index: int
    args: dict[str, Any]
    risk: Risk
    consequence: str
    profile: str
    digest: str
    requested_at: str
    expires_at: str
    allowed_decisions: list[str]
    response_schema: dict[str, Any]
    # Who started the run (`self_approval` compares the deciding person with them).
    started_by: NotRequired[Identity | None]
    # LangChain's HITL keys, which the interrupt's value carries too (`plangate.hitl`).
    action_requests: NotRequired[list[dict[str, Any]]]
    review_configs: NotRequired[list[dict[str, Any]]]
    error: NotRequired[str]


class ApprovalRequest(_PendingDecision):
    """The value of the interrupt a run stops with when a step waits for a human decision.

    `args` are the real arguments (the person deciding must see them; the trace's copy is
    redacted); `action` is the effective action and `action_source` who said it; `digest` binds
    a decision to the tool (and what it declares), args, action, risk and profile shown
    (`Decision.digest`). The interrupt shows it with LangChain's keys beside these
    (`plangate.hitl.in_form`); in the per-call form its `type` is LangChain's `tool_approval`.
    """

    type: Literal["approval_request"]
    step_id: str
    tool: str
    action: str
    action_source: str
    irreversible: bool
    domain: str
    description: str
    # Arg path -> every reference its value was made from, in order (`steps.lookup.output.
    # email`): an arg written as a text with several references shows each of them.
    references: NotRequired[dict[str, list[str]]]
    # Set when the profile wants more than one approver for this risk: how many, and who has
    # approved so far (an `edit` starts the count again, at its author).
    approvals_required: NotRequired[int]
    approvals_so_far: NotRequired[list[GivenApproval]]
    # Why a step the plan review covered asks after all: what differs from the row shown.
    review_changed: NotRequired[str]


class PlanReviewRequest(_PendingDecision):
    """The value of the interrupt a run stops with, before any step runs, when its profile wants
    the whole plan reviewed (`plan_review`): the pre-flight report of the plan under the run's
    governance, for one decision.

    `args` is the plan as written (references shown as references); an `edit` decision gives a
    new one there, which is validated and reviewed again. `steps` holds each step's tool, args,
    effective action and its source, risk, whether the review's approval covers it
    (`covered`) or it will still ask on its own (`asks`), and the budget tier that would block
    it; `budget` the forecast per tier; `risk` the highest of the steps'. `step_id`,
    `step_index` and `tool` are `None`, -1 and `None`: the request is about no single step.
    `digest` binds a decision to the whole plan, every row shown, what the review covers and the
    profile.
    """

    type: Literal["plan_review"]
    step_id: None
    tool: None
    goal: str
    # The order the plan runs in (`plangate.plan.Order`).
    order: str
    steps: list[dict[str, Any]]
    budget: list[dict[str, Any]]
    problems: list[dict[str, Any]]
    covers: Risk


class ReviewGrant(TypedDict):
    """An approved plan review, as the run keeps it: what `budget_check` needs to record a
    covered step's approval (`covered_by: plan_review`) without asking."""

    request_id: str
    approver: str | None
    requested_at: str
    decided_at: str
    wait_ms: float
    identity: NotRequired[Identity]
    proofs: NotRequired[list[SignedDecision]]


class StepTask(TypedDict):
    """What `budget_check` sends to `approval_interrupt` or `tool_exec` for one step (a LangGraph
    `Send`): everything the task needs, so that the steps of a wave run side by side without
    reading, or writing, the shared state."""

    index: int
    # The step as the plan keeps it (`Plan.to_state`).
    step: str
    run_id: str
    trace_id: str
    # The args to call with, when they are not the step's own: references resolved, or a
    # decision's edit.
    args: NotRequired[dict[str, Any]]
    request: NotRequired[ApprovalRequest]
    approval: NotRequired[ApprovalRecord]
    # The run's span, for the step's own to name as its parent.
    telemetry: NotRequired[RunSpan]
    # The steps of a chain of reads that go on from this one in the same task, each once the
    # one before it ended `ok` (`budget_check` cleared and charged them as it does any step).
    lane: NotRequired[list[LaneStep]]


class LaneStep(TypedDict):
    """A step of a `StepTask.lane`: what its own task would have held."""

    index: int
    step: str
    telemetry: NotRequired[RunSpan]


class StepReport(TypedDict):
    """What one node did to one step of a wave, for `trace_emit` to record in plan order.

    `events` are not numbered yet: `trace_emit` numbers the events of a wave in plan order, so
    `seq` does not depend on which call of the wave finished first.
    """

    index: int
    events: list[TraceEvent]
    # How the step ended; absent while it goes on (approved, on to `tool_exec`).
    outcome: NotRequired[StepOutcome]
    # The tool was called: the call counts against the budget.
    charged: NotRequired[bool]
    # The step did not end and goes back to the next wave's `budget_check`: its call was not
    # the one approved (it is asked about again), or the lane it was in stopped before it.
    recheck: NotRequired[bool]


class BudgetUsage(TypedDict):
    """Tool calls made so far, per tier; bounded by the number of distinct tools."""

    total: int
    domains: dict[str, int]
    tools: dict[str, int]


class RunCounters(TypedDict):
    """Where the run stands, in one fixed-size channel.

    One channel rather than six: the SQLite saver stores every channel's version string (about
    65 bytes) in every checkpoint and one row per written channel per node, so fewer channels
    keep a checkpoint small enough for two to share a database page.
    """

    run_id: str
    trace_id: str
    seq: int
    # The first step of the plan that has not ended: every step before it has.
    cursor: int
    usage: BudgetUsage
    warned: list[str]
    halted: str | None
    # Ids of the steps of the wave in flight (none between waves), and how many of the wave's
    # reports `trace_emit` has recorded.
    running: NotRequired[list[str]]
    recorded: NotRequired[int]
    # The `hash` of the thread's latest trace event: the next event chains to it
    # (`plangate.tracing.chain_hash`); "" before the first.
    chain: NotRequired[str]
    # The plan review's approval, when the profile wants one and it was given.
    review: NotRequired[ReviewGrant]
    # The ids of the run's OpenTelemetry span, when its graph has telemetry.
    telemetry: NotRequired[RunSpan]
    # The profile the run started under: resuming it under another is refused.
    profile: NotRequired[str]
    profile_fingerprint: NotRequired[str]
    # Who started the run, as the door it came through knew them (`plan_start`).
    started_by: NotRequired[Identity | None]


class PlanInput(TypedDict):
    """What `graph.invoke` takes."""

    plan: Any
    trace_id: NotRequired[str | None]
    trace_seq: NotRequired[int | None]
    # A chat client's input (`{"messages": [...]}`, as Agent Chat UI sends): in place of `plan`,
    # the last human message's text is the plan, as JSON or YAML (`plan_from_messages`).
    messages: NotRequired[list[Any]]


class PlanState(TypedDict, total=False):
    """The graph state. `result` is set by `finalize` when the run ends."""

    plan: Annotated[dict[str, Any], DeltaChannel(latest_write, dict, snapshot_frequency=1)]
    # Step id -> `stored_outcome` (read with `outcome_from_state`).
    outcomes: Annotated[
        dict[str, str], DeltaChannel(merged_writes, dict, snapshot_frequency=SNAPSHOT_EVERY)
    ]
    # Input only: `plan_start` moves them into `run` and clears them.
    trace_id: str | None
    trace_seq: int | None
    run: RunCounters
    # The reports of the wave in flight; `trace_emit` records them, and empties it when the wave
    # is over (writing `None`). A delta channel, like `events`: a report is stored once, as its
    # write.
    wave: Annotated[list[StepReport], DeltaChannel(wave_writes, list, snapshot_frequency=30)]
    # A delta channel never puts its value into a checkpoint, only its writes: the latest batch
    # is in the `writes` table already (where `get_trace` reads it), so the checkpoint would
    # carry it twice. Its small snapshots keep the replay on load short.
    events: Annotated[list[TraceEvent], DeltaChannel(latest_write, list, snapshot_frequency=30)]
    # The plan review waiting for a decision (`plan_review`); `None` once decided.
    review: PlanReviewRequest | None
    result: dict[str, Any] | None
    # Only for a run a chat client started with a message: that message, then the outcome's
    # one line (`finalize`), so a chat UI has the conversation it renders requests under. A
    # delta channel, so that a run started with a plan has no `messages` at all, not `[]`.
    messages: Annotated[list[AnyMessage], DeltaChannel(chat_messages, list, snapshot_frequency=1)]
