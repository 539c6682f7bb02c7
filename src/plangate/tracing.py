"""Canonical trace events, PII redaction, and the golden signals of a run."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, get_args

from typing_extensions import NotRequired, TypedDict

__all__ = (
    "AUDIT_KEY_ENV",
    "Anchor",
    "EVENT_MEANINGS",
    "EVENT_TYPES",
    "REDACTION_MARKER",
    "EventType",
    "TraceEvent",
    "anchor_signature",
    "audit_key",
    "chain_hash",
    "golden_signals",
    "make_anchor",
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

EVENT_MEANINGS: dict[EventType, str] = {
    "plan_created": "a plan starts (goal, step count, profile)",
    "policy_override": "the plan's `action` asked for less than the tool's trusted action: both, "
    "and the `action_source` of the one used",
    "budget_warning": "a tier (`total`, `domain:<d>`, `tool:<t>`) crosses the warning threshold; "
    "once per tier",
    "budget_exceeded": "a step would exceed a tier; the step is blocked",
    "approval_requested": "a step waits (the request's action, source, risk, consequence, digest, "
    "redacted args); with no step, the plan review waits (`kind: plan_review`, the steps "
    "approving it covers)",
    "approval_received": "a step's request is decided (one event per decision where several "
    "approvers are needed); with no step, the plan review's",
    "approval_timeout": "a step's request, or the plan review, expired unanswered",
    "approval_invalidated": "a call about to run is not the one approved (its args, action, risk "
    "or profile changed), or needs approval and has none: the step is asked again",
    "adapter_fallback": "a step's mock answers instead of its tool: `reason` `offline`, or "
    "`unreachable` with the error",
    "tool_call_start": "a tool call begins, with its args, action, action source and idempotency "
    "key",
    "tool_call_retry": "a transient failure is tried again (attempt, wait, error)",
    "tool_call_complete": "a tool call returns",
    "tool_call_error": "a tool call raises",
    "step_blocked": "a step was blocked (budget, allowlist, unregistered tool)",
    "step_skipped": "a step was skipped (a dependency did not end ok, or the plan halted)",
    "step_completed": "any step ends, with its status",
    "plan_completed": "the run ends, with its status and signals",
}
"""When each event type is emitted, in the words the reference of the trace prints."""


class TraceEvent(TypedDict):
    """One move of a run, as streamed on `stream_mode="custom"` and read back by `get_trace`.

    `seq` grows by one per event within a trace, across pauses, resumes and executions that
    share a `trace_id`. `ts` is ISO 8601 UTC. `step_id` and `tool` are `None` for plan-level
    events. `hash` chains the events of a graph's thread (`chain_hash`); events of
    `GovernanceMiddleware` carry none.
    """

    type: EventType
    trace_id: str
    seq: int
    ts: str
    step_id: str | None
    tool: str | None
    data: dict[str, Any]
    hash: NotRequired[str]


AUDIT_KEY_ENV = "PLANGATE_AUDIT_KEY"
"""The environment variable holding the key of the trace's hash chain. Set, every event's `hash`
is an HMAC-SHA-256 under it: someone who can edit the database, but does not hold the key,
cannot rewrite an event and compute the chain again."""


def audit_key(environ: Mapping[str, str] = os.environ) -> bytes | None:
    """The chain's key from `PLANGATE_AUDIT_KEY`, or `None` (plain SHA-256) when it is unset."""
    key = environ.get(AUDIT_KEY_ENV)
    return key.encode() if key else None


def chain_hash(previous: str, event: Mapping[str, Any], key: bytes | None = None) -> str:
    """The `hash` of `event`: SHA-256 (with `key`, HMAC-SHA-256) over the previous event's hash
    and the event's canonical JSON (sorted keys, no spaces, its own `hash` left out), as stored:
    redacted where the profile redacts.

    Examples:
        >>> event = {"type": "plan_created", "trace_id": "t", "seq": 0, "ts": "",
        ...          "step_id": None, "tool": None, "data": {}}
        >>> chain_hash("", event) == chain_hash("", {**event, "hash": "x"})
        True
    """
    body = {k: v for k, v in event.items() if k != "hash"}
    canonical = json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    message = previous.encode() + b"\n" + canonical.encode()
    if key is None:
        return hashlib.sha256(message).hexdigest()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


class Anchor(TypedDict):
    """A thread's trace head at one moment: its last event's `seq` (in `trace_id`) and `hash`."""

    thread_id: str
    run_id: str
    trace_id: str
    seq: int
    hash: str
    ts: str
    # Whether `signature` is an HMAC-SHA-256 under `PLANGATE_AUDIT_KEY`.
    signed: bool
    signature: NotRequired[str]


def anchor_signature(anchor: Anchor, key: bytes) -> str:
    """The HMAC-SHA-256 under `key` of `anchor`'s canonical JSON, its `signature` left out."""
    body = {k: v for k, v in anchor.items() if k != "signature"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


def make_anchor(
    *, thread_id: str, run_id: str, trace_id: str, seq: int, hash: str, ts: str, key: bytes | None
) -> Anchor:
    """An anchor of a thread's head, signed under `key` when there is one."""
    anchor: Anchor = {
        "thread_id": thread_id,
        "run_id": run_id,
        "trace_id": trace_id,
        "seq": seq,
        "hash": hash,
        "ts": ts,
        "signed": key is not None,
    }
    if key is not None:
        anchor["signature"] = anchor_signature(anchor, key)
    return anchor


# Redaction is linear in the length of a string. Python's `re` backtracks, and tries a pattern
# again at every offset where it failed: `[...]+@...` tried at each offset of a long word reads
# the rest of the word each time (40,000 letters took a second). So every pattern here either
# starts only where a word (or a run of the characters it reads) starts, or reads a bounded
# number of characters, or ends its match wherever its long repetition stops. All but the
# email's also start with a literal or a character class, which lets `re` skip ahead to where
# they could match (a `\b` or look-behind first makes it try every offset).


def _word_start(prefix: str) -> str:
    """`\\b` then `prefix`, spelt so that `re` can skip ahead to the prefix's first letter."""
    return f"{prefix}(?<!\\w{'.' * len(prefix)})"


def _numbers(alternatives: str, also: str = "") -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Patterns for numbers that start at a `+`, `(`, digit or one of `also`, with no word
    character before it: one for any text, and one for ASCII text, which `re` skips through
    faster (`\\d` is any Unicode digit, a slow test; in ASCII text `[0-9]` is the same)."""
    # A character inside a word starts nothing up to the word's end: skip the rest of a long
    # word in one step, rather than trying each of its digits.
    rest = rf"(?:(?<!\w.)(?:{alternatives})|(?<=\w.)\w{{16,}})"
    return re.compile(rf"[+(\d{also}]" + rest), re.compile(rf"[+(0-9{also}]" + rest)


# Bearer tokens and keys go first: they may hold digit runs that the number passes would split.
_BEARER = re.compile(r"[Bb](?<!\w.)(?i:earer)\s+[A-Za-z0-9._~+/=-]{8,}")
# A JWT: base64url header (`{"` is `eyJ`), payload, and a signature that may be empty. Not after
# `-`: the parts hold `-`, and a start at every `eyJ` of `eyJ-eyJ-...` would reread the rest.
_JWT = re.compile(r"eyJ(?<![\w-]...)[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# A key's body is one greedy run with nothing required after it. After a generic prefix it must
# hold a digit, which keeps "key-performance-..." out; the digit is looked for in its first 65
# characters only, so that each `key-` of `key-key-key-...` does not read the rest of the run.
_KEYS = re.compile(
    "|".join(
        [
            _word_start(prefix) + r"[-_](?=[A-Za-z_-]{0,64}\d)[A-Za-z0-9_-]{12,}"
            for prefix in ("sk", "pk", "rk", "api", "key")
        ]
        + [
            _word_start(prefix) + r"[-_][A-Za-z0-9_-]{12,}"
            for prefix in ("ghp", "gho", "ghs", "ghu", "ghr", "github_pat", "xoxa", "xoxb", "xoxp")
        ]
    )
)
_AWS_KEY = re.compile(_word_start("AKIA") + r"[0-9A-Z]{16}\b")
# An email starts only where a run of local-part characters starts. Two addresses glued together
# (`a@b.example-c@d.example`) then have no start for the second one, so it joins the match.
_LOCAL_PART = r"[A-Za-z0-9._%+-]+"
_DOMAIN = r"[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
_EMAIL = re.compile(rf"(?<![A-Za-z0-9._%+-]){_LOCAL_PART}@{_DOMAIN}(?:{_LOCAL_PART}@{_DOMAIN})*")
# Cards and national ids before phone numbers, so that a phone candidate left as it is (too few
# digits) cannot hold the start of one. Each alternative reads at most 19 digits and their
# separators; the empty group that ends it names what it found.
_IDS, _ASCII_IDS = _numbers(
    r"(?<=\d)(?:[ -]?\d){12,18}\b(?P<card>)"
    # An SSN written 3-2-4 with one kind of separator; a bare 9-digit number is `nine`, below.
    r"|(?<=\d)\d\d(?P<sep>[- ])\d\d(?P=sep)\d{4}\b(?P<ssn>)"
    r"|(?<=[A-Z])[A-Z]\d{6}[A-D]\b(?P<ni>)",  # a UK National Insurance number
    also="A-Z",
)
# A phone number candidate: digit groups with optional separators, not after a `-`, and not a
# date (2026-03-31, 31.03.2026), which a time would otherwise lengthen into one. Only candidates
# with enough digits are phone numbers (see `_phone_or_id`), so dates, amounts and order numbers
# stay readable.
_PHONES, _ASCII_PHONES = _numbers(
    r"(?<!-.)(?:(?<=\+)\(?\d|(?<=\()\d|(?<=\d)"
    r"(?!\d{3}(?P<ymd>[-./])\d\d(?P=ymd)\d\d\b|\d(?P<dmy>[-./])\d\d(?P=dmy)\d{4}\b))"
    r"\d{0,3}\)?(?:[ .-]?\(?\d{2,4}\)?){2,4}(?![\w-])(?P<phone>)"
    r"|(?<=\d)\d{8}\b(?P<nine>)"
)
_PHONE_SEPARATORS = str.maketrans("", "", "+(). -")
_PHONE_DIGITS = 10
_INTERNATIONAL_PHONE_DIGITS = 8
_SSN_DIGITS = 9
# What may stand right before a bare 9-digit number to make it an SSN or tax id: "SSN: ...",
# "tax id #...", "TIN ...". Looked for in the few characters before the number only.
_ID_LABEL = re.compile(
    r"(?i)\b(?:ssn|social security|tax(?:payer)?[ _-]?id|i?tin)"
    r"(?:[ _-]?(?:number|no\.?|#))?\W{0,3}\Z"
)
_ID_LABEL_REACH = 40
# Keys are compared in snake_case (`clientSecret`, `X-Api-Key` and `api key` become
# `client_secret`, `x_api_key`, `api_key`); the last word or two decide.
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")
# Keys whose whole value is a secret: `password`, `client_secret`, `access_token`, `api_key`,
# `session_id`, `set-cookie`, ... but not counters such as `max_tokens` or `token_count`.
_SECRET_KEYS = re.compile(
    r"(?:.*_)?(?:password|passwd|pwd|passphrase|secret|token|authorization|credentials?"
    r"|(?:api|private|secret|signing|encryption|access)_?key|session(?:_?id)?|cookies?)"
)
# Keys whose whole value is a national or tax id, whatever its shape: a bare 9-digit number
# under `ssn` is one, while elsewhere it may be an order number.
_ID_KEYS = re.compile(
    r"(?:.*_)?(?:ssn|social_security(?:_number|_no)?|tax(?:payer)?_?id|i?tin|ein"
    r"|national_id|ni_number|nino)"
)


def _card_or_id(match: re.Match[str]) -> str:
    kind = match.lastgroup
    return "[REDACTED_CARD]" if kind == "card" else "[REDACTED_ID]" if kind else match.group()


def _phone_or_id(match: re.Match[str]) -> str:
    text = match.group()
    kind = match.lastgroup
    if kind == "phone":
        needed = _INTERNATIONAL_PHONE_DIGITS if text.startswith("+") else _PHONE_DIGITS
        if len(text.translate(_PHONE_SEPARATORS)) >= needed:
            return "[REDACTED_PHONE]"
    # 9 digits in a row are a phone candidate (too short) or `nine`.
    if kind and len(text) == _SSN_DIGITS and text.isdigit():
        start = match.start()
        if _ID_LABEL.search(match.string, max(0, start - _ID_LABEL_REACH), start):
            return "[REDACTED_ID]"
    return text


def _redact_text(text: str) -> str:
    text = _BEARER.sub("Bearer [REDACTED_TOKEN]", text)
    text = _JWT.sub("[REDACTED_TOKEN]", text)
    # Cheap tests first, where they rule a pass out: each of `_KEYS` has a `-` or `_`, and the
    # email pattern is the one that `re` cannot skip ahead for.
    if "-" in text or "_" in text:
        text = _KEYS.sub("[REDACTED_KEY]", text)
    text = _AWS_KEY.sub("[REDACTED_KEY]", text)
    if "@" in text:
        text = _EMAIL.sub("[REDACTED_EMAIL]", text)
    ascii_only = text.isascii()
    text = (_ASCII_IDS if ascii_only else _IDS).sub(_card_or_id, text)
    return (_ASCII_PHONES if ascii_only else _PHONES).sub(_phone_or_id, text)


def _redact_key(key: str) -> tuple[str, str | None]:
    """`key` redacted, and the marker that replaces the whole value under it, if its name says
    what that value holds."""
    known = _PLAIN_KEYS.get(key)
    if known is not None:
        return key, known[0]
    name = _NOT_ALNUM.sub("_", _CAMEL.sub("_", key).lower()).strip("_")
    marker = (
        "[REDACTED_SECRET]"
        if _SECRET_KEYS.fullmatch(name)
        else "[REDACTED_ID]"
        if _ID_KEYS.fullmatch(name)
        else None
    )
    redacted = _redact_text(key)
    if redacted == key and len(_PLAIN_KEYS) < _PLAIN_KEYS_KEPT:
        _PLAIN_KEYS[key] = (marker,)
    return redacted, marker


# Most keys are the same few names, again and again: those that redaction leaves as they are
# (which therefore hold no PII it knows of) are remembered, up to a bound.
_PLAIN_KEYS: dict[str, tuple[str | None]] = {}
_PLAIN_KEYS_KEPT = 4096


def _redact_mapping(value: Mapping[Any, Any]) -> dict[Any, Any]:
    redacted: dict[Any, Any] = {}
    # Keys are redacted too; two that come out the same would otherwise lose an entry.
    suffixes: dict[str, int] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            redacted[key] = redact(item)
            continue
        new_key, marker = _redact_key(key)
        if new_key in redacted:
            base, number = new_key, suffixes.get(new_key, 1)
            while new_key in redacted:
                number += 1
                new_key = f"{base} #{number}"
            suffixes[base] = number
        redacted[new_key] = marker if marker and item is not None else redact(item)
    return redacted


REDACTION_MARKER = re.compile(r"\[REDACTED_[A-Z]+\]")
"""What every marker `redact` writes looks like: what an edit must not carry into a tool call
that the real args did not hold."""


def redact(value: Any) -> Any:
    """Return a copy of `value` with PII in strings replaced by `[REDACTED_*]` markers.

    In every string, dict keys included:

    - emails become `[REDACTED_EMAIL]`;
    - phone numbers (10 digits or more, or 8 after a leading `+`) `[REDACTED_PHONE]`;
    - card numbers (13 to 19 digits, maybe grouped by spaces or hyphens) `[REDACTED_CARD]`;
    - national ids `[REDACTED_ID]`: SSNs written 3-2-4 with hyphens or spaces (`123-45-6789`,
      `123 45 6789`) and UK National Insurance numbers. A bare 9-digit number is an SSN only
      right after a label (`SSN: 123456789`, `tax id 123456789`) or under an id-named key (see
      below): elsewhere it is as likely an order or invoice number, and stays readable;
    - API keys (`sk-...`, `ghp_...`, `xoxb-...`, `AKIA...`) `[REDACTED_KEY]`, bearer tokens
      `Bearer [REDACTED_TOKEN]` and JWTs (`eyJ...`, three dot-separated parts)
      `[REDACTED_TOKEN]`.

    Dates (with or without a time), ISO timestamps, amounts, UUIDs, version strings and order
    numbers of up to 9 digits stay readable; a longer run of digits reads as a phone or card
    number. Dicts, lists and tuples are walked. A value under a key that names a secret
    (`password`, `pwd`, `passphrase`, `client_secret`, `access_token`, `api_key`,
    `private_key`, `authorization`, `credentials`, `session`, `cookie`, ..., in any case or
    spelling: `clientSecret`, `X-Api-Key`) is replaced whole by `[REDACTED_SECRET]`, whatever
    its type; one under a key naming a national or tax id (`ssn`, `tax_id`, `tin`,
    `national_id`, ...) by `[REDACTED_ID]`. Counters such as `max_tokens` are not secrets. Two
    keys that redact to the same text are kept apart by a ` #2`, ` #3`, ... suffix. The time
    taken is linear in the size of `value`.

    Examples:
        >>> redact({"to": "ana@example.com", "note": "call +1 415 555 0100 before 2026-03-31"})
        {'to': '[REDACTED_EMAIL]', 'note': 'call [REDACTED_PHONE] before 2026-03-31'}
    """
    if isinstance(value, str):
        return _redact_text(value)
    if isinstance(value, Mapping):
        return _redact_mapping(value)
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
    *,
    failed_before_call: int = 0,
) -> dict[str, Any]:
    """The golden signals of a run.

    Args:
        statuses: The outcome status of every step.
        tool_latencies_ms: Duration of every tool call that ran.
        approval_waits_ms: Time from each approval request to its decision.
        budget_utilisation: Highest share of any budget tier used (0-1).
        failed_before_call: How many of the `error` steps ended before calling their tool (a
            reference their args could not resolve, args the tool's schema refused): they
            made no call, so they are counted apart from the failed calls.

    Returns:
        `success_rate` (ok steps / steps), `error_rate` (failed tool calls / tool calls, so
        at most 1), `failed_before_call`, `tool_latency_ms` (`p50`, `p95`, `max`),
        `approval_wait_ms` (`count`, `mean`, `max`) and `budget_utilisation`.

    Examples:
        >>> signals = golden_signals(["ok", "error", "error"], [12.0], [], 0.1,
        ...                          failed_before_call=2)
        >>> signals["error_rate"], signals["failed_before_call"]
        (0.0, 2)
    """
    statuses = list(statuses)
    latencies = sorted(tool_latencies_ms)
    waits = list(approval_waits_ms)
    calls = len(latencies)
    failed_calls = statuses.count("error") - failed_before_call
    return {
        "steps": len(statuses),
        "success_rate": round(statuses.count("ok") / len(statuses), 4) if statuses else 0.0,
        "error_rate": round(failed_calls / calls, 4) if calls else 0.0,
        "failed_before_call": failed_before_call,
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
    latency counts only when the tool ran, each decided approval its wait, and an `error` step
    whose tool never ran as failed before its call."""
    return golden_signals(
        [o["status"] for o in outcomes],
        [ms for ms in map(_call_ms, outcomes) if ms is not None],
        [o["approval"]["wait_ms"] for o in outcomes if o["approval"]],
        budget_utilisation,
        failed_before_call=sum(
            1 for o in outcomes if o["status"] == "error" and _call_ms(o) is None
        ),
    )


def _call_ms(outcome: Mapping[str, Any]) -> float | None:
    """How long the step's tool call took, or `None` when its tool never ran."""
    duration: float | None = outcome["duration_ms"]
    return duration if duration is not None and outcome["attempts"] else None
