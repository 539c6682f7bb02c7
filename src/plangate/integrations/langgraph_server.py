"""Integrations: the plangate graph as LangGraph's own server serves it (`langgraph dev`,
`langgraph.json`).

`langgraph.json` names `plangate.integrations.langgraph_server:graph`. The server imports this
module once at startup, so a bad setting stops the server there, with one line naming the
variable, rather than failing the first run. Two environment variables configure it:

- `PLANGATE_PROFILE`: `enterprise`, `smb` (the default), `technical`, or a profile file's path.
- `PLANGATE_OUTBOX`: the SQLite file the demo toolkit's `email.send` writes to
  (default `plangate-outbox.db` in the server's working directory).

The graph is compiled without a checkpointer: for each run the server uses a copy of it that
carries the server's own checkpointer and store. That copy is still a `PlangateGraph` with a
checkpointer, so a plan and a resume decision are validated before LangGraph stores them, as
in-process: a bad one fails that run with a message naming the problem, and a paused run stays
paused, ready for a correct decision.

Example:
    >>> from plangate.integrations.langgraph_server import graph_from_env
    >>> graph_from_env({"PLANGATE_PROFILE": "technical", "PLANGATE_OUTBOX": "/tmp/o.db"}).name
    'plangate'
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, cast

from langchain_core.runnables import RunnableConfig

from plangate.adapters import demo_toolkit
from plangate.errors import PlangateUsageError, ProfileError
from plangate.graph import build_graph
from plangate.profiles import load_profile
from plangate.runs.guarded_graph import PlangateGraph

__all__ = (
    "DEFAULT_OUTBOX",
    "DEFAULT_PROFILE",
    "OUTBOX_ENV",
    "PROFILE_ENV",
    "ServedPlangateGraph",
    "graph",
    "graph_from_env",
)

PROFILE_ENV = "PLANGATE_PROFILE"
OUTBOX_ENV = "PLANGATE_OUTBOX"
DEFAULT_PROFILE = "smb"
DEFAULT_OUTBOX = "plangate-outbox.db"


class ServedPlangateGraph(PlangateGraph):
    """A `PlangateGraph` whose usage errors reach the server's clients with their message.

    langgraph-api passes an exception's message on to clients only for a few built-in types
    (`ValueError` among them); any other becomes "An internal error occurred". So a
    `PlangateUsageError` (a bad plan, a bad decision, a resume of a run that waits for nothing)
    leaves this graph as a `ValueError` of the same class name and message, caused by the
    original. (`PlangateUsageError` itself cannot be a `ValueError`: pydantic would swallow the
    ones plan validation raises inside its validators.)
    """

    def stream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[Any]:
        try:
            yield from super().stream(input, config, **kwargs)
        except PlangateUsageError as exc:
            raise _for_clients(exc) from exc

    async def astream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        try:
            async for chunk in super().astream(input, config, **kwargs):
                yield chunk
        except PlangateUsageError as exc:
            raise _for_clients(exc) from exc


# One `ValueError` subclass per plangate error class, by name, made the first time one is raised.
_CLIENT_ERRORS: dict[str, type[ValueError]] = {}


def _for_clients(exc: PlangateUsageError) -> ValueError:
    name = type(exc).__name__
    error = _CLIENT_ERRORS.get(name)
    if error is None:
        made = type(name, (ValueError,), {"__module__": __name__, "__doc__": type(exc).__doc__})
        error = _CLIENT_ERRORS.setdefault(name, cast("type[ValueError]", made))
    return error(str(exc))


def graph_from_env(environ: Mapping[str, str] | None = None) -> ServedPlangateGraph:
    """Build the served graph: the demo toolkit under the profile the environment names.

    Args:
        environ: Where to read `PLANGATE_PROFILE` and `PLANGATE_OUTBOX`; `os.environ` if `None`.

    Returns:
        A `ServedPlangateGraph` without a checkpointer (the server provides one).

    Raises:
        ProfileError: `PLANGATE_PROFILE` names no built-in profile and no valid profile file;
            the message starts with the variable and its value.
    """
    env = os.environ if environ is None else environ
    profile_name = env.get(PROFILE_ENV) or DEFAULT_PROFILE
    try:
        profile = load_profile(profile_name)
    except ProfileError as exc:
        raise ProfileError(
            f"{PROFILE_ENV}={profile_name!r}: {exc.message}", field=exc.field, hint=exc.hint
        ) from None
    outbox = env.get(OUTBOX_ENV) or DEFAULT_OUTBOX
    built = build_graph(demo_toolkit(outbox), profile=profile, checkpointer=None)
    # The same attributes, so the same graph; only the class differs (as `Pregel.copy` does).
    return ServedPlangateGraph(**{k: v for k, v in built.__dict__.items() if k != "__orig_class__"})


graph = graph_from_env()
