"""The project file (`plangate.project`): the graphs a project builds. LangGraph's graph
machinery is imported here when a graph is made, never when a project is read: a command that
only reads runs needs no more than the project and its database.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from plangate.project._setup import RunSetup
from plangate.runs.checkpoint import open_checkpointer

if TYPE_CHECKING:
    from langgraph.checkpoint.base import BaseCheckpointSaver

    from plangate.project._project import Project
    from plangate.runs.guarded_graph import PlangateGraph


def project_graph(
    project: Project,
    *,
    profile: str | None,
    offline: bool,
    fixtures: Sequence[str],
    checkpointer: BaseCheckpointSaver[Any] | None,
) -> PlangateGraph:
    """`project`'s graph under `profile`, recording its `RunSetup` in every run (see
    `Project.graph`)."""
    from plangate.graph import build_graph

    rules = project.load_profile(profile)
    setup = RunSetup.start(project, profile=profile, offline=offline, fixtures=fixtures)
    if offline:
        rules = rules.model_copy(update={"offline": True})
    graph = build_graph(
        project.tools,
        profile=rules,
        mocks=project.mocks(fixtures),
        checkpointer=checkpointer,
        anchors=project.anchors,
        signer=project.signer,
    )
    return graph.with_config(metadata=setup.metadata)


def reader(db: str) -> PlangateGraph:
    """A graph over database `db` for reading its runs (listing them, their state, their
    trace): it has no tools and never runs a step, so it reaches nothing."""
    from plangate.graph import build_graph

    return build_graph({}, profile="technical", checkpointer=open_checkpointer(db))
