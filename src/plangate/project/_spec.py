"""The project file (`plangate.project`): what `plangate.yaml` may say, as pydantic models that
name a mistaken key. Nothing here reads a file or an environment variable (`_read`, `_expand`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    model_validator,
)

PROJECT_FILE = "plangate.yaml"

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


ENTRY_KINDS = ("python", "mcp", "openapi")


def _entry_kind(value: Any) -> str | None:
    if isinstance(value, Mapping):
        return next((kind for kind in ENTRY_KINDS if kind in value), None)
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


class OidcSettings(BaseModel):
    """`identity.oidc:` the OpenID Connect provider people sign in with.

    Attributes:
        issuer: The provider's issuer URL; its `/.well-known/openid-configuration` is read.
        client_id: plangate's client at the provider.
        client_secret: Its secret, usually `${VAR}`.
        groups_claim: The ID token (or userinfo) claim holding the person's groups.
        scopes: The scopes asked for at sign-in.
        session_hours: How long a sign-in lasts before the person signs in again.
    """

    model_config = ConfigDict(extra="forbid")

    issuer: str
    client_id: str
    client_secret: str | None = None
    groups_claim: str = "groups"
    scopes: list[str] = Field(default_factory=lambda: ["openid", "profile", "email"])
    session_hours: float = Field(default=8.0, gt=0, le=24 * 30)


class IdentitySettings(BaseModel):
    """`identity:` how people are known. Without it, a decision's approver is the name typed,
    recorded as `unverified`.

    Attributes:
        signing_key: The key doors sign decisions with and the graph and `plangate verify`
            check them with, usually `${VAR}`; at least 16 bytes. Keep it out of the database.
        oidc: The OpenID Connect provider the inbox signs people in with.
    """

    model_config = ConfigDict(extra="forbid")

    signing_key: str = Field(min_length=16)
    oidc: OidcSettings | None = None


class WorkersSettings(BaseModel):
    """`workers:` runs go on by themselves, in a queue on the project's PostgreSQL database
    (`plangate worker`): every door checks a decision, then queues the run instead of running it.

    Attributes:
        heartbeat_seconds: How often a worker says it is alive.
        stall_seconds: A worker silent this long is dead: its jobs go to another worker, and
            the step in flight runs again with the same idempotency key.
        retries: How many times a job that failed on the infrastructure (the database gone
            away, another process holding the run) is tried again.
        retry_backoff_seconds: The first wait before such a retry; each next one is longer.
        sweep_stopped: Runs whose process died between two steps are queued to go on.
        sweep_every_seconds: How often the sweeps run: stalled jobs, stopped runs, and
            expired requests no job closed at their deadline (a run paused outside the queue).
    """

    model_config = ConfigDict(extra="forbid")

    heartbeat_seconds: float = Field(default=2.0, gt=0, le=300)
    stall_seconds: float = Field(default=10.0, gt=0, le=3600)
    retries: int = Field(default=5, ge=0, le=100)
    retry_backoff_seconds: int = Field(default=2, ge=1, le=3600)
    sweep_stopped: bool = True
    sweep_every_seconds: int = Field(default=10, ge=1, le=3600)

    @model_validator(mode="after")
    def _stall_after_heartbeat(self) -> WorkersSettings:
        if not self.stall_seconds > self.heartbeat_seconds:
            raise ValueError(
                "stall_seconds must be longer than heartbeat_seconds: a live worker would "
                "look dead between two heartbeats"
            )
        return self


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
        identity: How people who start and decide runs are known (OpenID Connect, plangate's
            tokens), and the key their decisions are signed with; default: names as typed.
        workers: Runs go on in a queue, on any machine running `plangate worker` (the
            database must be PostgreSQL); default: each door runs the run itself.
    """

    model_config = ConfigDict(extra="forbid")

    db: str = "sqlite:///plangate.db"
    profile: str = "enterprise"
    profiles: str | None = None
    tools: list[ToolEntry] = Field(default_factory=list)
    fixtures: list[str | PythonMocks] = Field(default_factory=list)
    anchors: Anchors | None = None
    inbox: InboxSettings = Field(default_factory=InboxSettings)
    identity: IdentitySettings | None = None
    workers: WorkersSettings | None = None
