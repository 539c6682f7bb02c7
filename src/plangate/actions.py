"""Where the action of a call comes from: trusted sources only, never the plan alone.

A plan is written by an LLM, and an LLM can be steered by what it reads, so a plan may raise the
governance of a call but never lower it. The *trusted action* of a tool comes from, first match
wins:

1. the profile's `tool_actions` (glob pattern -> action), the operator's word;
2. the tool's own declaration, `BaseTool.metadata["plangate"]` (set it with `declare_action`);
3. MCP tool annotations (`readOnlyHint: true` -> `read`, otherwise `execute`;
   `destructiveHint: true` also makes the tool irreversible), as the MCP adapter and
   langchain-mcp-adapters put them in `BaseTool.metadata`;
4. nothing: `execute`, since a tool nobody classified may change the world.

The OpenAPI adapter declares each operation's tool from its HTTP method (source `openapi`). A
step's *effective action* is the higher of the trusted action and the plan's `action`
(`read` < `propose` < `execute`); irreversibility comes from the profile or the tool only, and
an irreversible call waits for a person under every profile unless the profile exempts its tool
by name (`Profile.irreversible_exempt`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Literal, TypeVar, get_args, overload

from langchain_core.tools import BaseTool

from plangate.errors import PlangateUsageError
from plangate.plan import Action, PlanStep, tool_domain
from plangate.profiles import Profile, Risk

__all__ = (
    "ACTIONS",
    "ActionSource",
    "StepPolicy",
    "ToolDeclaration",
    "declare_action",
    "step_policy",
    "tool_declaration",
)

ACTIONS: tuple[Action, ...] = get_args(Action)
"""The actions from the least to the most consequential."""

ActionSource = Literal["profile", "tool", "mcp", "openapi", "default", "plan"]
"""Who said what a call does: the profile's `tool_actions`, the tool's own declaration, its MCP
annotations, its OpenAPI method, nobody (`default`: `execute`), or the plan raising it."""

METADATA_KEY = "plangate"
"""The key of `BaseTool.metadata` holding a tool's declaration."""
_DECLARED_BY = ("tool", "mcp", "openapi")
_DECLARATION_ATTR = "__plangate__"
# The MCP `ToolAnnotations` hints, as langchain-mcp-adapters copies them into `metadata`.
_MCP_HINTS = ("readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint")

_T = TypeVar("_T", bound="BaseTool | Callable[..., Any]")


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolDeclaration:
    """What a trusted source says a tool does."""

    action: Action
    irreversible: bool
    source: ActionSource


@dataclass(frozen=True, slots=True, kw_only=True)
class StepPolicy:
    """How one step is governed, worked out from trusted sources and the plan.

    Attributes:
        action: The effective action: the higher of the trusted one and the plan's.
        source: Where `action` came from (`plan` when the plan raised it).
        trusted: The tool's trusted action.
        lowered: The plan's action when it asked for less than the trusted one (recorded in a
            `policy_override` event), else `None`.
        irreversible: Whether the call cannot be undone (profile or tool).
        risk: The call's risk under the profile.
        needs_approval: Whether the call waits for a human decision.
        exempt: The call is irreversible, yet the profile exempts its tool by name
            (`irreversible_exempt`) from the person every irreversible call waits for.
    """

    action: Action
    source: ActionSource
    trusted: Action
    lowered: Action | None
    irreversible: bool
    risk: Risk
    needs_approval: bool
    exempt: bool = False


@overload
def declare_action(tool: _T, *, action: Action, irreversible: bool = False) -> _T: ...
@overload
def declare_action(
    tool: None = None, *, action: Action, irreversible: bool = False
) -> Callable[[_T], _T]: ...
def declare_action(
    tool: _T | None = None, *, action: Action, irreversible: bool = False
) -> _T | Callable[[_T], _T]:
    """Declare what a tool does, as its author knows it: plangate trusts this over any plan.

    Works on a LangChain `BaseTool` (sets `metadata["plangate"]`) and on a plain function
    (registered later by `build_graph`), directly or as a decorator; returns what it was given.

    Args:
        tool: The tool or function; leave it out to use `declare_action(...)` as a decorator.
        action: `read` (no side effect), `propose` (a draft a person will see) or `execute`
            (changes the world).
        irreversible: Its effects cannot be undone (raises its risk).

    Raises:
        PlangateUsageError: `action` is not one of `read`, `propose`, `execute`.

    Examples:
        >>> @declare_action(action="read")
        ... def lookup(account: str) -> dict:
        ...     return {"account": account}
        >>> lookup.__plangate__
        {'action': 'read', 'irreversible': False}
    """
    declaration = {"action": _checked(action, "declare_action"), "irreversible": irreversible}

    def mark(target: _T) -> _T:
        if isinstance(target, BaseTool):
            target.metadata = {**(target.metadata or {}), METADATA_KEY: dict(declaration)}
        elif callable(target):
            setattr(target, _DECLARATION_ATTR, dict(declaration))
        else:
            raise PlangateUsageError(
                f"declare_action: cannot declare {target!r}",
                hint="pass a LangChain BaseTool or a function",
            )
        return target

    return mark if tool is None else mark(tool)


def function_declaration(function: Callable[..., Any]) -> dict[str, Any] | None:
    """The declaration `declare_action` left on a plain function, for its tool's metadata."""
    found = getattr(function, _DECLARATION_ATTR, None)
    return dict(found) if isinstance(found, Mapping) else None


def tool_declaration(tool: BaseTool) -> ToolDeclaration | None:
    """What `tool` says of itself: its `metadata["plangate"]`, else its MCP annotations.

    Raises:
        PlangateUsageError: `metadata["plangate"]` names an unknown action.
    """
    metadata = tool.metadata or {}
    declared = metadata.get(METADATA_KEY)
    if isinstance(declared, Mapping) and "action" in declared:
        source = declared.get("source", "tool")
        return ToolDeclaration(
            action=_checked(declared["action"], f"tool {tool.name!r}"),
            irreversible=bool(declared.get("irreversible", False)),
            source=source if source in _DECLARED_BY else "tool",
        )
    if any(hint in metadata for hint in _MCP_HINTS):
        read_only = metadata.get("readOnlyHint") is True
        return ToolDeclaration(
            action="read" if read_only else "execute",
            irreversible=not read_only and metadata.get("destructiveHint") is True,
            source="mcp",
        )
    return None


def trusted_declaration(
    name: str, declared: ToolDeclaration | None, profile: Profile, *, default: Action = "execute"
) -> ToolDeclaration:
    """The trusted action of tool `name`: the profile's `tool_actions`, else what the tool
    declared, else `default` (`execute`: fail closed). Irreversible when the profile or the tool
    says so."""
    irreversible = profile.is_irreversible(name) or bool(declared and declared.irreversible)
    for pattern, action in profile.tool_actions.items():
        if fnmatchcase(name, pattern):
            return ToolDeclaration(action=action, irreversible=irreversible, source="profile")
    if declared is not None:
        return ToolDeclaration(
            action=declared.action, irreversible=irreversible, source=declared.source
        )
    return ToolDeclaration(action=default, irreversible=irreversible, source="default")


def step_policy(step: PlanStep, trusted: ToolDeclaration, profile: Profile) -> StepPolicy:
    """How `step` is governed: the plan's `action` may raise the trusted one, never lower it.
    The domain is the step's own, which a plan cannot choose (`PlanStep.domain`)."""
    asked = step.action
    raised = asked is not None and ACTIONS.index(asked) > ACTIONS.index(trusted.action)
    action: Action = asked if raised and asked is not None else trusted.action
    return StepPolicy(
        action=action,
        source="plan" if raised else trusted.source,
        trusted=trusted.action,
        lowered=asked
        if asked is not None and ACTIONS.index(asked) < ACTIONS.index(action)
        else None,
        irreversible=trusted.irreversible,
        risk=profile.risk(
            action,
            irreversible=trusted.irreversible,
            # The step's domain is the tool's in a plan; code governing calls itself may group
            # tools into another (`GovernanceMiddleware(domains=...)`), which can only add risk.
            domains=(tool_domain(step.tool), step.domain or ""),
        ),
        needs_approval=profile.needs_approval(step.tool, action, irreversible=trusted.irreversible),
        exempt=trusted.irreversible and profile.is_irreversible_exempt(step.tool),
    )


def declaration_digest(name: str, tool: BaseTool | None, trusted: ToolDeclaration) -> str:
    """16 hex digits of SHA-256 over what a tool says of itself where it matters to governance:
    the trusted action, irreversibility and their source, its own declaration and MCP
    annotations, and the arguments it takes. A plan review binds each covered step to it, so that
    a tool redeclared before the step runs (an edited module, a deploy, a server upgrade) makes
    the step ask on its own."""
    metadata = (tool.metadata or {}) if tool is not None else {}
    try:
        schema: Any = tool.args if tool is not None else None
    except Exception:  # a tool whose schema cannot be built: its absence is what is bound
        schema = None
    canonical = json.dumps(
        {
            "tool": name,
            "action": trusted.action,
            "irreversible": trusted.irreversible,
            "source": trusted.source,
            "declared": {k: metadata[k] for k in (METADATA_KEY, *_MCP_HINTS) if k in metadata},
            "args": schema,
        },
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _checked(action: Any, where: str) -> Action:
    if action not in ACTIONS:
        raise PlangateUsageError(
            f"{where}: unknown action {action!r}", hint=f"use one of {', '.join(ACTIONS)}"
        )
    return action  # type: ignore[no-any-return]
