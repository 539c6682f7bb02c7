"""The project file, `plangate.yaml`: where a team's tools, profiles and runs are, for every face
(the CLI, the inbox, LangGraph's server) and every process that goes on with a run.

```yaml
db: sqlite:///plangate.db            # or postgresql://...; relative paths: from this file
profile: smb                         # the default for new runs
profiles: profiles/                  # extra profile files, named by file name (strict.yaml: strict)
tools:
  - python: myapp.tools:toolkit      # a list/mapping of tools, or a callable returning one
  - mcp: .mcp.json                   # an mcpServers file; each server's name is its tools' prefix
  - mcp: {fs: {command: npx, args: ["-y", "@modelcontextprotocol/server-filesystem", "./data"]}}
  - openapi: https://billing.internal/openapi.json
    prefix: billing
    include: ["get*", "createRefund"]
    headers: {Authorization: "Bearer ${BILLING_TOKEN}"}
fixtures: [fixtures.yaml]            # mocks for --offline and mock_fallback
anchors: {file: /var/log/plangate/anchors.jsonl}   # or {otel: true}: each run's head, kept
                                     # outside the database (`plangate.runs.anchors`)
inbox: {max_body_bytes: 16777216}    # plangate serve refuses larger request bodies (413)
```

`${VAR}` is read from the environment when the part that holds it is used (`$${` is a literal
`${`), and `${PROJECT_DIR}` is the folder of the file. What `${VAR}` gives is never stored: a run
records the project's path and fingerprint (of the file as written), its profile, offline mode
and fixtures (`RunSetup`), so `approve` and `resume` rebuild the same graph in any process.

Python toolkits are imported when a graph is built; an MCP server or an OpenAPI document is
reached only when a run needs one of its tools (`LazyTools`): reading runs reaches none.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import re
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    model_validator,
)

from plangate._files import dotted, first_error, parse_document, read_document
from plangate.errors import AdapterError, PlangateUsageError, ProfileError
from plangate.profiles import BUILTIN_PROFILES, Profile, load_profile
from plangate.runs.anchors import AnchorSink, FileAnchors, OtelAnchors
from plangate.runs.checkpoint import is_postgres_url, open_checkpointer, sqlite_path

# What builds graphs and tools (LangGraph's graph, LangChain's tools, the adapters) is imported
# where a graph or a tool is made: finding a project and its database, all a command that only
# reads runs needs, then costs a small part of a second.
if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig
    from langchain_core.tools import BaseTool
    from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
    from langgraph.types import StateSnapshot

    from plangate.adapters.registry import LazyTools, ToolSource
    from plangate.runs.guarded_graph import PlangateGraph

__all__ = (
    "PROJECT_ENV",
    "PROJECT_FILE",
    "SETUP_KEY",
    "Project",
    "ProjectError",
    "ProjectFile",
    "RunSetup",
)

PROJECT_FILE = "plangate.yaml"
PROJECT_ENV = "PLANGATE_PROJECT"
SETUP_KEY = "plangate_cli"
"""The checkpoint metadata key under which a run keeps its `RunSetup`."""

_TEMPLATES = "plangate.templates"


class ProjectError(PlangateUsageError):
    """A project file cannot be found, read or used: the message names the file, the key and
    the problem (a missing environment variable by its name).

    Attributes:
        file: The project file.
        key: The dotted key to blame (`tools.2.openapi`), when one is.
    """

    def __init__(
        self, file: str | Path, message: str, *, key: str | None = None, hint: str | None = None
    ):
        self.file = str(file)
        self.key = key
        where = f"{self.file}: {key}: " if key else f"{self.file}: "
        super().__init__(where + message, hint=hint)


# --- the file --------------------------------------------------------------------------------


_IMPORT_PATH = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")


def _import_path(value: str) -> str:
    if not _IMPORT_PATH.fullmatch(value):
        raise ValueError(
            f"{value!r} is not module:attribute; write the module, a colon, then the name in it "
            "(`mytools:toolkit` for `toolkit` in mytools.py)"
        )
    return value


ImportPath = Annotated[str, AfterValidator(_import_path)]
"""Where Python tools or mocks are: `module:attribute`."""


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PythonTools(_Entry):
    """Tools from Python: `module:attribute`, a list or name -> tool mapping of tools or plain
    functions, or a callable returning one (called with `args` as keyword arguments).

    Attributes:
        python: `module:attribute`; the module is also looked for beside the project file.
        args: Keyword arguments for the attribute, when it is a callable returning the tools.
    """

    python: ImportPath
    args: dict[str, Any] = Field(default_factory=dict)


class MCPServer(BaseModel):
    """One server of an `mcpServers` mapping, as Claude Desktop, Cursor and VS Code write it:
    `command`/`args`/`env`/`cwd` for stdio (`cwd` defaults to the project's folder), or
    `url`/`headers` (and `type`: `http`, the default, or `sse`). Other keys those clients
    keep (`disabled`, `autoApprove`) are not read: approvals are the profile's.

    Attributes:
        command: The program that runs a stdio server (`npx`, `uvx`, a venv's python).
        args: Its arguments.
        env: Environment variables for it.
        cwd: Its working folder (default: the project's folder).
        url: The address of a server over HTTP.
        type: The transport: `stdio` with `command`, else `http` (streamable HTTP, the
            default with `url`) or `sse`.
        headers: HTTP headers sent to a server over HTTP.
    """

    model_config = ConfigDict(extra="ignore")

    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] | None = None
    cwd: str | None = None
    url: str | None = None
    type: Literal["stdio", "http", "streamable-http", "streamable_http", "sse"] | None = None
    headers: dict[str, str] | None = None


class MCPTools(_Entry):
    """The tools of MCP servers: an `mcpServers` file (`.mcp.json`), or the mapping inline.

    Attributes:
        mcp: The path of an `mcpServers` file (as Claude Desktop, Cursor and VS Code write
            it), or that mapping inline: server name -> server. Each server's name is the
            prefix of its tools (`fs.read_file`).
        timeout: Seconds a server has to start and list its tools.
    """

    mcp: str | dict[str, MCPServer]
    timeout: float = Field(default=30.0, gt=0, le=600)


class OpenAPITools(_Entry):
    """The operations of an OpenAPI 3 document (a URL or a file), as `openapi_tools` takes
    them.

    Attributes:
        openapi: The document's URL or file (relative to the project file).
        prefix: The prefix of its tools' names, their domain (`billing.create_refund`).
        include: The operations to make tools of: globs of operationIds or names, and
            `tag:<glob>`; default: all.
        exclude: Operations to leave out, in the same words.
        headers: HTTP headers sent with every request.
        auth: Security scheme of the document -> its credential, usually `${VAR}`; each goes
            only to the operations whose `security` asks for it.
        base_url: Where requests go (default: the document's `servers`, else where it came
            from).
        timeout: Seconds a request may take.
    """

    openapi: str
    prefix: str | None = None
    include: list[str] | None = None
    exclude: list[str] | None = None
    headers: dict[str, str] | None = None
    auth: dict[str, str] | None = None
    base_url: str | None = None
    timeout: float = Field(default=30.0, gt=0, le=600)


class PythonMocks(_Entry):
    """Mocks from Python: a list of tools, or a callable returning one.

    Attributes:
        python: `module:attribute`; the module is also looked for beside the project file.
    """

    python: ImportPath


_ENTRY_KINDS = ("python", "mcp", "openapi")


def _entry_kind(value: Any) -> str | None:
    if isinstance(value, Mapping):
        return next((kind for kind in _ENTRY_KINDS if kind in value), None)
    return None


ToolEntry = Annotated[
    Annotated[PythonTools, Tag("python")]
    | Annotated[MCPTools, Tag("mcp")]
    | Annotated[OpenAPITools, Tag("openapi")],
    Discriminator(
        _entry_kind,
        custom_error_type="tool_entry",
        custom_error_message="each entry needs one of python, mcp or openapi",
    ),
]


class Anchors(BaseModel):
    """`anchors:` where each run's trace head is kept, outside its database: a file opened
    for append, or OpenTelemetry log records. Give one of the two.

    Attributes:
        file: A file of JSON lines, appended and fsynced (relative to the project file).
        otel: `true`: OpenTelemetry log records (`plangate[otel]`).
    """

    model_config = ConfigDict(extra="forbid")

    file: str | None = None
    otel: bool = False

    @model_validator(mode="after")
    def _one_sink(self) -> Anchors:
        if (self.file is None) == (not self.otel):
            raise ValueError("give one of file: PATH or otel: true")
        return self


DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
"""The largest request body the inbox reads, unless `inbox.max_body_bytes` says otherwise: room
for a plan of millions of characters (a plan holds at most `plangate.plan.MAX_PLAN_SIZE`)."""


class InboxSettings(BaseModel):
    """What `inbox:` in `plangate.yaml` sets for the approvals inbox (`plangate serve`)."""

    model_config = ConfigDict(extra="forbid")

    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1024)
    """A request whose body is larger is refused with 413 before its body is read."""


class ProjectFile(BaseModel):
    """What `plangate.yaml` holds; every key is optional.

    Attributes:
        db: The database: `sqlite:///file.db` (relative to the project file) or
            `postgresql://...`.
        profile: The profile new runs start under (`--profile` picks another): a built-in,
            one of `profiles`, or a file.
        profiles: A folder of profile files; each is a profile named by its file name (it may
            not take a built-in's name).
        tools: Where the tools come from: a list of `python:`, `mcp:` and `openapi:` entries.
        fixtures: Fixture files of mocks (for `--offline` and `mock_fallback`), or
            `python: module:attribute` giving mock tools; a file that is not a fixture file is
            one line naming the file and the key (`fixtures.0`), never quoting what it holds.
        anchors: Where each run's latest trace hash is appended, outside its database, so
            that `plangate verify` finds a rollback; default: none.
        inbox: Settings of the approvals inbox (`plangate serve`).
    """

    model_config = ConfigDict(extra="forbid")

    db: str = "sqlite:///plangate.db"
    profile: str = "enterprise"
    profiles: str | None = None
    tools: list[ToolEntry] = Field(default_factory=list)
    fixtures: list[str | PythonMocks] = Field(default_factory=list)
    anchors: Anchors | None = None
    inbox: InboxSettings = Field(default_factory=InboxSettings)


# --- ${VAR} ----------------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass
class _Expander:
    """Expands `${VAR}` in the strings of one part of the file, remembering what each variable
    gave, so that an error quoting a secret can be written back with the variable's name."""

    file: Path
    key: str
    environ: Mapping[str, str]
    given: dict[str, str] = field(default_factory=dict)

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            return _VARIABLE.sub(self._one, value)
        if isinstance(value, list):
            return [self(item) for item in value]
        if isinstance(value, dict):
            return {key: self(item) for key, item in value.items()}
        return value

    def _one(self, match: re.Match[str]) -> str:
        escaped, name = match.groups()
        if escaped:
            return "${" + name + "}"
        if name == "PROJECT_DIR":
            return str(self.file.parent)
        if name not in self.environ:
            raise ProjectError(
                self.file,
                f"environment variable {name} is not set",
                key=self.key,
                hint=f"set {name}, or write $${{{name}}} for a literal ${{{name}}}",
            )
        self.given[name] = self.environ[name]
        return self.environ[name]

    def hide(self, text: str) -> str:
        """`text` with every value a variable gave written as `${VAR}` again."""
        for name, value in sorted(self.given.items(), key=lambda item: -len(item[1])):
            if value:
                text = text.replace(value, "${" + name + "}")
        return text


# --- tool sources ----------------------------------------------------------------------------


# One import at a time: `_import` may swap modules in `sys.modules` (see there).
_IMPORTING = threading.Lock()


def _import(file: Path, key: str, target: str) -> Any:
    """`module:attribute`, imported with the project's folder first on the path.

    A module of the project's own folder (`tools.py` beside the file) is this project's even
    when another project of the same process (a server going on with runs of several projects)
    imported one of the same name: that one leaves `sys.modules` (the tools made from it keep
    working) and this one is imported."""
    module_name, _, attribute = target.partition(":")
    folder = file.parent
    top = module_name.split(".", 1)[0]
    local = (folder / f"{top}.py").is_file() or (folder / top / "__init__.py").is_file()
    with _IMPORTING:
        if str(folder) not in sys.path or (local and sys.path[0] != str(folder)):
            with contextlib.suppress(ValueError):
                sys.path.remove(str(folder))
            sys.path.insert(0, str(folder))
        loaded = sys.modules.get(top)
        if local and loaded is not None and not _within(getattr(loaded, "__file__", None), folder):
            for name in [n for n in sys.modules if n == top or n.startswith(f"{top}.")]:
                del sys.modules[name]
        try:
            found: Any = importlib.import_module(module_name)
        except ImportError as exc:
            raise ProjectError(file, f"cannot import {module_name!r}: {exc}", key=key) from None
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise ProjectError(file, f"{module_name!r} has no attribute {attribute!r}", key=key)
        found = getattr(found, part)
    return found


def _within(path: str | None, folder: Path) -> bool:
    return path is not None and Path(path).resolve().is_relative_to(folder)


def _called(file: Path, key: str, found: Any, args: Mapping[str, Any]) -> Any:
    from langchain_core.tools import BaseTool

    if callable(found) and not isinstance(found, BaseTool):
        try:
            return found(**args)
        except PlangateUsageError:
            raise
        except Exception as exc:  # the project's own code: say where it failed, in one line
            raise ProjectError(file, f"{type(exc).__name__}: {exc}", key=key) from None
    if args:
        raise ProjectError(file, "args given, but the attribute is not callable", key=key)
    return found


@dataclass(frozen=True)
class _MCPServerSource:
    """One MCP server's tools, named `<server>.<tool>`, loaded when first needed."""

    file: Path
    key: str
    prefix: str
    server: MCPServer
    timeout: float
    environ: Mapping[str, str]

    @property
    def description(self) -> str:
        return f"mcp {self.prefix}"

    def load(self) -> Sequence[BaseTool]:
        from plangate.adapters.mcp import mcp_tools

        expand = _Expander(self.file, self.key, self.environ)
        settings = expand(self.server.model_dump(exclude_none=True))
        # Outside the `try`: its `ProjectError` names the file and entry already.
        connection = _connection(self.file, self.key, settings)
        try:
            return mcp_tools(connection, prefix=self.prefix, timeout=self.timeout)
        except PlangateUsageError as exc:
            raise ProjectError(
                self.file, expand.hide(exc.message), key=self.key, hint=exc.hint
            ) from None


def _connection(file: Path, key: str, settings: dict[str, Any]) -> Any:
    """A langchain-mcp-adapters connection for one `mcpServers` entry."""
    kind = settings.get("type")
    if settings.get("command"):
        connection = {
            "transport": "stdio",
            "command": settings["command"],
            "args": settings.get("args", []),
            "cwd": str((file.parent / settings.get("cwd", ".")).resolve()),
        }
        if settings.get("env") is not None:
            connection["env"] = settings["env"]
        return connection
    if settings.get("url"):
        return {
            "transport": "sse" if kind == "sse" else "streamable_http",
            "url": settings["url"],
            **({"headers": settings["headers"]} if settings.get("headers") else {}),
        }
    raise ProjectError(file, "an MCP server needs `command` (stdio) or `url`", key=key)


@dataclass(frozen=True)
class _OpenAPISource:
    """An OpenAPI document's operations, read when one of its tools is first needed."""

    file: Path
    key: str
    entry: OpenAPITools
    environ: Mapping[str, str]

    @property
    def prefix(self) -> str | None:
        return self.entry.prefix

    @property
    def description(self) -> str:
        return "openapi" + (f" {self.prefix}" if self.prefix else "")

    def load(self) -> Sequence[BaseTool]:
        from plangate.adapters.openapi import openapi_tools

        expand = _Expander(self.file, self.key, self.environ)
        document = expand(self.entry.openapi)
        if not re.match(r"^https?://", document):
            document = str((self.file.parent / document).resolve())
        try:
            return openapi_tools(
                document,
                prefix=self.prefix,
                include=self.entry.include,
                exclude=self.entry.exclude,
                # `openapi_tools` reads `${VAR}` in credentials and headers itself, and hides
                # what they give in every answer it passes on.
                headers=self.entry.headers,
                auth=self.entry.auth,
                base_url=expand(self.entry.base_url),
                timeout=self.entry.timeout,
            )
        except PlangateUsageError as exc:
            raise ProjectError(
                self.file, expand.hide(exc.message), key=self.key, hint=exc.hint
            ) from None


def _mcp_servers(file: Path, key: str, entry: MCPTools) -> dict[str, MCPServer]:
    if isinstance(entry.mcp, dict):
        return entry.mcp
    path = file.parent / entry.mcp
    try:
        data = read_document(path, what="mcpServers")
    except ValueError as exc:
        raise ProjectError(file, str(exc), key=key) from None
    servers = data.get("mcpServers", data.get("servers")) if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        raise ProjectError(file, f"{entry.mcp}: expected a mapping under `mcpServers`", key=key)
    try:
        return {name: MCPServer.model_validate(server) for name, server in servers.items()}
    except ValidationError as exc:
        loc, message = first_error(exc)
        raise ProjectError(file, f"{entry.mcp}: {dotted(loc)}: {message}", key=key) from None


# --- the project -----------------------------------------------------------------------------


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
        file = Path(path).expanduser()
        if file.is_dir():
            file = file / PROJECT_FILE
        if not file.is_file():
            raise ProjectError(
                file,
                "no project file here",
                hint="`plangate init` writes one; check --project or PLANGATE_PROJECT",
            )
        file = file.resolve()
        try:
            text = file.read_text(encoding="utf-8")
            data = parse_document(text, what="project file")
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ProjectError(file, str(exc).removeprefix("project file ")) from None
        return cls._from_text(file, text, data, environ)

    @classmethod
    def _from_text(
        cls, file: Path, text: str, data: Any, environ: Mapping[str, str] | None
    ) -> Project:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ProjectError(
                file, "expected a mapping of db, profile, profiles, tools, fixtures, inbox"
            )
        try:
            spec = ProjectFile.model_validate(data)
        except ValidationError as exc:
            loc, message = first_error(exc)
            if loc[:1] == ("tools",) and len(loc) > 3 and loc[2] in _ENTRY_KINDS:
                loc = loc[:2] + loc[3:]  # the tag pydantic names an entry's kind by
            message = message.removeprefix("Value error, ")
            raise ProjectError(file, message, key=dotted(loc) or None) from None
        fingerprint = hashlib.sha256(text.encode()).hexdigest()[:16]
        project = cls(
            file, file.parent, spec, fingerprint, os.environ if environ is None else environ
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
        named = explicit or env.get(PROJECT_ENV)
        if named:
            return cls.load(named, environ=env)
        folder = (start or Path.cwd()).resolve()
        for candidate in (folder, *folder.parents):
            if (candidate / PROJECT_FILE).is_file():
                return cls.load(candidate / PROJECT_FILE, environ=env)
        return None

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
        seen: dict[str, str] = {}
        for index, entry in enumerate(self.spec.tools):
            prefixes: list[str] = []
            if isinstance(entry, MCPTools):
                prefixes = list(self._mcp_servers[index])
            elif isinstance(entry, OpenAPITools) and entry.prefix:
                prefixes = [entry.prefix]
            for prefix in prefixes:
                if not prefix or "." in prefix:
                    raise ProjectError(
                        self._file,
                        f"prefix {prefix!r} must be one name without dots",
                        key=f"tools.{index}",
                    )
                if prefix in seen:
                    raise ProjectError(
                        self._file,
                        f"prefix {prefix!r} is also used by {seen[prefix]}",
                        key=f"tools.{index}",
                    )
                seen[prefix] = f"tools.{index}"
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
            index: _mcp_servers(self._file, f"tools.{index}.mcp", entry)
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
        url = str(_Expander(self._file, "db", self.environ)(self.spec.db))
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
            self.root / _Expander(self._file, "anchors.file", self.environ)(spec.file)
        )

    # -- profiles -----------------------------------------------------------------------

    @cached_property
    def profile_files(self) -> dict[str, Path]:
        """The project's own profiles, by name (a file's name without its suffix)."""
        if not self.spec.profiles:
            return {}
        folder = self.root / self.spec.profiles
        if not folder.is_dir():
            raise ProjectError(self._file, f"{folder} is not a folder", key="profiles")
        found: dict[str, Path] = {}
        for path in sorted(folder.iterdir()):
            if path.suffix not in (".yaml", ".yml", ".json"):
                continue
            if path.stem in BUILTIN_PROFILES:
                raise ProjectError(
                    self._file,
                    f"{path.name}: {path.stem!r} is a built-in profile's name",
                    key="profiles",
                    hint="give the file another name",
                )
            found[path.stem] = path
        return found

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
        wanted = name or self.spec.profile
        if wanted in self.profile_files:
            return load_profile(self.profile_files[wanted])
        try:
            return load_profile(wanted)
        except ProfileError as exc:
            if name is None:  # the project's default: say where it comes from
                raise ProjectError(self._file, exc.message, key="profile") from None
            if exc.message.startswith("unknown profile"):
                raise ProfileError(
                    exc.message,
                    hint=f"use one of {', '.join(self.profile_names)} "
                    "or the path of a YAML/JSON file",
                ) from None
            raise

    # -- tools --------------------------------------------------------------------------

    @cached_property
    def tools(self) -> LazyTools:
        """The project's tools: Python toolkits now, MCP servers and OpenAPI documents when a
        run first needs one of their tools."""
        from plangate.adapters.registry import LazyTools

        eager: dict[str, BaseTool] = {}
        sources: list[ToolSource] = []
        for index, entry in enumerate(self.spec.tools):
            key = f"tools.{index}"
            if isinstance(entry, PythonTools):
                expand = _Expander(self._file, key, self.environ)
                found = _called(
                    self._file, key, _import(self._file, key, entry.python), expand(entry.args)
                )
                for name, tool in _registry(self._file, key, found).items():
                    if name in eager:
                        raise ProjectError(self._file, f"two tools are named {name!r}", key=key)
                    eager[name] = tool
            elif isinstance(entry, MCPTools):
                for prefix, server in self._mcp_servers[index].items():
                    sources.append(
                        _MCPServerSource(
                            self._file, key, prefix, server, entry.timeout, self.environ
                        )
                    )
            else:
                sources.append(_OpenAPISource(self._file, key, entry, self.environ))
        return LazyTools(eager, sources)

    def mocks(self, fixtures: Sequence[str] = ()) -> list[BaseTool]:
        """The project's mocks, then those of `fixtures` (files), a later one replacing an
        earlier one of the same name."""
        from plangate.adapters.mock import mock_tools

        found: dict[str, BaseTool] = {}
        for index, entry in enumerate(self.spec.fixtures):
            key = f"fixtures.{index}"
            if isinstance(entry, PythonMocks):
                mocks = _called(self._file, key, _import(self._file, key, entry.python), {})
                found.update(_registry(self._file, key, mocks))
            else:
                path = self.root / _Expander(self._file, key, self.environ)(entry)
                try:
                    mocks = mock_tools(path)
                except AdapterError as exc:
                    raise ProjectError(self._file, exc.message, key=key, hint=exc.hint) from None
                found.update({mock.name: mock for mock in mocks})
        found.update({mock.name: mock for mock in mock_tools(*fixtures)})
        return list(found.values())

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
        from plangate.graph import build_graph

        rules = self.load_profile(profile)
        setup = RunSetup.start(self, profile=profile, offline=offline, fixtures=fixtures)
        if offline:
            rules = rules.model_copy(update={"offline": True})
        graph = build_graph(
            self.tools,
            profile=rules,
            mocks=self.mocks(fixtures),
            checkpointer=checkpointer,
            anchors=self.anchors,
        )
        return graph.with_config(metadata=setup.metadata)


def _registry(file: Path, key: str, found: Any) -> Mapping[str, BaseTool]:
    if not isinstance(found, (Mapping, list, tuple)):
        raise ProjectError(
            file, f"expected a list or mapping of tools, got {type(found).__name__}", key=key
        )
    from plangate.adapters.registry import tool_registry

    try:
        return tool_registry(found)
    except PlangateUsageError as exc:
        raise ProjectError(file, exc.message, key=key, hint=exc.hint) from None


def template(name: str) -> str:
    """The text of a packaged project template (`demo`, `starter`)."""
    return (
        resources.files(_TEMPLATES)
        .joinpath(name)
        .joinpath(PROJECT_FILE)
        .read_text(encoding="utf-8")
    )


def write_template(name: str, folder: Path) -> list[Path]:
    """Write the files of project template `name` into `folder`; refuses to overwrite any.

    Raises:
        PlangateUsageError: A file it would write is there already.
    """
    source = resources.files(_TEMPLATES).joinpath(name)
    names = sorted(
        entry.name
        for entry in source.iterdir()
        if entry.is_file() and not entry.name.startswith(("_", "."))
    )
    targets = [folder / entry for entry in names]
    present = [str(path) for path in targets if path.exists()]
    if present:
        raise PlangateUsageError(
            f"{', '.join(present)} exists already",
            hint="run it in an empty folder, or remove the file",
        )
    folder.mkdir(parents=True, exist_ok=True)
    for entry, path in zip(names, targets, strict=True):
        path.write_text(source.joinpath(entry).read_text(encoding="utf-8"), encoding="utf-8")
    return targets


# --- what a run records ----------------------------------------------------------------------


def demo_root(db: str) -> Path:
    """The built-in demo's folder: the database's (the current folder for other databases)."""
    path = ":memory:" if is_postgres_url(db) else sqlite_path(db)
    return Path(".").resolve() if path == ":memory:" else Path(path).resolve().parent


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


def reader(db: str) -> PlangateGraph:
    """A graph over database `db` for reading its runs (listing them, their state, their
    trace): it has no tools and never runs a step, so it reaches nothing."""
    from plangate.graph import build_graph

    return build_graph({}, profile="technical", checkpointer=open_checkpointer(db))
