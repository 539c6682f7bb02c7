"""The inbox's door when the project knows people (`identity:` in the project file): every API
request is a person's, known by their sign-in (the session cookie) or by a bearer token that
names them (a plangate token, an OpenID Connect access token). A shared token is no way in.

Plain ASGI, as the token gate is, so that the event stream passes through untouched. It sits
inside Starlette's `SessionMiddleware`, which reads the signed session cookie into
`scope["session"]`; it puts the person it found in `scope["state"]["caller"]` for the routes.

A request the cookie authenticates, and that changes something (any method but GET, HEAD and
OPTIONS), must also carry `X-CSRF-Token`, equal to the session's CSRF token (`GET /api/me`
gives it to the page): a browser sends the cookie along with another site's form or fetch, but
no other site can read the token. A bearer request needs none: a browser never adds that
header by itself.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.responses import JSONResponse

from plangate.errors import PlangateError
from plangate.identity._identity import Identity, identity_from
from plangate.server._token_gate import ASGIApp, Receive, Scope, Send, secured

__all__ = ("CSRF_HEADER", "IdentityGate", "SignOuts", "session_caller", "signed_in")

CSRF_HEADER = "x-csrf-token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

BearerCheck = Callable[[str], "Identity | None"]


def signed_in(session: dict[str, Any], identity: Identity, *, hours: float) -> None:
    """Make `session` (emptied first) that of `identity`, signed in for `hours`, with a new
    CSRF token and an id of its own (for `SignOuts`)."""
    session.clear()
    session.update(
        {
            "identity": dict(identity),
            "csrf": secrets.token_urlsafe(32),
            "sid": secrets.token_urlsafe(16),
            "expires_at": time.time() + hours * 3600,
        }
    )


class SignOuts:
    """The sessions signed out while this process serves, each until it would have expired.
    The session lives in its cookie, so signing out empties the browser's copy only: a copy
    kept from before (another tab's, a stolen one) is refused by its id here."""

    def __init__(self) -> None:
        self._ended: dict[str, float] = {}
        self._lock = threading.Lock()

    def end(self, session: Mapping[str, Any]) -> None:
        sid, expires_at = session.get("sid"), session.get("expires_at")
        if not isinstance(sid, str) or not isinstance(expires_at, (int, float)):
            return
        now = time.time()
        with self._lock:
            self._ended = {k: v for k, v in self._ended.items() if v > now}
            self._ended[sid] = expires_at

    def __contains__(self, session: Mapping[str, Any]) -> bool:
        with self._lock:
            return session.get("sid") in self._ended


def session_caller(
    session: Mapping[str, Any] | None, signed_out: SignOuts | None = None
) -> Identity | None:
    """The person `session` is signed in as, `None` if nobody is or the sign-in has expired.
    A changed session is a new cookie, signed anew, its Max-Age counting from then (a sign-in
    started again changes it); `expires_at` never moves, so a sign-in ends when the project's
    `session_hours` say, whatever happened to its cookie meanwhile."""
    if not session or not isinstance(session.get("identity"), Mapping):
        return None
    expires_at = session.get("expires_at")
    if not isinstance(expires_at, (int, float)) or expires_at <= time.time():
        return None
    if signed_out is not None and session in signed_out:
        return None
    try:
        return identity_from(session["identity"], where="session")
    except ValueError:
        return None


def _refusal(status: int, detail: str, hint: str, error: str) -> JSONResponse:
    headers = {"www-authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(
        {"detail": detail, "hint": hint, "error": error}, status_code=status, headers=headers
    )


class IdentityGate:
    """Refuses every HTTP request that is no known person's, except to a path `public` lets
    through; adds `headers` to every response.

    Args:
        app: The app behind the gate (inside `SessionMiddleware`).
        bearer: Who a bearer token belongs to, `None` if nobody (a blocking call: it runs in
            a worker thread).
        public: Whether a path may be read by anyone.
        signed_out: The sessions signed out, refused though their cookie is good.
        headers: Headers every response gets unless it sets them itself.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        bearer: BearerCheck,
        public: Callable[[str], bool],
        signed_out: SignOuts,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.app = app
        self.bearer = bearer
        self.public = public
        self.signed_out = signed_out
        self.headers = dict(headers or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = secured(send, self.headers)
        if self.public(scope["path"]):
            await self.app(scope, receive, send)
            return
        refusal, caller, via = await self._authenticate(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["caller"], state["via"] = caller, via
        await self.app(scope, receive, send)

    async def _authenticate(
        self, scope: Scope
    ) -> tuple[JSONResponse | None, Identity | None, str | None]:
        headers = Headers(scope=scope)
        scheme, _, given = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and given.strip():
            try:
                caller = await run_in_threadpool(self.bearer, given.strip())
            except PlangateError as exc:  # the provider cannot be reached
                return (
                    _refusal(503, exc.message, exc.hint or "", "IdentityProviderDown"),
                    None,
                    None,
                )
            if caller is None:
                return (
                    _refusal(
                        401,
                        "the bearer token is nobody's: unknown, revoked or expired",
                        "send a plangate token or an access token of the project's OpenID "
                        "provider, or sign in at /auth/login",
                        "Unauthorized",
                    ),
                    None,
                    None,
                )
            return None, caller, "bearer"
        session = scope.get("session")
        caller = session_caller(session, self.signed_out)
        if caller is None:
            return (
                _refusal(
                    401,
                    "not signed in, or the sign-in has expired",
                    "sign in at /auth/login, or send Authorization: Bearer <your token>",
                    "Unauthorized",
                ),
                None,
                None,
            )
        if scope["method"] not in _SAFE_METHODS:
            sent = headers.get(CSRF_HEADER, "")
            expected = str((session or {}).get("csrf", ""))
            if not (sent and expected and secrets.compare_digest(sent, expected)):
                return (
                    _refusal(
                        403,
                        "missing or wrong CSRF token: nothing was done",
                        f"send {CSRF_HEADER}: the csrf_token of GET /api/me",
                        "Forbidden",
                    ),
                    None,
                    None,
                )
        return None, caller, "session"
