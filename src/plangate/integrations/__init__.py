"""Integrations: plangate inside other people's agents.

`as_tool` makes the governed graph one LangChain tool that an agent calls with a whole plan.
`GovernanceMiddleware` (module `middleware`) applies a plangate profile to a LangChain agent's
own tool calls; it needs `langchain` (the `plangate[langchain]` extra), so it is imported on
first use and this package works without it. `langgraph_server` is the graph LangGraph's own
server serves (`langgraph.json` names it); it builds that graph when imported, so only the server
imports it.
"""

import importlib
from typing import Any

from plangate.integrations.as_tool import as_tool, summarize_result

# The middleware module's public names, imported from it on first use.
_MIDDLEWARE = ("CallTicket", "GovernanceCounters", "GovernanceMiddleware", "GovernanceState")


def __getattr__(name: str) -> Any:
    if name in _MIDDLEWARE:
        try:
            middleware = importlib.import_module("plangate.integrations.middleware")
        except ImportError as exc:
            raise ImportError(
                f"{name} needs langchain: install plangate's `langchain` extra "
                "(from a checkout: pip install '.[langchain]')"
            ) from exc
        return getattr(middleware, name)
    raise AttributeError(f"module 'plangate.integrations' has no attribute {name!r}")


__all__ = (
    "CallTicket",
    "GovernanceCounters",
    "GovernanceMiddleware",
    "GovernanceState",
    "as_tool",
    "summarize_result",
)
