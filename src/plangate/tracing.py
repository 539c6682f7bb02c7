"""Canonical trace events, PII redaction, and the golden signals of a run."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, get_args

from typing_extensions import TypedDict

__all__ = (
    "EVENT_TYPES",
    "EventType",
    "TraceEvent",
    "golden_signals",
    "outcome_signals",
    "redact",
)

EventType = Literal[
    "plan_created",
    "policy_override",
    "budget_warning",
    "budget_exceeded",
    "approval_requested",
    "approval_received",
    "approval_timeout",
    "approval_invalidated",
    "adapter_fallback",
    "tool_call_start",
    "tool_call_retry",
    "tool_call_complete",
    "tool_call_error",
    "step_blocked",
    "step_skipped",
    "step_completed",
    "plan_completed",
]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)


class TraceEvent(TypedDict):
    """One move of a run, as streamed on `stream_mode="custom"` and read back by `get_trace`.

    `seq` grows by one per event within a trace, across pauses, resumes and executions that
    share a `trace_id`. `ts` is ISO 8601 UTC. `step_id` and `tool` are `None` for plan-level
    events.
    """

    type: EventType
    trace_id: str
    seq: int
    ts: str
    step_id: str | None
    tool: str | None
    data: dict[str, Any]


_REDACTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Keys first: a bearer token or key may contain digit runs the later patterns would split.
    (re.compile(r"(?i)\bbearer\s+[a-z0-9._~+/=-]{8,}"), "Bearer [REDACTED_TOKEN]"),
    (re.compile(r"\b(?:ghp|gho|ghs|xox[abp])[-_][A-Za-z0-9_-]{12,}\b"), "[REDACTED_KEY]"),
    # After a generic prefix, a key must hold a digit: that keeps "key-performance-..." out.
    (
        re.compile(r"\b(?:sk|pk|rk|api|key)[-_](?=[A-Za-z_-]*\d)[A-Za-z0-9_-]{12,}\b"),
        "[REDACTED_KEY]",
    ),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), "[REDACTED_KEY]"),
    (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"), "[REDACTED_EMAIL]"),
    (re.compile(r"\b(?:\d[ -]?){12,18}\d\b"), "[REDACTED_CARD]"),
    (re.compile(r"\b\d{3}-\d{2}-\d{4}\b"), "[REDACTED_ID]"),
    (re.compile(r"\b[A-Z]{2}\d{6}[A-D]\b"), "[REDACTED_ID]"),
)
# A phone number candidate: digit groups with optional separators. Only candidates with enough
# digits are phone numbers (see `_phone`), so dates, amounts and order numbers stay readable.
_PHONE = re.compile(r"(?<![\w-])\+?\(?\d{1,4}\)?(?:[ .-]?\(?\d{2,4}\)?){2,4}(?![\w-])")
_PHONE_DIGITS = 10
_INTERNATIONAL_PHONE_DIGITS = 8
# Keys whose whole value is a secret: `password`, `client_secret`, `access_token`, `api_key`,
# `authorization`, ... but not counters such as `max_tokens`.
_SECRET_KEYS = re.compile(
    r"(?i)^(?:.*[_-])?(?:password|passwd|secret|token|api[_-]?key|apikey|authorization|credentials?)$"
)


def _phone(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = sum(char.isdigit() for char in text)
    needed = _INTERNATIONAL_PHONE_DIGITS if text.startswith("+") else _PHONE_DIGITS
    return "[REDACTED_PHONE]" if digits >= needed else text


def redact(value: Any) -> Any:
    """Return a copy of `value` with PII in strings replaced by `[REDACTED_*]` markers.

    Emails, phone numbers (10 digits or more, or 8 with a leading `+`), card numbers, national id
    numbers (SSN-style), API keys and bearer tokens are replaced. Dicts, lists and tuples are
    walked; a value under a key that names a secret (`password`, `client_secret`,
    `access_token`, `api_key`, `authorization`, ...) is replaced whole, whatever its type.

    Example:
        >>> redact({"to": "ana@example.com", "note": "call +1 415 555 0100 before 2026-03-31"})
        {'to': '[REDACTED_EMAIL]', 'note': 'call [REDACTED_PHONE] before 2026-03-31'}
    """
    if isinstance(value, str):
        for pattern, marker in _REDACTIONS:
            value = pattern.sub(marker, value)
        return _PHONE.sub(_phone, value)
    if isinstance(value, Mapping):
        return {
            key: "[REDACTED_SECRET]"
            if isinstance(key, str) and item is not None and _SECRET_KEYS.search(key)
            else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact(item) for item in value]
    return value


def _percentile(ordered: Sequence[float], share: float) -> float:
    """Nearest-rank percentile of an ascending sequence."""
    rank = max(1, round(share * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def golden_signals(
    statuses: Iterable[str],
    tool_latencies_ms: Iterable[float],
    approval_waits_ms: Iterable[float],
    budget_utilisation: float,
) -> dict[str, Any]:
    """The golden signals of a run.

    Args:
        statuses: The outcome status of every step.
        tool_latencies_ms: Duration of every tool call that ran.
        approval_waits_ms: Time from each approval request to its decision.
        budget_utilisation: Highest share of any budget tier used (0-1).

    Returns:
        `success_rate` (ok steps / steps), `error_rate` (failed tool calls / tool calls),
        `tool_latency_ms` (`p50`, `p95`, `max`), `approval_wait_ms` (`count`, `mean`, `max`)
        and `budget_utilisation`.
    """
    statuses = list(statuses)
    latencies = sorted(tool_latencies_ms)
    waits = list(approval_waits_ms)
    calls = len(latencies)
    errors = statuses.count("error")
    return {
        "steps": len(statuses),
        "success_rate": round(statuses.count("ok") / len(statuses), 4) if statuses else 0.0,
        "error_rate": round(errors / calls, 4) if calls else 0.0,
        "tool_latency_ms": {
            "p50": round(_percentile(latencies, 0.50), 3) if latencies else None,
            "p95": round(_percentile(latencies, 0.95), 3) if latencies else None,
            "max": round(latencies[-1], 3) if latencies else None,
        },
        "approval_wait_ms": {
            "count": len(waits),
            "mean": round(sum(waits) / len(waits), 3) if waits else None,
            "max": round(max(waits), 3) if waits else None,
        },
        "budget_utilisation": round(budget_utilisation, 4),
    }


def outcome_signals(
    outcomes: Sequence[Mapping[str, Any]], budget_utilisation: float
) -> dict[str, Any]:
    """`golden_signals` of the steps that ended with `outcomes` (`StepOutcome`s): a tool call's
    latency counts only when the tool ran, and each decided approval its wait."""
    return golden_signals(
        [o["status"] for o in outcomes],
        [o["duration_ms"] for o in outcomes if o["duration_ms"] is not None and o["attempts"]],
        [o["approval"]["wait_ms"] for o in outcomes if o["approval"]],
        budget_utilisation,
    )
