"""What an agent's tool call is governed as: its action, its budget domain, its policy (part of
the integrations: `GovernanceMiddleware`).

The agent's model names a tool and its args and nothing more, so every rule comes from trusted
sources: the operator's `actions` and `domains` patterns, the profile, and what each tool
declares of itself, noted as the model is called (see `GovernanceMiddleware` for the order).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, get_args

from langchain_core.tools import BaseTool

from plangate.actions import (
    StepPolicy,
    ToolDeclaration,
    step_policy,
    tool_declaration,
    trusted_declaration,
)
from plangate.errors import PlangateUsageError
from plangate.plan import Action, PlanStep
from plangate.profiles import Profile, load_profile

__all__ = ("CallRules",)

_ACTIONS: tuple[str, ...] = get_args(Action)


class CallRules:
    """The action and domain of each tool, from the operator's patterns, the profile and the
    tools' own declarations.

    Attributes:
        profile: The profile, loaded.

    Raises:
        PlangateUsageError: An action in `actions` or `default_action` is not one of
            `read`, `propose`, `execute`.
        ProfileError: The profile is unknown or invalid.
    """

    def __init__(
        self,
        profile: str | Path | Profile,
        *,
        actions: Mapping[str, Action],
        default_action: Action,
        domains: Mapping[str, str],
    ) -> None:
        for pattern, action in [*actions.items(), ("default_action", default_action)]:
            if action not in _ACTIONS:
                raise PlangateUsageError(
                    f"GovernanceMiddleware: {pattern!r}: unknown action {action!r}",
                    hint=f"use one of {', '.join(_ACTIONS)}",
                )
        self.profile = load_profile(profile)
        # The operator's `actions` come before the profile's own `tool_actions`.
        self._rules = self.profile.model_copy(
            update={"tool_actions": {**actions, **self.profile.tool_actions}}
        )
        self._default_action: Action = default_action
        # What each of the agent's tools declares, noted as the model is called.
        self._declared: dict[str, ToolDeclaration | None] = {}
        self._domains = dict(domains)

    def note_tools(self, tools: Sequence[BaseTool | dict[str, Any]]) -> None:
        """Note what each tool declares of itself, the first time it is seen."""
        for tool in tools:
            if isinstance(tool, BaseTool) and tool.name not in self._declared:
                self._declared[tool.name] = tool_declaration(tool)

    def action_of(self, tool: str) -> Action:
        """The action a call of `tool` is governed as."""
        return self._trusted(tool).action

    def domain_of(self, tool: str) -> str:
        """The budget domain of `tool`: the first matching pattern's, else its name's prefix."""
        return next(
            (domain for pattern, domain in self._domains.items() if fnmatchcase(tool, pattern)),
            tool.split(".", 1)[0],
        )

    def policy(self, step: PlanStep) -> StepPolicy:
        """How the profile governs `step`: its action, risk and whether it needs approval."""
        return step_policy(step, self._trusted(step.tool), self.profile)

    def _trusted(self, tool: str) -> ToolDeclaration:
        return trusted_declaration(
            tool, self._declared.get(tool), self._rules, default=self._default_action
        )
