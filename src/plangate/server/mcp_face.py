"""The MCP face: a project's runs for MCP clients (Claude Desktop, Cursor, VS Code, any agent on
the `mcp` SDK), over stdio or streamable HTTP (`plangate mcp`; the `plangate[mcp]` extra).

| tool | takes | gives |
|------|-------|-------|
| `list_tools` | `offline?` | the project's tools as plans may use them: governance and args |
| `check_plan` | `plan`, `offline?` | the pre-flight report (`plangate check`); nothing runs |
| `submit_plan` | `plan`, `thread?`, `offline?` | starts a run; its thread, status, what waits |
| `run_status` | `thread`, `wait_seconds?` | status, steps, what waits; waits while it moves |
| `run_trace` | `thread`, `after?` | the run's trace events (after seq `after`) |

With workers on, `submit_plan` answers `queued` with the start's job, and `run_status` says
`queued` until a worker has started the run (waiting through it, given `wait_seconds`); a
waiting request a decision is queued on says so (`queued`: the job, the decision, who took it).

A face like the CLI and the inbox: each tool parses its input, calls the run service and turns
its answer or its error into MCP's words (an error is a tool error carrying plangate's one-line
message). Three rules hold it to the project's trust model:

- **No tool decides an approval.** A submitted plan waits for a person like any other run, in
  the inbox (`plangate serve`) or the CLI (`plangate approve`); what an MCP client reads of a
  waiting request leaves its args out (`RunService.status`): they are for the approver.
- **The profile is the operator's** (`plangate mcp --profile`): an agent steered by what it
  reads would pick the one that asks least. A plan can only ask for more, as everywhere.
- **`submit_plan` answers at once**, once the run has made its first move; a client polls
  `run_status`, or gives it `wait_seconds` and follows its progress notifications.

Over stdio nothing but the protocol reaches stdout (`serve_stdio`); over HTTP every request
needs the bearer token (`http_app`): what waits carries run data, as the inbox's reads do.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
from mcp import types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.routing import Route

from plangate import __version__
from plangate._files import dotted, first_error
from plangate.errors import PlangateError, PlangateUsageError
from plangate.identity import unverified
from plangate.runs.service import FINISHED, RunService
from plangate.server._token_gate import ASGIApp, Receive, Scope, Send, TokenGate

__all__ = ("LOOPBACK", "create_server", "http_app", "serve_stdio")

log = logging.getLogger("plangate.mcp")

LOOPBACK = ("127.0.0.1", "localhost", "::1")

LONGEST_WAIT = 300.0
"""The most seconds `run_status` waits: much longer, and clients give up on the request first."""

_POLL_SECONDS = 0.5

PLAN_FORMAT = """\
A plan is a JSON object (or the same as YAML text):
{"goal": "Follow up with Acme",
 "steps": [
  {"id": "lookup", "tool": "crm.lookup_account", "args": {"account": "acme"},
   "action": "read", "description": "Look up the Acme account"},
  {"id": "send", "tool": "email.send", "action": "execute", "depends_on": ["lookup"],
   "args": {"to": "${steps.lookup.output.contact_email}", "subject": "Hi", "body": "..."},
   "description": "Send the follow-up to the account's contact"}]}
Each step calls one tool that list_tools shows, with args that fit its args schema.
- id: unique in the plan; tool: the tool's name; args: its arguments.
- action: read (no side effect), propose (prepares something a person will see, e.g. a draft) or
  execute (changes the world: sends, books, pays). It can raise the tool's own action, never
  lower it; left out, the tool's applies.
- description: one sentence the person approving the step reads: say what it does, to whom.
- depends_on: ids of steps that must end ok first; otherwise this one is skipped.
- "${steps.<id>.output}" or "${steps.<id>.output.<path>}" in args passes an earlier step's
  output (path: dotted keys and [n] indices); it makes the step depend on that one.
Steps that change something run in the order listed; reads between them run together.
The project's profile decides which steps wait for a person's approval (list_tools says which
tools ask) and caps the calls a run may make. A person decides in the plangate inbox or with
`plangate approve`: no tool here approves."""

_INSTRUCTIONS = (
    "plangate runs plans of tool calls under governance: budgets, human approval of risky "
    "steps, a trace. list_tools shows the tools a plan may call; check_plan reports what a "
    "plan would meet before it runs; submit_plan starts it and answers at once; run_status "
    "and run_trace follow it. Steps that need approval wait for a person, who decides outside "
    "MCP (the plangate inbox, or `plangate approve`).\n\n" + PLAN_FORMAT
)

_DOCUMENT = "The plan: a JSON object as below, or its YAML/JSON text."


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ListTools(_Input):
    offline: bool = Field(default=False, description="Also list the tools only a mock stands for.")


class CheckPlan(_Input):
    plan: dict[str, Any] | list[Any] | str = Field(description=_DOCUMENT)
    offline: bool = Field(default=False, description="Check against the mocks.")


class SubmitPlan(_Input):
    plan: dict[str, Any] | list[Any] | str = Field(description=_DOCUMENT)
    thread: str | None = Field(
        default=None,
        description="The run's thread id (default: a new one); a thread that holds a run "
        "is refused.",
    )
    offline: bool = Field(
        default=False, description="Call every tool's mock: nothing is sent. Approvals still ask."
    )


class RunStatus(_Input):
    thread: str = Field(description="The run's thread id, as submit_plan gave it.")
    wait_seconds: float = Field(
        default=0,
        ge=0,
        le=LONGEST_WAIT,
        description="Wait up to this long while the run goes on, or waits on the same "
        "decisions as when asked; answer as soon as it finishes, stops or waits on a new one. "
        "Progress notifications follow it meanwhile.",
    )


class RunTrace(_Input):
    thread: str = Field(description="The run's thread id.")
    after: int = Field(default=-1, ge=-1, description="Only the events after this seq.")


def create_server(service: RunService, *, profile: str | None = None) -> Server[Any, Any]:
    """The MCP server of `service`'s project: its tools (see the module's doc) start and read
    runs through `service`, each under `profile` (one of the project's by name; default: the
    project's own).

    Raises:
        ProfileError: The project has no profile of that name.
    """
    profile = service.profile_named(profile)
    server: Server[Any, Any] = Server("plangate", version=__version__, instructions=_INSTRUCTIONS)
    face = _Face(service, server, profile)
    handlers: dict[str, tuple[type[_Input], Callable[[Any], Awaitable[dict[str, Any]]]]] = {
        "list_tools": (ListTools, face.list_tools),
        "check_plan": (CheckPlan, face.check_plan),
        "submit_plan": (SubmitPlan, face.submit_plan),
        "run_status": (RunStatus, face.run_status),
        "run_trace": (RunTrace, face.run_trace),
    }
    listed = [
        types.Tool(
            name=name,
            description=_DESCRIPTIONS[name],
            inputSchema=model.model_json_schema(),
            annotations=types.ToolAnnotations(
                readOnlyHint=name != "submit_plan",
                # A plan's steps act once a person approves them, or unasked where the
                # profile lets them: starting one may change the world.
                destructiveHint=name == "submit_plan",
                idempotentHint=name != "submit_plan",
                openWorldHint=name == "submit_plan",
            ),
        )
        for name, (model, _) in handlers.items()
    ]

    # The SDK's decorators are untyped.
    @server.list_tools()  # type: ignore[no-untyped-call, untyped-decorator]
    async def list_tools() -> list[types.Tool]:
        return listed

    # Arguments are checked here, by the models, so that a mistake is named in one line.
    @server.call_tool(validate_input=False)  # type: ignore[untyped-decorator]
    async def call_tool(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        if name not in handlers:
            raise PlangateUsageError(f"no tool named {name!r}", hint=", ".join(handlers))
        model, handler = handlers[name]
        try:
            given = model.model_validate(arguments)
        except ValidationError as exc:
            where, why = first_error(exc)
            raise PlangateUsageError(f"{name}: {dotted(where) or 'arguments'}: {why}") from None
        try:
            return await handler(given)
        except PlangateError:
            raise  # the low-level server answers with its one line, a tool error
        except Exception:
            log.exception("%s failed", name)  # for the operator: the client gets one line
            raise

    return server


class _Face:
    """The tools' bodies: each calls the run service in a worker thread (it reads and writes
    the database, and `start` waits for the run's first move), never on the event loop."""

    def __init__(self, service: RunService, server: Server[Any, Any], profile: str) -> None:
        self.service = service
        self.server = server
        self.profile = profile

    async def list_tools(self, given: ListTools) -> dict[str, Any]:
        rows = await anyio.to_thread.run_sync(
            lambda: self.service.tools(profile=self.profile, offline=given.offline)
        )
        return {"project": self.service.project.name, "profile": self.profile, "tools": rows}

    async def check_plan(self, given: CheckPlan) -> dict[str, Any]:
        report = await anyio.to_thread.run_sync(
            lambda: self.service.check(plan=given.plan, profile=self.profile, offline=given.offline)
        )
        return report.model_dump(mode="json")

    async def submit_plan(self, given: SubmitPlan) -> dict[str, Any]:
        started_by = self._client()

        def start() -> dict[str, Any]:
            started = self.service.start(
                plan=given.plan,
                profile=self.profile,
                thread=given.thread or None,
                offline=given.offline,
                caller=unverified(started_by) if started_by else None,
            )
            if started.get("status") == "queued":  # workers on: no run yet to show
                return {
                    **started,
                    "next": _QUEUED_NEXT,
                }
            return _with_next(self.service.status(started["thread"]))

        return await anyio.to_thread.run_sync(start)

    async def run_status(self, given: RunStatus) -> dict[str, Any]:
        view = await anyio.to_thread.run_sync(self.service.status, given.thread)
        asked = _asked(view)
        progress = _Progress(self.server)
        deadline = anyio.current_time() + given.wait_seconds
        while _goes_on(view, asked) and anyio.current_time() < deadline:
            await anyio.sleep(_POLL_SECONDS)
            view = await anyio.to_thread.run_sync(self.service.status, given.thread)
            await progress.report(view)
        return _with_next(view)

    async def run_trace(self, given: RunTrace) -> dict[str, Any]:
        events = await anyio.to_thread.run_sync(self.service.trace, given.thread)
        return {"thread": given.thread, "events": [e for e in events if e["seq"] > given.after]}

    def _client(self) -> str:
        """Who started a run, for the approver to read: the MCP client, by the name it gave
        itself (`mcp`, if none): a label, not an identity."""
        params = self.server.request_context.session.client_params
        name = params.clientInfo.name if params else ""
        return f"mcp:{name[:64]}" if name else "mcp"


class _Progress:
    """Progress notifications of one request, if its client asked for them (a progress
    token): the steps ended of all, each time the run's view changes."""

    def __init__(self, server: Server[Any, Any]) -> None:
        context = server.request_context
        self.session = context.session
        self.request_id = context.request_id
        self.token = context.meta.progressToken if context.meta else None
        self.last: tuple[Any, ...] | None = None

    async def report(self, view: Mapping[str, Any]) -> None:
        ended = sum(1 for step in view["steps"] if step["status"] not in _NOT_ENDED)
        now = (view["status"], ended, _asked(view))
        if self.token is None or now == self.last:
            return
        self.last = now
        total = len(view["steps"])
        await self.session.send_progress_notification(
            self.token,
            ended,
            total,
            f"{view['status']}: {ended} of {total} steps ended",
            related_request_id=str(self.request_id),
        )


_NOT_ENDED = ("pending", "waiting", "running", "stopped")


def _asked(view: Mapping[str, Any]) -> tuple[tuple[Any, ...], ...]:
    """What the run waits on: one entry per request, a second approval of four eyes apart."""
    return tuple((w["step_id"], w["type"], w["approvals_so_far"]) for w in view["waiting"])


def _goes_on(view: Mapping[str, Any], asked: tuple[tuple[Any, ...], ...]) -> bool:
    return view["status"] in ("running", "queued") or (
        view["status"] == "waiting" and _asked(view) == asked
    )


_QUEUED_NEXT = (
    "a plangate worker starts it; run_status says queued until one has, and with wait_seconds "
    "waits for it"
)


def _with_next(view: dict[str, Any]) -> dict[str, Any]:
    """The view, with what the client can do next, in words an agent passes on."""
    thread, status = view["thread"], view["status"]
    if status == "waiting":
        then = (
            f"a person decides each waiting step, in the plangate inbox or with `plangate "
            f"approve {thread}` (or reject); call run_status with wait_seconds to wait for it"
        )
    elif status == "running":
        then = "call run_status again; with wait_seconds it answers once the run has moved on"
    elif status == "queued":
        then = f"job {view['job']}: {_QUEUED_NEXT}"
    elif status == "stopped":
        then = f"its process stopped mid-way: an operator goes on with `plangate resume {thread}`"
    else:
        assert status in FINISHED, status
        then = "finished: run_trace gives every event"
    return {**view, "next": then}


_DESCRIPTIONS = {
    "list_tools": "The tools a plan may call in this project, under its profile: each one's "
    "args schema and description, its effective action (read/propose/execute) and risk, "
    "whether it may run at all (allowed) and whether it waits for a person's approval (asks).",
    "check_plan": "Check a plan before submitting it; nothing runs. Reports each step's tool "
    "(known? allowed?), its args against the tool's schema, its effective action and risk, "
    "whether it will wait for approval, and the budget tier it would run out of; ok is true "
    "when nothing is wrong. Fix the problems it names, then submit_plan.\n\n" + PLAN_FORMAT,
    "submit_plan": "Start a plan as a governed run and answer at once with its thread, its "
    "status (queued, when a worker starts it; running, waiting, or finished: success, "
    "partial, failed) and the steps that wait "
    "for a person's approval. Follow it with run_status. No tool here decides an approval: a "
    "person does, in the plangate inbox or the CLI.\n\n" + PLAN_FORMAT,
    "run_status": "A run's status, each step's status with its output or error, and the steps "
    "waiting for a person's approval (what they would do, their risk, until when, a decision "
    "queued on them). With wait_seconds it waits while the run is queued or goes on, sending "
    "progress notifications.",
    "run_trace": "A run's trace: every event (plan start, budget checks, approvals asked and "
    "given, tool calls and their results), in order, redacted as the profile says.",
}


# --- transports -------------------------------------------------------------------------------


def serve_stdio(server: Server[Any, Any]) -> None:
    """Serve `server` on stdin and stdout until the client closes stdin.

    stdout carries the protocol alone: the process's file descriptor 1 is pointed at stderr
    first, so that whatever else writes to it (a project's tool that prints, a library's
    warning) lands on stderr instead of breaking the client's stream.
    """
    protocol = io.TextIOWrapper(os.fdopen(os.dup(1), "wb"), encoding="utf-8")
    os.dup2(2, 1)

    async def run() -> None:
        async with stdio_server(stdout=anyio.wrap_file(protocol)) as (read, write):
            await server.run(read, write, server.create_initialization_options())

    anyio.run(run)


def http_app(server: Server[Any, Any], *, token: str, loopback: bool) -> ASGIApp:
    """`server` over streamable HTTP at `/mcp`, as an ASGI app behind the bearer `token`.

    Args:
        server: From `create_server`.
        token: The bearer token every request needs.
        loopback: Served on loopback: only requests addressed to loopback names, from no web
            origin but loopback's, are served, a second wall behind the token against a web
            page reaching the server through a DNS-rebound host name.
    """
    security = (
        TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
        )
        if loopback
        else None
    )
    sessions = StreamableHTTPSessionManager(app=server, security_settings=security)
    app = Starlette(routes=[Route("/mcp", _Endpoint(sessions))], lifespan=lambda _: sessions.run())
    return TokenGate(app, token=token, printed_by="plangate mcp")


class _Endpoint:
    """The MCP sessions as an ASGI app, which a Starlette route passes the request as it came
    (a function it would wrap as a request-response endpoint)."""

    def __init__(self, sessions: StreamableHTTPSessionManager) -> None:
        self.sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.sessions.handle_request(scope, receive, send)
