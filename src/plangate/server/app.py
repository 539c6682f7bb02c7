"""The approvals inbox as an ASGI app: one page and a JSON API over a checkpoint database.

Where the project knows people (`identity:` in its file), every API request is a person's
instead, known by their sign-in with the project's OpenID provider (a session cookie, and an
`X-CSRF-Token` on every POST) or by a bearer token that names them (a plangate token, an OIDC
access token); the shared token is then no way in, and the person is the caller of every run
started and every decision taken (see `_sign_in` for its routes). Without it, what follows.

Approval requests carry a step's real arguments (the approver must see what they approve), so
every API request, reads included, needs `Authorization: Bearer <token>`. Only the page, its
assets and `/openapi.json` are public: they hold no run data, and the page asks for the token
before it shows anything. Served on loopback, the Host check (`allowed_hosts`) is a second wall.
The event stream takes the token in the header as well, never in its URL, where access logs and
proxies would keep it.

| method | path | does |
|--------|------|------|
| GET | `/`, `/static/*` | the page (inbox, run view, start form) and its assets; no token |
| GET | `/api/me` | who the request is (with `identity:`), and the session's CSRF token |
| GET | `/api/info` | the profiles a run can start under, the server's clock |
| GET | `/api/pending` | every approval request waiting, real args included, with its run's goal |
| GET | `/api/runs` | the most recently written runs (`?limit=50`) |
| POST | `/api/runs` | start a plan: `{plan, profile, thread?, offline?, started_by?}` -> 201, 202 |
| GET | `/api/runs/{thread}` | the run view: steps, budget per tier, golden signals, waiting |
| GET | `/api/runs/{thread}/trace` | the whole trace |
| GET | `/api/runs/{thread}/events` | the trace live, as server-sent events (see `_events`) |
| POST | `/api/runs/{thread}/decision` | a decision on the waiting approval -> 202 |
| POST | `/api/runs/{thread}/resume` | go on with a run whose process stopped mid-way -> 202 |

A decision is a `plangate.Decision` as JSON with `approver` required (`reason` too, to reject),
and optionally the `interrupt_id` of the request decided and its `digest`: either binds the
decision to the request the approver saw, so that it never answers another.

A run's `status` is its result's once it has finished (`success`, `partial`, `failed`), else
`waiting` (for a decision), `running` (a process holds it: this server, `plangate run`, a worker)
or `stopped` (its process died between two steps; `resume` goes on with it).

While it serves, a thread of its own closes every approval that expires unanswered, a moment
after it expires (`create_app(expire_every=...)`, see `plangate.watch_expiry`); the run goes on
in the server as its profile's `on_expiry` says.

With workers on (`workers:` in the project file, and the inbox on the project's database), the
inbox runs no run itself: a start, a decision and a Resume are checked at once as above (a bad
one refused with its status, nothing queued), then queued as one `go_on` job under the thread's
lock, answered 202 with `status: queued` and the job's id; a `plangate worker` goes on with it.
The inbox watches no expiry then: the workers close expired approvals. A request decided and
queued is listed with `queued` (the job, the decision, who took it) and no decision of anyone
else's; a second decision on it is refused (409) until a worker has applied the first. One whose
decision's job failed is listed with `last_failed` (and its error), decidable again. A run whose
start is queued and not yet made by a worker (it has no checkpoint) has a run view all the same:
`status: queued`, its start's `job`, the `worker` starting it once one has taken it, and what
happens `next`; no steps, budget or trace yet (its event stream answers 404 until the start is
made, and the page waits for it before following the run). A thread with nothing queued is 404.

What leaves the decision path (the run view's steps, the trace, the event stream) is redacted as
the run's profile says; only the waiting approvals carry the real arguments.

Errors are `{"detail": one line, "hint", "error"}`: 401 no or wrong token (nothing read or
changed), 404 unknown thread, 409 the run is being resumed elsewhere, no longer waits for that
approval, or (to `resume`) waits for a decision or has finished, 413 a request body over the
project's `inbox.max_body_bytes` (refused before it is read), 422 a bad plan, profile or
decision (the run stays paused and resumable).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from importlib import resources
from typing import Annotated, Any

from fastapi import Body, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware

from plangate._time import iso, utc_now
from plangate.errors import (
    DecisionQueued,
    NoPendingApproval,
    PlangateError,
    PlangateUsageError,
    ResumeConflict,
    StaleDecision,
    UnknownThread,
)
from plangate.identity import Identity, unverified
from plangate.project import Project
from plangate.project._spec import IdentitySettings
from plangate.runs.checkpoint import shown_url
from plangate.runs.service import FINISHED, NotStopped, RunService, ThreadExists
from plangate.server._body_limit import BodyLimit, too_large
from plangate.server._sign_in import install_identity, me
from plangate.server._token_gate import TokenGate

__all__ = ("create_app",)

_PUBLIC_PATHS = frozenset({"/", "/openapi.json"})
# The page's script is app.js and the modules it imports, each served as JavaScript: a browser
# runs a module script only if it comes with a JavaScript MIME type. They sit beside app.js, as
# the token gate lets only `/static/<name>` through without the token.
_MODULES = (
    "api.js",
    "app.js",
    "approval.js",
    "clock.js",
    "dialog.js",
    "dom.js",
    "format.js",
    "gate.js",
    "inbox.js",
    "page.js",
    "router.js",
    "run.js",
    "runs.js",
    "signin.js",
    "start.js",
    "stream.js",
    "trace.js",
)
_ASSETS = {
    **dict.fromkeys(_MODULES, "text/javascript; charset=utf-8"),
    "app.css": "text/css; charset=utf-8",
}
_STATUS: tuple[tuple[type[PlangateError], int], ...] = (
    (UnknownThread, 404),
    (ResumeConflict, 409),
    (NoPendingApproval, 409),
    (StaleDecision, 409),
    (DecisionQueued, 409),
    (ThreadExists, 409),
    (NotStopped, 409),
    (PlangateUsageError, 422),
)
_HEADERS = {
    # No inline script, no other origin: the page ships everything it uses.
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "x-content-type-options": "nosniff",
    # The page's address may carry the token until the page moves it to sessionStorage.
    "referrer-policy": "no-referrer",
}


class StartRequest(BaseModel):
    """What `POST /api/runs` takes."""

    model_config = ConfigDict(extra="forbid")

    plan: str | dict[str, Any] | list[Any] = Field(
        description="The plan: YAML or JSON text, or the plan itself."
    )
    profile: str | None = Field(
        default=None, description="One of /api/info's profiles (default: the project's)."
    )
    thread: str | None = None
    offline: bool = False
    started_by: str | None = None


def _public(path: str) -> bool:
    """Whether `path` may be read without the token: only what holds no run data. Anything
    else, a path no route serves included, is refused, so that a route added later is
    guarded unless it is listed here."""
    return path in _PUBLIC_PATHS or (path.startswith("/static/") and "/" not in path[8:])


def _lifespan(
    service: RunService, expire_every: float | None
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """While the inbox serves, a thread of its own closes approvals as they expire; at its end,
    the service and the token store close."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        watcher = threading.Thread(
            target=service.watch_expiry,
            kwargs={"every": expire_every, "stop": stop},
            name="plangate-expiry",
            daemon=True,  # never keeps a process from exiting; `stop` ends it first here
        )
        if expire_every is not None and not service.queues:  # else the workers' sweep does it
            watcher.start()
        yield
        stop.set()
        if watcher.is_alive():  # it ends once the run it may be closing has made its move
            await run_in_threadpool(watcher.join)
        await run_in_threadpool(service.close)
        if getattr(_app.state, "tokens", None) is not None:
            await run_in_threadpool(_app.state.tokens.close)

    return lifespan


def _door(identity: IdentitySettings | None, token: str | None) -> IdentitySettings | None:
    """How people come in: `identity` (they sign in, or send their own token), else `token`."""
    if identity is None and not token:
        raise PlangateUsageError("the inbox needs a token", hint="pass --token or PLANGATE_TOKEN")
    if identity is not None and token:
        raise PlangateUsageError(
            "the project knows people (identity: in its file): a shared token is no way into "
            "its inbox",
            hint="drop --token and PLANGATE_TOKEN; people sign in, programs send their own token",
        )
    return identity


def _page_html(identity: IdentitySettings | None) -> str:
    """The page, telling its script how people come in (a meta tag: a script would be inline,
    which the CSP forbids): `oidc` (they sign in), `bearer` (they paste a token of their own,
    which names them) or `token` (they paste the inbox's, and type their name)."""
    door = "token" if identity is None else "oidc" if identity.oidc is not None else "bearer"
    return _asset("index.html").replace(
        '<meta name="plangate-door" content="token">',
        f'<meta name="plangate-door" content="{door}">',
    )


def _guard(
    app: FastAPI,
    identity: IdentitySettings | None,
    *,
    token: str | None,
    db: str,
    allowed_hosts: Sequence[str] | None,
) -> None:
    """The door around `app`: people signed in or known by their token (`identity`), else the
    shared `token`; outside it, the Host check."""
    if identity is not None:
        install_identity(
            app, identity, db=db, allowed_hosts=allowed_hosts, public=_public, headers=_HEADERS
        )
    else:
        assert token is not None
        app.add_middleware(
            TokenGate, token=token, printed_by="plangate serve", public=_public, headers=_HEADERS
        )
    if allowed_hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))


def _caller(request: Request) -> Identity | None:
    """The person the identity gate found (`None` without `identity:`: the approver typed)."""
    caller: Identity | None = getattr(request.state, "caller", None)
    return caller


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath("static").joinpath(name).read_text("utf-8")


def _error_body(exc: PlangateError) -> dict[str, Any]:
    body: dict[str, Any] = {"detail": exc.message, "hint": exc.hint, "error": type(exc).__name__}
    field = getattr(exc, "field", None)
    if field:
        body["field"] = field
    return body


async def _too_large(request: Request, _exc: Exception) -> JSONResponse:
    return too_large(request.app.state.service.project.spec.inbox.max_body_bytes)


def create_app(
    db: str,
    *,
    token: str | None = None,
    allowed_hosts: Sequence[str] | None = None,
    poll_interval: float = 0.25,
    project: Project | None = None,
    expire_every: float | None = 30.0,
) -> FastAPI:
    """The inbox app over the checkpoint database `db` (a path, `sqlite:///...` or
    `postgresql://...`), with runs set up as `plangate run` sets them up.

    Args:
        db: The checkpoint database.
        token: The bearer token every API request must carry; with `identity:` in the
            project file, none: each person signs in or sends their own token.
        allowed_hosts: Host names requests may be addressed to (`None`: any). Served on
            loopback, `["127.0.0.1", "localhost"]` keeps other web sites from reaching the
            inbox through a DNS-rebound name: a second wall behind the token.
        poll_interval: Seconds between the event stream's looks at the checkpointer.
        project: Where runs started from the page run (its tools and profiles); default: the
            built-in demo beside the database.
        expire_every: While it serves, the inbox closes every approval that expires unanswered
            a moment after it expires (`plangate.watch_expiry`), looking at the database at
            least every `expire_every` seconds for requests made elsewhere; `None` leaves them
            waiting (`plangate expire` closes them). With workers on in `project` (its
            `workers:`, on `db`), no watch: the workers close them at their deadline.

    Examples:
        >>> import uvicorn
        >>> app = create_app("plangate.db", token="s3cret")
        >>> # uvicorn.run(app, host="127.0.0.1", port=8765)
    """
    if expire_every is not None and not expire_every > 0:  # also NaN
        raise PlangateUsageError(
            f"expire_every={expire_every!r}: give a positive number of seconds",
            hint="or None, to leave expired approvals to `plangate expire`",
        )
    service = RunService(db, project=project)
    identity = _door(service.project.identity, token)

    app = FastAPI(
        title="plangate inbox",
        summary="Approve, edit or reject the tool calls plangate runs wait on.",
        lifespan=_lifespan(service, expire_every),
        docs_url=None,  # Swagger UI loads from a CDN; /openapi.json stays
        redoc_url=None,
        exception_handlers={413: _too_large},
        # Inside the token gate: a request without the token is refused before any of this.
        middleware=[Middleware(BodyLimit, limit=service.project.spec.inbox.max_body_bytes)],
    )
    app.state.service = service

    @app.exception_handler(PlangateError)
    async def plangate_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, PlangateError)
        status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 500)
        return JSONResponse(_error_body(exc), status_code=status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0]
        if first.get("type") == "json_invalid":  # its `loc` is a character offset, not a field
            why = (first.get("ctx") or {}).get("error", "it does not parse")
            detail = f"the request body is not valid JSON: {why} at char {first['loc'][-1]}"
        else:
            where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
            detail = (
                f"{where}: {first.get('msg')}"
                if where
                else "the request body must be a JSON object (Content-Type: application/json)"
            )
        return JSONResponse(
            {"detail": detail, "hint": None, "error": "InvalidRequest"}, status_code=422
        )

    html = _page_html(identity)

    @app.get("/", include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(html, headers={"cache-control": "no-cache"})

    @app.get("/static/{name}", include_in_schema=False)
    def asset(name: str) -> Response:
        if name not in _ASSETS:
            return JSONResponse({"detail": "not found"}, status_code=404)
        return Response(
            _asset(name), media_type=_ASSETS[name], headers={"cache-control": "no-cache"}
        )

    app.get("/api/me")(me)

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        return {
            "profiles": service.project.profile_names,
            "default_profile": service.project.spec.profile,
            "project": service.project.name,
            "demo": service.project.file is None,
            "database": shown_url(db),  # no password on the page
            "server_time": iso(utc_now()),
        }

    @app.get("/api/pending")
    def pending(request: Request) -> dict[str, Any]:
        approvals = service.pending(caller=_caller(request))
        return {"server_time": iso(utc_now()), "approvals": approvals}

    @app.get("/api/runs")
    def runs(limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict[str, Any]:
        return {"runs": service.runs(limit)}

    @app.post("/api/runs", status_code=201)
    def start(request: Request, response: Response, body: StartRequest) -> dict[str, Any]:
        caller = _caller(request)
        started = service.start(
            plan=body.plan,
            profile=body.profile,
            thread=body.thread or None,
            offline=body.offline,
            caller=caller or (unverified(body.started_by) if body.started_by else None),
        )
        if started.get("status") == "queued":  # accepted: a worker starts it
            response.status_code = 202
        return dict(started)

    @app.get("/api/runs/{thread}")
    def run(thread: str) -> dict[str, Any]:
        return dict(service.run(thread))

    @app.get("/api/runs/{thread}/trace")
    def trace(thread: str) -> dict[str, Any]:
        return {"thread": thread, "events": service.trace(thread)}

    @app.post("/api/runs/{thread}/decision", status_code=202)
    def decide(
        thread: str, request: Request, body: Annotated[dict[str, Any], Body()]
    ) -> dict[str, Any]:
        return {"status": "running", **service.decide(thread, body, caller=_caller(request))}

    @app.post("/api/runs/{thread}/resume", status_code=202)
    def resume(thread: str) -> dict[str, Any]:
        return {"status": "running", **service.resume(thread)}

    @app.get("/api/runs/{thread}/events")
    async def events(
        thread: str,
        request: Request,
        after: Annotated[int, Query(ge=-1)] = -1,
    ) -> StreamingResponse:
        """The run's trace as server-sent events, live while it goes on."""
        await run_in_threadpool(service.poll, thread, None)  # 404 before the stream opens
        last_id = request.headers.get("last-event-id", "")
        start_after = int(last_id) if last_id.isdigit() else after
        return StreamingResponse(
            _events(service, thread, request, start_after, poll_interval),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )

    _guard(app, identity, token=token, db=db, allowed_hosts=allowed_hosts)
    return app


_HEARTBEAT_SECONDS = 15.0
# How often a run shown `running` is looked at again though it wrote nothing: a process that
# dies between two steps writes nothing, and its run turns `stopped` all the same.
_RECHECK_SECONDS = 1.0


async def _events(
    service: RunService, thread: str, request: Request, after: int, interval: float
) -> AsyncIterator[str]:
    """Server-sent events of a run's trace: `trace` (one trace event, `id` its seq, so that a
    reader that reconnects with `Last-Event-ID` goes on where it stopped), `status` (the run's
    status when it changes) and `end` (the run finished and every event was sent; the stream
    closes). The page reads it with `fetch()`, which, unlike `EventSource`, sends the token in
    a header.

    It polls the checkpointer: one indexed read per `interval` while nothing moves, the trace
    when a new checkpoint appears. So it follows runs of any process, the CLI's included. A run
    shown `running` is looked at again now and then though nothing moved, since a process that
    dies between two steps writes nothing: its status turns `stopped`.
    """
    yield "retry: 2000\n\n"
    seen: str | None = None
    status: str | None = None
    quiet = unchecked = 0.0
    while not await request.is_disconnected():
        recheck = status == "running" and unchecked >= _RECHECK_SECONDS
        if recheck:
            unchecked = 0.0
        seen, trace, now = await run_in_threadpool(service.poll, thread, seen, status=recheck)
        if trace is not None:
            for event in trace:
                if event["seq"] > after:
                    after = event["seq"]
                    data = json.dumps(event, ensure_ascii=False, default=str)
                    yield f"id: {event['seq']}\nevent: trace\ndata: {data}\n\n"
                    quiet = 0.0
        if now is not None and now != status:
            status = now
            yield f"event: status\ndata: {json.dumps({'status': status})}\n\n"
        if status in FINISHED and not service.running(thread):
            yield f"event: end\ndata: {json.dumps({'status': status})}\n\n"
            return
        quiet += interval
        unchecked += interval
        if quiet >= _HEARTBEAT_SECONDS:
            quiet = 0.0
            yield ": still here\n\n"
        await asyncio.sleep(interval)
