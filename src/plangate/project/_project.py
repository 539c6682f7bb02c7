"""The project file (`plangate.project`): `Project`, the one class users see. It holds what the
file says and the settings read from it (database, anchors), and joins the other parts: finding
and reading the file (`_find`, `_read`), its profiles (`_profiles`), its tools (`_tools`) and
its graphs (`_graphs`)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from plangate._files import first_error, parse_document
from plangate.errors import PlangateUsageError
from plangate.identity._proof import DecisionSigner
from plangate.profiles import BUILTIN_PROFILES, Profile
from plangate.project._errors import ProjectError
from plangate.project._expand import Expander
from plangate.project._find import locate, template
from plangate.project._graphs import project_graph
from plangate.project._profiles import profiles_in, project_profile
from plangate.project._read import check_prefixes, fingerprint, mcp_servers, read, validate
from plangate.project._spec import (
    PROJECT_FILE,
    IdentitySettings,
    MCPServer,
    MCPTools,
    ProjectFile,
    WorkersSettings,
)
from plangate.project._tools import load_mocks, load_tools
from plangate.runs.anchors import AnchorSink, FileAnchors, OtelAnchors
from plangate.runs.checkpoint import is_postgres_url, sqlite_path

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool
    from langgraph.checkpoint.base import BaseCheckpointSaver

    from plangate.adapters.registry import LazyTools
    from plangate.runs.guarded_graph import PlangateGraph


@dataclass(frozen=True, eq=False)
class Project:
    """A loaded project file. `Project.find()` looks for one; `Project.demo(folder)` is the
    built-in demo that commands use where there is none.

    Attributes:
        file: The project file (`None` for the built-in demo).
        root: The folder relative paths start from.
        spec: What the file says.
        fingerprint: The first 16 hex digits of the SHA-256 of the file as written (`${VAR}`
            unread): a run records it, never what the variables held.
    """

    file: Path | None
    root: Path
    spec: ProjectFile
    fingerprint: str
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ, repr=False)

    # -- finding and loading ------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path, *, environ: Mapping[str, str] | None = None) -> Project:
        """Load a project file, or the `plangate.yaml` of a folder.

        Raises:
            ProjectError: The file is missing or not valid; the message names the key.
        """
        return cls._from_text(*read(path), environ)

    @classmethod
    def _from_text(
        cls, file: Path, text: str, data: Any, environ: Mapping[str, str] | None
    ) -> Project:
        project = cls(
            file,
            file.parent,
            validate(file, data),
            fingerprint(text),
            os.environ if environ is None else environ,
        )
        project._check()
        return project

    @classmethod
    def find(
        cls,
        explicit: str | Path | None = None,
        *,
        start: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Project | None:
        """The project `explicit` names, else the one `PLANGATE_PROJECT` names, else the
        `plangate.yaml` of `start` (the current folder) or its nearest parent; `None` if none.
        """
        env = os.environ if environ is None else environ
        where = locate(explicit, start=start, environ=env)
        return None if where is None else cls.load(where, environ=env)

    @classmethod
    def demo(cls, root: str | Path, *, environ: Mapping[str, str] | None = None) -> Project:
        """The demo project (what `plangate init --demo` writes), its folder `root`: used where
        no project file is found, rooted at the database's folder."""
        text = template("demo")
        project = cls._from_text(
            Path(root).resolve() / PROJECT_FILE, text, parse_document(text, what="demo"), environ
        )
        return cls(None, project.root, project.spec, project.fingerprint, project.environ)

    def _check(self) -> None:
        """What can be checked without reaching anything: variables in `db`, the profiles
        folder, that tool prefixes are distinct."""
        _ = self.db
        check_prefixes(self._file, self.spec.tools, self._mcp_servers)
        _ = self.profile_files
        _ = self.anchors

    @property
    def _file(self) -> Path:
        return self.file or self.root / PROJECT_FILE

    @cached_property
    def _mcp_servers(self) -> dict[int, dict[str, MCPServer]]:
        """The MCP servers of each `mcp` entry, by the entry's position: an mcpServers file is
        read once, when the project loads."""
        return {
            index: mcp_servers(self._file, f"tools.{index}.mcp", entry)
            for index, entry in enumerate(self.spec.tools)
            if isinstance(entry, MCPTools)
        }

    @property
    def name(self) -> str:
        """How commands name the project: its file, or `built-in demo`."""
        return str(self.file) if self.file else "built-in demo"

    @property
    def db(self) -> str:
        """The database URL, a relative SQLite path made absolute from the project's folder."""
        url = str(Expander(self._file, "db", self.environ)(self.spec.db))
        if is_postgres_url(url):
            return url
        path = sqlite_path(url)
        if path == ":memory:":
            return url
        return "sqlite:///" + str((self.root / path).resolve())

    @cached_property
    def anchors(self) -> AnchorSink | None:
        """Where the project's runs anchor their trace heads (`anchors:`), or `None`. A
        relative file is read from the project's folder.

        Raises:
            ProjectError: A variable in the path is not set, or OpenTelemetry is missing.
        """
        spec = self.spec.anchors
        if spec is None:
            return None
        if spec.file is None:
            try:
                return OtelAnchors()
            except PlangateUsageError as exc:
                raise ProjectError(self._file, exc.message, key="anchors", hint=exc.hint) from None
        return FileAnchors(
            self.root / Expander(self._file, "anchors.file", self.environ)(spec.file)
        )

    @cached_property
    def identity(self) -> IdentitySettings | None:
        """How the project knows people (`identity:`), its `${VAR}`s read from the
        environment; `None` without it.

        Raises:
            ProjectError: A variable in it is not set.
        """
        spec = self.spec.identity
        if spec is None:
            return None
        expand = Expander(self._file, "identity", self.environ)
        try:
            return IdentitySettings.model_validate(expand(spec.model_dump()))
        except ValidationError as exc:  # a variable that gave a key too short, say
            where, message = first_error(exc)
            key = ".".join(["identity", *map(str, where)])
            raise ProjectError(self._file, message, key=key) from None

    @cached_property
    def signer(self) -> DecisionSigner | None:
        """The project's decision signer (`identity.signing_key`), or `None` without
        `identity:`: then every decision is the name it gives, `unverified`.

        Raises:
            ProjectError: A variable in the key is not set, or the key is too short.
        """
        if self.identity is None:
            return None
        # `IdentitySettings` has checked the key's length: at least 16 characters.
        return DecisionSigner(self.identity.signing_key.encode())

    @property
    def queued(self) -> bool:
        """Whether runs of this project go on in the queue (`workers:`), not in the door."""
        return self.spec.workers is not None

    @property
    def workers(self) -> WorkersSettings:
        """The project's `workers:` settings, for a door that queues or a worker.

        Raises:
            ProjectError: The project has no `workers:`, or its database is not PostgreSQL
                (the queue lives in it).
        """
        if self.spec.workers is None:
            raise ProjectError(
                self._file, "no workers: section", key="workers", hint="add `workers: {}`"
            )
        if not is_postgres_url(self.db):
            raise ProjectError(
                self._file,
                "workers need a PostgreSQL database, and db is SQLite",
                key="workers",
                hint="set db: postgresql://... or remove workers:",
            )
        return self.spec.workers

    # -- profiles -----------------------------------------------------------------------

    @cached_property
    def profile_files(self) -> dict[str, Path]:
        """The project's own profiles, by name (a file's name without its suffix)."""
        if not self.spec.profiles:
            return {}
        return profiles_in(self._file, self.root / self.spec.profiles)

    @property
    def profile_names(self) -> list[str]:
        """The profiles a run of this project may start under, by name."""
        return [*BUILTIN_PROFILES, *self.profile_files]

    def profile_ref(self, name: str) -> str:
        """What a run records for profile `name`: the name of a built-in or project profile
        (found again through the project), else the absolute path of a profile file."""
        if name in BUILTIN_PROFILES or name in self.profile_files:
            return name
        return str(Path(name).resolve())

    def load_profile(self, name: str | None = None) -> Profile:
        """Profile `name` (default: the project's): a project profile, a built-in, or a file.

        Raises:
            ProfileError: No such profile, or an invalid one.
        """
        return project_profile(self._file, self.profile_files, name, default=self.spec.profile)

    # -- tools and graphs ---------------------------------------------------------------

    @cached_property
    def tools(self) -> LazyTools:
        """The project's tools: Python toolkits now, MCP servers and OpenAPI documents when a
        run first needs one of their tools."""
        return load_tools(self._file, self.spec.tools, self._mcp_servers, self.environ)

    def mocks(self, fixtures: Sequence[str] = ()) -> list[BaseTool]:
        """The project's mocks, then those of `fixtures` (files), a later one replacing an
        earlier one of the same name."""
        return load_mocks(self._file, self.root, self.spec.fixtures, fixtures, self.environ)

    def graph(
        self,
        *,
        profile: str | None = None,
        offline: bool = False,
        fixtures: Sequence[str] = (),
        checkpointer: BaseCheckpointSaver[Any] | None = None,
    ) -> PlangateGraph:
        """The project's graph under `profile` (default: the project's).

        Every run of it records its setup (`RunSetup`: this project's path and fingerprint, the
        profile, offline mode, fixtures) in its checkpoints, whoever starts it (Python, the CLI,
        LangGraph's server), so `plangate approve` goes on with it in this project.

        Raises:
            ProfileError: The profile is unknown or invalid.
            ProjectError: A Python toolkit or a fixture cannot be loaded.
        """
        return project_graph(
            self, profile=profile, offline=offline, fixtures=fixtures, checkpointer=checkpointer
        )
