"""Profiles: the rules a run is governed by (budgets, approvals, allowed tools, redaction)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import timedelta
from fnmatch import fnmatchcase
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from plangate._files import dotted, first_error, read_document
from plangate._kinds import Action, Order
from plangate.errors import ProfileError

__all__ = (
    "BUILTIN_PROFILES",
    "Budget",
    "PlanReview",
    "Profile",
    "RetryPolicy",
    "Risk",
    "ToolPolicy",
    "load_profile",
)

BUILTIN_PROFILES = ("enterprise", "smb", "technical")

Risk = Literal["low", "medium", "high"]
_RISK_LEVELS: tuple[Risk, ...] = ("low", "medium", "high")
_BASE_RISK: dict[str, int] = {"read": 0, "propose": 0, "execute": 1}
# Upper bounds for durations: beyond them a value is a mistake, and `.inf` or 1e300 would
# overflow the datetime arithmetic of a run that then could never finish.
_YEAR = 366 * 24 * 3600.0
_DAY = 24 * 3600.0
# More steps at once than any tool pool serves; each in-flight step holds a thread or a task.
_MAX_CONCURRENCY = 256
_MAX_APPROVERS = 10


class Budget(BaseModel):
    """Three budget tiers; `None` leaves a tier unlimited.

    Attributes:
        total_calls: Tool calls a run may make in all.
        calls_per_domain: Tool calls per domain (`crm.lookup` is in domain `crm`).
        calls_per_tool: Tool calls per tool name.
        warning_threshold: Share of a tier (0-1] whose crossing emits one `budget_warning`.
    """

    model_config = ConfigDict(extra="forbid", defer_build=True)

    total_calls: int | None = Field(default=None, ge=0)
    calls_per_domain: int | None = Field(default=None, ge=0)
    calls_per_tool: int | None = Field(default=None, ge=0)
    warning_threshold: float = Field(default=0.8, gt=0, le=1)


class RetryPolicy(BaseModel):
    """How often a tool call that failed with a transient error is tried again, and how long to
    wait between tries: exponential backoff with jitter.

    Transient errors: timeouts, connection errors, and errors carrying an HTTP status of 429 or
    5xx (`exc.status_code` or `exc.response.status_code`). Anything else fails at once.

    Attributes:
        max_attempts: Tries in all, the first included; 1 never retries.
        initial_backoff_seconds: The wait before the second try.
        backoff_multiplier: Each wait is this many times the one before.
        max_backoff_seconds: No wait is longer.
        jitter: Wait a random time between half and all of the backoff, so that many runs
            failing together do not retry in step.
    """

    model_config = ConfigDict(extra="forbid", defer_build=True)

    max_attempts: int = Field(default=1, ge=1, le=100)
    initial_backoff_seconds: float = Field(default=0.5, ge=0, le=_DAY, allow_inf_nan=False)
    backoff_multiplier: float = Field(default=2.0, ge=1, le=100, allow_inf_nan=False)
    max_backoff_seconds: float = Field(default=30.0, ge=0, le=_DAY, allow_inf_nan=False)
    jitter: bool = True

    def backoff(self, attempt: int, draw: float) -> float:
        """Seconds to wait after failed try number `attempt` (1-based); `draw` is uniform in
        [0, 1) and only matters with jitter."""
        base = min(
            self.max_backoff_seconds,
            self.initial_backoff_seconds * self.backoff_multiplier ** (attempt - 1),
        )
        return base * (0.5 + draw / 2) if self.jitter else base


class ToolPolicy(BaseModel):
    """Overrides for the tools whose names match a pattern in `Profile.tool_policies`.

    Attributes:
        timeout_seconds: Per-call timeout for these tools.
        retry: Retry policy for these tools.
    """

    model_config = ConfigDict(extra="forbid", defer_build=True)

    timeout_seconds: float | None = Field(default=None, gt=0, le=_DAY, allow_inf_nan=False)
    retry: RetryPolicy | None = None


class PlanReview(BaseModel):
    """One review of the whole plan before any step runs (`Profile.plan_review`).

    Attributes:
        covers: The highest risk the review approves for good: an approved review pre-approves
            every step at or below it that would ask; steps above it, steps that need several
            approvers (`approvals_required`) and tools in `approval_required_tools` still ask
            on their own.
    """

    model_config = ConfigDict(extra="forbid", defer_build=True)

    covers: Risk = "medium"


class Profile(BaseModel):
    """The governance rules of a run.

    Load a built-in with `load_profile("enterprise")` or a YAML/JSON file with
    `load_profile("path/to/profile.yaml")`; `Profile.model_dump(mode="json")` written back to a
    file loads again unchanged.

    Attributes:
        name: Shown in traces and the CLI.
        description: What the profile is for, in a line, for the people who read the file.
        budget: The three budget tiers.
        require_approval: Actions that wait for a human decision.
        tool_actions: Glob pattern -> `read` / `propose` / `execute`: the action of the tools
            whose names match, whatever they declare themselves (the first matching pattern
            wins). A plan may raise a call's action, never lower it (see `plangate.actions`).
        approval_required_tools: Glob patterns of tools that always wait for a decision.
        approval_timeout_seconds: How long an approval request stays valid (default 24 h, at
            most a year).
        allowed_tools: Glob patterns of tools that may run at all; others are `blocked`.
        irreversible_tools: Glob patterns of tools whose effects cannot be undone (raises risk).
            An irreversible call always waits for a person, under every profile, unless its
            tool is named in `irreversible_exempt`.
        irreversible_exempt: Tools, each by its exact name (no patterns), whose irreversible
            calls may run without a person when nothing else in the profile makes them ask: a
            deliberate, visible exception to "irreversible means a person".
        sensitive_domains: Domains whose calls carry one more level of risk.
        on_error: `continue` past a failing tool, or `halt` the plan.
        on_reject: `skip` a rejected step and go on, or `halt` the plan.
        on_expiry: What an approval nobody gave in time does: `skip` ends just that step
            `expired` and goes on, `halt` also skips every step not started (the run says the
            step was not approved in time); `None` (the default) does as `on_reject` says.
        redact: Redact PII (emails, phones, cards, national ids, keys) in trace data.
        timeout_seconds: Per-call timeout for every tool (at most a day), or `None` for none.
        retry: Retry policy for every tool (default: no retries).
        tool_policies: Glob pattern -> `ToolPolicy`, overriding the timeout or retry policy for
            matching tools; the first matching pattern wins.
        offline: Call every tool's mock (`build_graph(mocks=...)`) instead of the tool; a tool
            without a mock is blocked.
        mock_fallback: When a tool fails with a connection error or a timeout (after its
            retries), call its mock instead.
        max_concurrency: How many ready steps (their dependencies ended `ok`) run at once
            (default 16: a layer of 16 waiting calls in one go); `1` runs the steps one at a
            time, in plan order. It is not part of the `fingerprint`: a paused run goes on
            under another concurrency.
        approvals_required: Risk level -> how many people must approve a call at that risk
            before it runs (default 1; at most 10): `{high: 2}` is four eyes on high risk.
            Each `approve` or `edit` must name a different approver; one `reject` ends it.
        plan_review: `{covers: medium}` makes each run pause once, before any step runs, for a
            person to review the whole plan (`PlanReview`); off by default.
        telemetry: `otel` turns each run into an OpenTelemetry trace, through the global
            tracer provider (`plangate.telemetry`; needs `plangate[otel]`).
        capture_content: Record content on the spans: the goal, tool args and outputs, and
            failure messages (redacted as the trace is); off by default.
        order: The order plans run in unless a plan asks for `dependencies` (`plangate.plan.
            Order`): `listed` (the default) keeps the list's order of effects.
        identity_required: A decision on a request at or above this risk needs a verified
            identity (OpenID Connect, a plangate token, LangGraph's auth): an unverified one
            is refused, through every door; `None` (the default): names as typed do.
        approvers: Who may decide what: a risk level (that risk and above) or a tool glob ->
            who may decide such requests, as `group:NAME` or a subject, name or email. Every
            rule that applies to a request must name the person; only a verified identity is
            named by any. The plan review obeys the rules of every step it shows.
        self_approval: `forbidden`: the person who started a run may not approve, edit or
            answer its requests (they may reject them); `allowed` (the default, but
            `enterprise`'s).
    """

    model_config = ConfigDict(extra="forbid", defer_build=True)

    name: str = "custom"
    description: str = ""
    budget: Budget = Field(default_factory=Budget)
    require_approval: list[Action] = Field(default_factory=list)
    tool_actions: dict[str, Action] = Field(default_factory=dict)
    approval_required_tools: list[str] = Field(default_factory=list)
    approval_timeout_seconds: float = Field(default=_DAY, gt=0, le=_YEAR, allow_inf_nan=False)
    allowed_tools: list[str] = Field(default_factory=lambda: ["*"])
    irreversible_tools: list[str] = Field(default_factory=list)
    sensitive_domains: list[str] = Field(default_factory=list)
    on_error: Literal["continue", "halt"] = "continue"
    on_reject: Literal["skip", "halt"] = "skip"
    on_expiry: Literal["skip", "halt"] | None = None
    redact: bool = True
    timeout_seconds: float | None = Field(default=None, gt=0, le=_DAY, allow_inf_nan=False)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    tool_policies: dict[str, ToolPolicy] = Field(default_factory=dict)
    offline: bool = False
    mock_fallback: bool = False
    max_concurrency: int = Field(default=16, ge=1, le=_MAX_CONCURRENCY)
    approvals_required: dict[Risk, Annotated[int, Field(ge=1, le=_MAX_APPROVERS)]] = Field(
        default_factory=dict
    )
    plan_review: PlanReview | None = None
    telemetry: Literal["otel"] | None = None
    capture_content: bool = False
    irreversible_exempt: list[str] = Field(default_factory=list)
    order: Order = "listed"
    identity_required: Risk | None = None
    approvers: dict[str, list[str]] = Field(default_factory=dict)
    self_approval: Literal["allowed", "forbidden"] = "allowed"

    @field_validator("irreversible_exempt")
    @classmethod
    def _exact_names(cls, names: list[str]) -> list[str]:
        patterns = [name for name in names if any(c in name for c in "*?[")]
        if patterns:
            raise ValueError(
                f"{patterns[0]!r} is a pattern: name each exempt tool exactly, so that no tool "
                "added later runs irreversible calls unasked"
            )
        return names

    @property
    def approval_timeout(self) -> timedelta:
        return timedelta(seconds=self.approval_timeout_seconds)

    @property
    def expiry_policy(self) -> Literal["skip", "halt"]:
        """What an expired approval does to the plan: `on_expiry`, else `on_reject`."""
        return self.on_expiry or self.on_reject

    def allows(self, tool: str) -> bool:
        """Whether the allowlist lets `tool` run."""
        return _matches(tool, self.allowed_tools)

    def needs_approval(self, tool: str, action: Action, *, irreversible: bool) -> bool:
        """Whether a call of `tool` with `action` waits for a human decision: the profile asks
        for the action or the tool, or the call cannot be undone and the tool is not exempt."""
        return (
            action in self.require_approval
            or _matches(tool, self.approval_required_tools)
            or (irreversible and not self.is_irreversible_exempt(tool))
        )

    def is_irreversible_exempt(self, tool: str) -> bool:
        """Whether the profile names `tool` in `irreversible_exempt`."""
        return tool in self.irreversible_exempt

    def review_covers(self, tool: str, risk: Risk) -> bool:
        """Whether an approved plan review stands for the approval of a call of `tool` at
        `risk`: only where one person's approval would do, and the tool is not one that always
        waits for its own decision."""
        review = self.plan_review
        return (
            review is not None
            and _RISK_LEVELS.index(risk) <= _RISK_LEVELS.index(review.covers)
            and self.approvals_needed(risk) == 1
            and not _matches(tool, self.approval_required_tools)
        )

    def needs_identity(self, risk: Risk) -> bool:
        """Whether a decision at `risk` needs a verified identity (`identity_required`)."""
        required = self.identity_required
        return required is not None and _RISK_LEVELS.index(risk) >= _RISK_LEVELS.index(required)

    def approver_rules(self, tool: str | None, risk: Risk) -> list[tuple[str, list[str]]]:
        """The `approvers` rules that apply to a decision on a call of `tool` at `risk`: each
        (its key, who it names)."""
        return [
            (key, names)
            for key, names in self.approvers.items()
            if (
                _RISK_LEVELS.index(risk) >= _RISK_LEVELS.index(key)
                if key in _RISK_LEVELS
                else tool is not None and fnmatchcase(tool, key)
            )
        ]

    def approvals_needed(self, risk: Risk) -> int:
        """How many different people must approve a call at `risk`."""
        return self.approvals_required.get(risk, 1)

    def call_policy(self, tool: str) -> tuple[float | None, RetryPolicy]:
        """The timeout and retry policy for calls of `tool`."""
        for pattern, policy in self.tool_policies.items():
            if fnmatchcase(tool, pattern):
                return (
                    policy.timeout_seconds or self.timeout_seconds,
                    policy.retry or self.retry,
                )
        return self.timeout_seconds, self.retry

    def is_irreversible(self, tool: str) -> bool:
        """Whether the profile names `tool` irreversible (a tool may also declare itself so)."""
        return _matches(tool, self.irreversible_tools)

    def risk(self, action: Action, *, irreversible: bool, domains: Iterable[str]) -> Risk:
        """`read`/`propose` start low and `execute` medium; an irreversible call, and a call in
        any sensitive domain of `domains`, each add a level."""
        level = _BASE_RISK[action]
        if irreversible:
            level += 1
        if any(domain in self.sensitive_domains for domain in domains):
            level += 1
        return _RISK_LEVELS[min(level, len(_RISK_LEVELS) - 1)]

    @property
    def fingerprint(self) -> str:
        """The first 16 hex digits of the SHA-256 of the profile's canonical JSON: a run records
        the one it started under, and an approval is bound to it (the same name with other
        rules is another profile). Short, since every checkpoint of a run carries it."""
        fields = self.model_dump(mode="json")
        # How many calls run at once is not governance: a run goes on at any concurrency. It is
        # hashed as the default it had when runs were first bound to fingerprints, so that the
        # default could change and every run paused before still goes on.
        fields["max_concurrency"] = _FINGERPRINTED_CONCURRENCY
        # Fields added since runs were first paused leave the fingerprint as it was when they
        # are unset (they change nothing then): runs paused before them still go on.
        for name in _LATER_FIELDS:
            if fields[name] == type(self).model_fields[name].get_default(call_default_factory=True):
                del fields[name]
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


_FINGERPRINTED_CONCURRENCY = 8

_LATER_FIELDS = (
    "on_expiry",
    "approvals_required",
    "plan_review",
    "telemetry",
    "capture_content",
    "irreversible_exempt",
    "order",
    "identity_required",
    "approvers",
    "self_approval",
)


def _matches(tool: str, patterns: list[str]) -> bool:
    return any(fnmatchcase(tool, pattern) for pattern in patterns)


def load_profile(name_or_path: str | Path | Profile) -> Profile:
    """Load a built-in profile by name, or a profile file (YAML or JSON).

    Args:
        name_or_path: `enterprise`, `smb`, `technical`, a path, or a `Profile` (returned as is).

    Raises:
        ProfileError: The name is unknown, or the file is missing or invalid; the message names
            the offending field.

    Examples:
        >>> load_profile("smb").require_approval
        ['execute']
    """
    if isinstance(name_or_path, Profile):
        return name_or_path
    name = str(name_or_path)
    if name in BUILTIN_PROFILES:
        text = resources.files(__package__).joinpath(f"{name}.yaml").read_text(encoding="utf-8")
        return _validate(yaml.safe_load(text), source=f"built-in profile {name!r}")
    if not Path(name).is_file():
        raise ProfileError(
            f"unknown profile {name!r}",
            hint=f"use one of {', '.join(BUILTIN_PROFILES)} or the path of a YAML/JSON file",
        )
    try:
        data = read_document(name, what="profile")
    except ValueError as exc:
        raise ProfileError(str(exc)) from None
    return _validate(data, source=f"profile file {name!r}")


def _validate(data: Any, *, source: str) -> Profile:
    if data is None:  # an empty file: every field is optional
        data = {}
    if not isinstance(data, dict):
        raise ProfileError(f"{source}: expected a mapping of profile fields")
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        loc, msg = first_error(exc)
        raise ProfileError(f"{source}: {dotted(loc)}: {msg}", field=dotted(loc)) from None
