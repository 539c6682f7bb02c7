"""OpenTelemetry: each plan run a trace, each step a span, as the GenAI semantic conventions
describe tool execution (`plangate[otel]`).

Turned on by the profile (`telemetry: otel`, with the global tracer provider) or by
`build_graph(..., tracer_provider=...)`. A run may pause for hours and go on in another process,
so no span is held open across a pause: each span is made whole, with its own start and end
times, where what it measures ended.

- A step that called its tool gets a span `execute_tool {tool}` when the call ends, timed from
  the first try to the last (the call, not the approval's wait): `gen_ai.operation.name`
  `execute_tool`, `gen_ai.tool.name`, `gen_ai.tool.call.id` (the idempotency key), and
  `plangate.*` attributes (step id, status, attempts, mocked, action, risk); the approval is an
  event on it (decision, approver, wait). A step that ends without a call (blocked, skipped,
  rejected, expired, answered by a person) gets a span of no length when it ends.
- The run's span, `plangate.run`, is the parent of them all. Its ids are chosen when the run
  starts and kept in the run (`RunCounters.telemetry`): the trace id is the plangate trace's
  own (its 32 hex digits; any other trace id is hashed to 128 bits), so every process that runs
  a part of the run, and every run continuing the trace, adds to the same trace. It is made
  when the run finishes, with the run's start time and the result's status and budget.

Attributes are redacted as trace events are (the profile's `redact`). Content (the plan's goal
`plangate.goal`, args and outputs `gen_ai.tool.call.arguments` and `gen_ai.tool.call.result`,
and a failed step's message as its span's status description) is recorded only under the
profile's `capture_content`: without it a span says what happened (`error.type`, the status
ERROR), never in whose words. A step that sets `error.type` (an error, a rejection, a block, an
expiry) has the status ERROR.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from typing_extensions import NotRequired, TypedDict

from plangate._time import parse_iso
from plangate.errors import PlangateUsageError
from plangate.tracing import redact

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer, TracerProvider

    from plangate.plan import PlanStep
    from plangate.profiles import Profile

__all__ = ("RunSpan", "Telemetry")

SCOPE = "plangate"
_HEX_TRACE_ID = re.compile(r"[0-9a-f]{32}")


class RunSpan(TypedDict):
    """The ids and start of a run's span, kept in the run so that any process can add to it."""

    trace_id: str
    span_id: str
    start_ns: int
    # In a step's task: the run's tool calls counted with this one (`budget_check` charges it).
    calls: NotRequired[int]


@dataclass(frozen=True, slots=True)
class Telemetry:
    """Where a graph's spans go (a tracer of `plangate`'s scope), and what they may hold."""

    tracer: Tracer
    redact: bool
    capture_content: bool

    @classmethod
    def of(cls, profile: Profile, tracer_provider: TracerProvider | None) -> Telemetry | None:
        """The telemetry `build_graph` sets up: `None` when neither the profile nor the caller
        asks for it.

        Raises:
            PlangateUsageError: It is asked for, and OpenTelemetry is not installed.
        """
        if tracer_provider is None and profile.telemetry is None:
            return None
        try:
            from opentelemetry import trace
        except ImportError:
            raise PlangateUsageError(
                "telemetry needs OpenTelemetry (opentelemetry-api and opentelemetry-sdk)",
                hint="install plangate's `otel` extra (from a checkout: pip install '.[otel]')",
            ) from None
        provider = tracer_provider or trace.get_tracer_provider()
        return cls(
            tracer=provider.get_tracer(SCOPE),
            redact=profile.redact,
            capture_content=profile.capture_content,
        )

    def run_span(self, trace_id: str) -> RunSpan:
        """New ids for a run's span, in the OpenTelemetry trace of plangate trace `trace_id`."""
        return {
            "trace_id": _otel_trace_id(trace_id),
            "span_id": secrets.token_hex(8),
            "start_ns": time.time_ns(),
        }

    def step(
        self,
        run: RunSpan,
        step: PlanStep,
        outcome: Mapping[str, Any],
        *,
        start_ns: int,
        end_ns: int,
        call_id: str | None = None,
        args: Any = None,
    ) -> None:
        """The span of one step, as its `outcome` ended it, under the run's span."""
        from opentelemetry import trace
        from opentelemetry.trace import NonRecordingSpan, SpanContext, StatusCode, TraceFlags

        parent = NonRecordingSpan(
            SpanContext(
                int(run["trace_id"], 16),
                int(run["span_id"], 16),
                is_remote=True,
                trace_flags=TraceFlags(TraceFlags.SAMPLED),
            )
        )
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": step.tool,
            "gen_ai.tool.type": "function",
            "plangate.step.id": step.id,
            "plangate.step.status": outcome["status"],
            "plangate.step.attempts": outcome["attempts"],
            "plangate.step.mocked": outcome["mocked"],
        }
        if call_id is not None:
            attributes["gen_ai.tool.call.id"] = call_id
        if "calls" in run:
            attributes["plangate.budget.calls"] = run["calls"]
        for key in ("action", "action_source"):
            if outcome.get(key):
                attributes[f"plangate.step.{key}"] = outcome[key]
        if outcome["failure_context"]:
            attributes["error.type"] = outcome["failure_context"]["error_type"]
        if self.capture_content:
            if args is not None:
                attributes["gen_ai.tool.call.arguments"] = self._content(args)
            if outcome["status"] == "ok" and outcome["output"] is not None:
                attributes["gen_ai.tool.call.result"] = self._content(outcome["output"])
        span = self.tracer.start_span(
            f"execute_tool {step.tool}",
            context=trace.set_span_in_context(parent),
            kind=trace.SpanKind.INTERNAL,
            attributes=self._shown(attributes),
            start_time=start_ns,
        )
        approval = outcome.get("approval")
        if approval:
            decided = {
                "plangate.approval.decision": approval["decision"],
                "plangate.approval.wait_ms": approval["wait_ms"],
                "plangate.approval.request_id": approval["request_id"],
            }
            if approval.get("approver"):
                decided["plangate.approval.approver"] = approval["approver"]
            identity = approval.get("identity") or {}
            decided["plangate.approval.verified_by"] = identity.get("verified_by", "unverified")
            if identity.get("subject"):
                decided["plangate.approval.subject"] = identity["subject"]
            if approval.get("covered_by"):
                decided["plangate.approval.covered_by"] = approval["covered_by"]
            decided_ns = _ns(approval["decided_at"]) or start_ns
            span.add_event("plangate.approval", self._shown(decided), timestamp=decided_ns)
        # Every step that did not end as asked (an error, and also a rejection, a block, an
        # expiry: each sets `error.type`) is an error to a trace backend; its message is
        # content, as a goal is.
        if outcome["status"] == "error" or outcome["failure_context"]:
            message = outcome["error"] if self.capture_content else None
            span.set_status(StatusCode.ERROR, self._shown(message) if message else None)
        span.end(end_time=max(end_ns, start_ns))

    def run(self, run: RunSpan, result: Mapping[str, Any], *, run_id: str) -> None:
        """The run's own span, with the ids its steps' spans name as their parent."""
        from opentelemetry import trace
        from opentelemetry.trace import StatusCode

        # A span's ids come from its tracer's id generator: a copy of the tracer with one that
        # gives the ids chosen when the run started (`RunSpan`). No-op tracers have none.
        tracer = self.tracer
        if hasattr(tracer, "id_generator"):
            tracer = copy.copy(tracer)
            tracer.id_generator = _ChosenIds(int(run["trace_id"], 16), int(run["span_id"], 16))
        budget = result.get("budget") or {}
        attributes = {
            "plangate.run.id": run_id,
            "plangate.trace_id": result["trace_id"],
            "plangate.run.status": result["status"],
            "plangate.run.steps": len(result["steps"]),
            "plangate.profile": result["profile"],
            "plangate.budget.calls": budget.get("total", {}).get("used", 0),
            "plangate.budget.utilisation": budget.get("utilisation", 0.0),
        }
        if result.get("halted"):
            attributes["plangate.run.halted"] = result["halted"]
        if self.capture_content and result["goal"]:
            attributes["plangate.goal"] = result["goal"]
        span = tracer.start_span(
            "plangate.run",
            context=trace.set_span_in_context(trace.INVALID_SPAN),
            attributes=self._shown(attributes),
            start_time=run["start_ns"],
        )
        if result["status"] == "failed":
            span.set_status(StatusCode.ERROR, "no step ended ok")
        span.end()

    def _shown(self, value: Any) -> Any:
        return redact(value) if self.redact else value

    def _content(self, value: Any) -> str:
        return json.dumps(self._shown(value), ensure_ascii=False, default=str)


def _ns(moment: str) -> int | None:
    """Nanoseconds since the epoch of an ISO 8601 time, as plangate writes them."""
    try:
        return int(parse_iso(moment).timestamp() * 1_000_000_000)
    except ValueError:
        return None


def _otel_trace_id(trace_id: str) -> str:
    """A plangate trace id as an OpenTelemetry one: itself when it is 32 hex digits (as the ids
    plangate makes are), else the first 128 bits of its SHA-256."""
    lowered = trace_id.lower()
    if _HEX_TRACE_ID.fullmatch(lowered) and int(lowered, 16):
        return lowered
    return hashlib.sha256(trace_id.encode()).hexdigest()[:32]


class _ChosenIds:
    """An id generator that gives one chosen trace id and span id."""

    def __init__(self, trace_id: int, span_id: int) -> None:
        self._trace_id, self._span_id = trace_id, span_id

    def generate_trace_id(self) -> int:
        return self._trace_id

    def generate_span_id(self) -> int:
        return self._span_id

    def is_trace_id_random(self) -> bool:
        return True
