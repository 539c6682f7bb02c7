"""What every node needs to know about the run it governs, and how nodes write trace events."""

from __future__ import annotations

import copy
import difflib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from langchain_core.tools import BaseTool
from langgraph.config import get_config

from plangate._time import iso, utc_now
from plangate.actions import (
    StepPolicy,
    ToolDeclaration,
    declaration_digest,
    step_policy,
    tool_declaration,
)
from plangate.actions import trusted_declaration as trusted_of
from plangate.adapters.registry import LazyTools
from plangate.approval import response_schema
from plangate.identity._gate import DecisionGate
from plangate.identity._proof import DecisionSigner
from plangate.plan import PlanStep, step_from_state
from plangate.profiles import Profile
from plangate.state import PlanState, RunCounters
from plangate.telemetry import Telemetry
from plangate.tracing import EventType, TraceEvent, audit_key, chain_hash, make_anchor, redact

if TYPE_CHECKING:
    from plangate.runs.anchors import AnchorSink


@dataclass(frozen=True, slots=True, kw_only=True)
class Governance:
    """The fixed inputs of a compiled graph: its profile, its tools and their mocks, its clock,
    and how it waits between retries (`sleep`; both are injected in tests)."""

    profile: Profile
    tools: Mapping[str, BaseTool]
    mocks: Mapping[str, BaseTool] = field(default_factory=dict)
    clock: Callable[[], datetime] = utc_now
    sleep: Callable[[float], None] = time.sleep
    # The trace's hash chain key (`PLANGATE_AUDIT_KEY`), read when the graph is built.
    audit_key: bytes | None = field(default_factory=audit_key, repr=False)
    # Where the run's OpenTelemetry spans go, when they are asked for.
    telemetry: Telemetry | None = None
    # Where each thread's trace head is anchored, outside the checkpoint database.
    anchors: AnchorSink | None = None
    # The project's signing key: decision proofs are checked (and LangGraph's auth users
    # vouched for) with it; `None` when the project knows no identities.
    signer: DecisionSigner | None = field(default=None, repr=False)
    fingerprint: str = field(init=False)
    _schemas: dict[str | None, dict[str, Any]] = field(
        default_factory=dict, repr=False, compare=False
    )
    _trusted: dict[str, ToolDeclaration] = field(default_factory=dict, repr=False, compare=False)
    _policies: dict[tuple[str, str | None, str | None], StepPolicy] = field(
        default_factory=dict, repr=False, compare=False
    )
    _declarations: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fingerprint", self.profile.fingerprint)
        # Every declaration is read now, so that a bad one fails when the graph is built; tools
        # still to be loaded from their source (an MCP server) declare themselves as they load.
        tools = self.tools.loaded if isinstance(self.tools, LazyTools) else self.tools
        for name in {**self.mocks, **tools}:
            self.trusted(name)

    def gate(self, config: Mapping[str, Any] | None) -> DecisionGate:
        """Who may decide this graph's requests, for a run with `config`."""
        return DecisionGate.of(self.profile, self.signer, config, self.clock)

    def trusted(self, name: str) -> ToolDeclaration:
        """The trusted action of tool `name` (see `plangate.actions`), worked out once."""
        if name not in self._trusted:
            tool = self.described(name)
            declared = tool_declaration(tool) if tool is not None else None
            self._trusted[name] = trusted_of(name, declared, self.profile)
        return self._trusted[name]

    def declaration(self, name: str) -> str:
        """The digest of what tool `name` declares (`plangate.actions.declaration_digest`),
        worked out once."""
        if name not in self._declarations:
            self._declarations[name] = declaration_digest(
                name, self.described(name), self.trusted(name)
            )
        return self._declarations[name]

    def policy(self, step: PlanStep) -> StepPolicy:
        """How `step` is governed; the same for every step with its tool, action and domain,
        so it is worked out once per such triple, not once per step."""
        key = (step.tool, step.action, step.domain)
        if key not in self._policies:
            self._policies[key] = step_policy(step, self.trusted(step.tool), self.profile)
        return self._policies[key]

    def is_effect(self, links: StepLinks) -> bool:
        """Whether the step is an effect, what listed order keeps in place: its effective action
        (the tool's trusted one, or the plan's when it asks for more) is not `read`, or the call
        cannot be undone. A tool nobody registered counts as one: nothing says it only reads."""
        trusted = self.trusted(links.tool)
        asks_more = links.action not in (None, "read")
        return asks_more or trusted.action != "read" or trusted.irreversible

    def tool(self, name: str) -> BaseTool | None:
        """What a step calling `name` calls first: the tool, or offline its mock."""
        return (self.mocks if self.profile.offline else self.tools).get(name)

    def unknown_tool(self, name: str) -> str:
        """What to say of a step calling `name`, which no tool (offline, no mock) answers to:
        that it is unknown, and the closest name that is known, for a mistyped one."""
        offline = self.profile.offline
        known = self.mocks if offline else self.tools
        # Only the tools loaded so far: looking `name` up loaded the source of its prefix, and
        # a guess is not worth starting every other source (nor failing on one that is down).
        if isinstance(known, LazyTools):
            known = known.loaded
        message = (
            f"running offline, and no mock of {name!r} is registered"
            if offline
            else f"no tool named {name!r} is registered"
        )
        close = difflib.get_close_matches(name, list(known), n=1)
        return f"{message} (did you mean {close[0]!r}?)" if close else message

    def described(self, name: str) -> BaseTool | None:
        """The tool whose declaration and argument schema stand for `name`: the tool itself,
        even offline (its mock answers for it), else its mock."""
        return self.tools.get(name) or self.mocks.get(name)

    def fallback(self, name: str) -> BaseTool | None:
        """The mock to call when the tool cannot be reached, under `mock_fallback`."""
        return self.mocks.get(name) if self.profile.mock_fallback else None

    def now(self) -> str:
        return iso(self.clock())

    def response_schema(self, tool: str | None) -> dict[str, Any]:
        """The decision schema for approvals of `tool` (`None`: of no one tool, as a plan
        review's), built once per tool: pydantic's JSON schema generation would otherwise be
        most of what an approval request costs."""
        if tool not in self._schemas:
            self._schemas[tool] = response_schema(self.described(tool) if tool else None)
        return copy.deepcopy(self._schemas[tool])


def step_at(state: PlanState, index: int) -> PlanStep:
    """The plan's step at `index`; the plan in state is already validated JSON."""
    return step_from_state(state["plan"]["steps"][index])


@dataclass(frozen=True, slots=True)
class StepLinks:
    """What deciding whether a step is ready needs: its id, its `depends_on`, and what makes it
    an effect (its tool, and the action the plan asks for)."""

    id: str
    depends_on: tuple[str, ...]
    tool: str
    action: str | None


def step_links(stored: str | Mapping[str, Any]) -> StepLinks:
    """The `StepLinks` of a step as the plan keeps it, read once per distinct step (every wave
    looks at the steps ahead again)."""
    if isinstance(stored, str):
        return _links(stored)
    return _links_of(step_from_state(stored))


@lru_cache(maxsize=8192)
def _links(stored: str) -> StepLinks:
    return _links_of(step_from_state(stored))


def _links_of(step: PlanStep) -> StepLinks:
    return StepLinks(step.id, tuple(step.depends_on), step.tool, step.action)


class TraceWriter:
    """Numbers, redacts, chains and streams the trace events of one node run.

    Each numbered event gets its `hash`, chained to the one before (`chain_hash`) from the
    run's `chain`, when the run keeps one: a graph's runs do, the middleware's counters do not.
    Events go to `stream_mode="custom"` as they happen and into the node's state update (the
    `events` channel), from which `get_trace` reads the whole trace back. A step's task in a
    wave (`approval_interrupt`, `tool_exec`) writes with `TraceWriter.unnumbered` instead: its
    events get their `seq` from `trace_emit` (`adopt`), in plan order, when the wave ends.
    """

    def __init__(self, run: RunCounters, governance: Governance, stream: Callable[[Any], None]):
        self._run = run
        self._trace_id = run["trace_id"]
        self._seq = run["seq"]
        self._chain = run.get("chain")
        self._numbered = True
        self._governance = governance
        self._stream = stream
        self.events: list[TraceEvent] = []

    @classmethod
    def unnumbered(cls, trace_id: str, governance: Governance) -> TraceWriter:
        """A writer for one step's task: its events carry `seq` -1 and are not streamed yet."""
        writer = cls.__new__(cls)
        writer._trace_id, writer._seq, writer._numbered = trace_id, -1, False
        writer._chain = None
        writer._governance, writer._stream, writer.events = governance, _ignore, []
        return writer

    def emit(
        self,
        type_: EventType,
        data: dict[str, Any] | None = None,
        *,
        step: PlanStep | None = None,
    ) -> TraceEvent:
        payload = data or {}
        event: TraceEvent = {
            "type": type_,
            "trace_id": self._trace_id,
            "seq": self._seq,
            "ts": self._governance.now(),
            "step_id": step.id if step else None,
            "tool": step.tool if step else None,
            "data": redact(payload) if self._governance.profile.redact else payload,
        }
        self._record(event)
        return event

    def adopt(self, events: list[TraceEvent]) -> None:
        """Number, keep and stream events an `unnumbered` writer made."""
        for event in events:
            self._record({**event, "seq": self._seq})

    def _record(self, event: TraceEvent) -> None:
        if self._numbered:
            self._seq += 1
            if self._chain is not None:
                self._chain = event["hash"] = chain_hash(
                    self._chain, event, self._governance.audit_key
                )
            self._stream(event)
        self.events.append(event)

    @property
    def next_seq(self) -> int:
        return self._seq

    def update(self, **run_changes: Any) -> dict[str, Any]:
        """The state update that persists this node's events, the next sequence number and
        `run_changes` (new values of `RunCounters` fields)."""
        if not self.events and not run_changes:
            return {}
        run = {**self._run, **run_changes, "seq": self._seq}
        if self._chain is not None:
            run["chain"] = self._chain
        update: dict[str, Any] = {"run": run}
        if self.events:
            update["events"] = self.events
            self._anchor(run["run_id"])
        return update

    def _anchor(self, run_id: str) -> None:
        """Anchor the chain's new head outside the database: one append per node that adds
        events, whatever the plan's length."""
        anchors = self._governance.anchors
        if anchors is None or self._chain is None or not self._numbered:
            return
        configurable = get_config().get("configurable") or {}
        # A subgraph's task runs under its parent's namespace (`parent:id|node:id`): its events
        # are not in the thread's own trace, which `verify` reads and checks anchors against.
        if "|" in str(configurable.get("checkpoint_ns") or ""):
            return
        anchors.append(
            make_anchor(
                thread_id=str(configurable.get("thread_id")),
                run_id=run_id,
                trace_id=self._trace_id,
                seq=self._seq - 1,
                hash=self._chain,
                ts=self._governance.now(),
                key=self._governance.audit_key,
            )
        )


def _ignore(_event: Any) -> None:
    """The stream of an `unnumbered` writer: its events are streamed once numbered."""
