"""The project file (`plangate.project`): what a run records of how it was set up (`RunSetup`),
so that another process, going on with the run, rebuilds the same graph in the same project."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from plangate.project._errors import ProjectError
from plangate.project._find import demo_root
from plangate.runs.checkpoint import open_checkpointer

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig
    from langgraph.checkpoint.base import CheckpointTuple
    from langgraph.types import StateSnapshot

    from plangate.project._project import Project
    from plangate.runs.guarded_graph import PlangateGraph

SETUP_KEY = "plangate_cli"
"""The checkpoint metadata key under which a run keeps its `RunSetup`."""


@dataclass(frozen=True)
class RunSetup:
    """How a run was set up: its project (path and fingerprint), profile, offline mode and
    fixtures; kept in its checkpoint metadata so that `approve`, `reject` and `resume`, in any
    process, rebuild the same graph. `project` is empty for the built-in demo."""

    profile: str = "enterprise"
    offline: bool = False
    fixtures: tuple[str, ...] = ()
    project: str = ""
    project_fingerprint: str = ""

    @classmethod
    def start(
        cls,
        project: Project,
        *,
        profile: str | None,
        offline: bool = False,
        fixtures: Sequence[str] = (),
    ) -> RunSetup:
        """The setup of a new run of `project` (profile: the project's default; loading it,
        as `Project.graph` does, checks it)."""
        return cls(
            profile=project.profile_ref(profile or project.spec.profile),
            offline=offline,
            fixtures=tuple(str(Path(path).resolve()) for path in fixtures),
            project=str(project.file) if project.file else "",
            project_fingerprint=project.fingerprint if project.file else "",
        )

    @property
    def metadata(self) -> dict[str, str]:
        """The checkpoint metadata that records this setup (a JSON string: LangGraph keeps only
        scalar config metadata in checkpoints)."""
        return {SETUP_KEY: json.dumps(asdict(self))}

    def config(self, thread: str) -> RunnableConfig:
        """A config for `thread` that records this setup, for a graph that does not carry it."""
        return {"configurable": {"thread_id": thread}, "metadata": self.metadata}

    @classmethod
    def of(cls, latest: StateSnapshot | CheckpointTuple) -> RunSetup:
        """The setup a run was started with, from its latest checkpoint's metadata."""
        stored = json.loads(str((latest.metadata or {}).get(SETUP_KEY) or "{}"))
        known = {name: stored[name] for name in cls.__dataclass_fields__ if name in stored}
        known["fixtures"] = tuple(known.get("fixtures", ()))
        return cls(**known)

    def project_for(self, db: str, given: Project | None = None) -> Project:
        """The project this run goes on under: `given` (named with --project or
        PLANGATE_PROJECT), else the file it started under, else the built-in demo.

        Raises:
            ProjectError: The run's project file is not where it was, and none is given.
        """
        # Here, not at the top: a project records a `RunSetup` in each graph it builds, so
        # `_project` imports this module.
        from plangate.project._project import Project

        if given is not None:
            return given
        if not self.project:
            return Project.demo(demo_root(db))
        if not Path(self.project).is_file():
            raise ProjectError(
                self.project,
                "this run's project file is not here",
                hint="name the project with --project PATH or PLANGATE_PROJECT",
            )
        return Project.load(self.project)

    def graph(self, project: Project, db: str | None) -> PlangateGraph:
        """The graph of this setup in `project` on database `db` (`None`: no checkpointer)."""
        return project.graph(
            profile=self.profile,
            offline=self.offline,
            fixtures=self.fixtures,
            checkpointer=open_checkpointer(db) if db is not None else None,
        )
