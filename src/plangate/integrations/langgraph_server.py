"""Integrations: the plangate graph as LangGraph's own server serves it (`langgraph dev`,
`langgraph.json`).

`langgraph.json` names `plangate.integrations.langgraph_server:graph` (`plangate init` writes
one beside the project file). The server imports this module once at startup, so a bad setting
stops the server there, with one line naming the file or variable, rather than failing the first
run. It serves a project's graph:

- `PLANGATE_PROJECT`: the project file (or its folder); default: the `plangate.yaml` of the
  server's working folder or its nearest parent, else the built-in demo in that folder.
- `PLANGATE_PROFILE`: a profile of the project's, a built-in, or a profile file's path; default:
  the project's `profile`.

The project's MCP servers and OpenAPI documents are reached when a run first needs one of their
tools, not at startup.

The same `langgraph.json` names `plangate.integrations.langgraph_server.checkpointer` as the
server's checkpointer: the served project's database (its `db`), opened once per event loop of
the server and closed when the server stops. So the runs the server starts are kept where
plangate's CLI and inbox read runs: `plangate pending`, `runs`, `show`, `approve` and the inbox
see and decide them. (Without that key the server keeps runs in its own store, which plangate
never reads.) The path is dotted, not `module:name`: langgraph-api loads a checkpointer by
splitting its module path at the last dot.

The graph is compiled without a checkpointer: for each run the server uses a copy of it that
carries the server's checkpointer and store. That copy is still a `PlangateGraph` with a
checkpointer, so a plan and a resume decision are validated before LangGraph stores them, as
in-process: a bad one fails that run with a message naming the problem, and a paused run stays
paused, ready for a correct decision.

Examples:
    >>> from plangate.integrations.langgraph_server import graph_from_env
    >>> graph_from_env({"PLANGATE_PROFILE": "technical"}).name
    'plangate'
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver

from plangate.errors import PlangateUsageError, ProfileError
from plangate.project import PROJECT_ENV, Project
from plangate.runs.checkpoint import aopen_checkpointer
from plangate.runs.guarded_graph import PlangateGraph

__all__ = (
    "PROFILE_ENV",
    "ServedPlangateGraph",
    "checkpointer",
    "graph",
    "graph_from_env",
    "project_from_env",
)

PROFILE_ENV = "PLANGATE_PROFILE"

log = logging.getLogger("plangate.langgraph_server")


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


def project_from_env(
    environ: Mapping[str, str] | None = None, *, folder: Path | None = None
) -> Project:
    """The project the server serves: `PLANGATE_PROJECT`, else the `plangate.yaml` of `folder`
    (default: the working folder) or its parents, else the built-in demo rooted in `folder`.

    Raises:
        ProjectError: The project file is missing or invalid.
    """
    env = os.environ if environ is None else environ
    where = folder or Path.cwd()
    project = Project.find(start=where, environ=env)
    if project is not None:
        return project
    # Said aloud: `langgraph dev --config team/langgraph.json` started from another folder
    # would otherwise serve the demo's tools in place of the team's without a word.
    log.warning(
        "plangate: no plangate.yaml in %s or its parents: serving the built-in demo "
        "(start langgraph dev in the project's folder, or set %s)",
        where,
        PROJECT_ENV,
    )
    return Project.demo(where, environ=env)


def graph_from_env(
    environ: Mapping[str, str] | None = None, *, folder: Path | None = None
) -> ServedPlangateGraph:
    """Build the served graph: the project's tools under the profile the environment names.

    Args:
        environ: Where to read `PLANGATE_PROJECT` and `PLANGATE_PROFILE`; `os.environ` if
            `None`.
        folder: Where to look for `plangate.yaml` (and root the built-in demo); default: the
            working folder.

    Returns:
        A `ServedPlangateGraph` without a checkpointer (the server provides one).

    Raises:
        ProjectError: The project file is missing or invalid.
        ProfileError: `PLANGATE_PROFILE` names no profile of the project's, no built-in and no
            valid profile file; the message starts with the variable and its value.
    """
    env = os.environ if environ is None else environ
    return _served_graph(project_from_env(env, folder=folder), env)


def _served_graph(project: Project, env: Mapping[str, str]) -> ServedPlangateGraph:
    profile_name = env.get(PROFILE_ENV)
    try:
        built = project.graph(profile=profile_name or None)
    except ProfileError as exc:
        if not profile_name:
            raise
        raise ProfileError(
            f"{PROFILE_ENV}={profile_name!r}: {exc.message}", field=exc.field, hint=exc.hint
        ) from None
    # The same attributes, so the same graph; only the class differs (as `Pregel.copy` does).
    return ServedPlangateGraph(**{k: v for k, v in built.__dict__.items() if k != "__orig_class__"})


@asynccontextmanager
async def checkpointer() -> AsyncIterator[BaseCheckpointSaver[Any]]:
    """The served project's database as LangGraph's server's checkpointer.

    `langgraph.json` names it under `"checkpointer": {"path": ...}`; the server enters it once
    per event loop and leaves it when it stops. The project is found as for `graph` (from the
    same environment and working folder), so the server's runs are kept in the database that
    `plangate pending`, `approve` and the inbox read.

    Yields:
        An `AsyncSqliteSaver` (or `AsyncPostgresSaver`) over the project's `db`.

    Raises:
        ProjectError: The project file is missing or invalid.
        PlangateUsageError: The database cannot be opened.
    """
    saver = await aopen_checkpointer(_served.db)
    try:
        yield saver
    finally:
        await saver.conn.close()  # type: ignore[attr-defined]


# Found once, so the graph and the checkpointer serve the same project.
_served = project_from_env()
graph = _served_graph(_served, os.environ)
