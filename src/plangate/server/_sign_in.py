"""The inbox with people signed in (`identity:` in the project file): its session, its sign-in
routes, and who a bearer token belongs to.

| method | path | does |
|--------|------|------|
| GET | `/auth/login` | sends the browser to the OpenID provider (code flow, PKCE); public |
| GET | `/auth/callback` | where the provider sends it back: signs the person in, then `/`; public |
| POST | `/auth/logout` | signs out (the session's `X-CSRF-Token` needed while signed in) -> 204 |
| GET | `/api/me` | who the request is, how it came (`via`), the session's `csrf_token` |

The session is Starlette's: a cookie (`plangate_session`) signed under a key derived from the
project's signing key (never the key itself), HttpOnly, SameSite=Lax, Secure unless the inbox
is served on loopback only, and dropped by the browser after `session_hours`, after which the
server refuses it too, however often it was renewed meanwhile.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import secrets
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from functools import partial
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from plangate._time import iso
from plangate.errors import PlangateError, PlangateUsageError
from plangate.identity.tokens import TokenStore, bearer_identity
from plangate.project._spec import IdentitySettings
from plangate.server._identity_gate import (
    CSRF_HEADER,
    IdentityGate,
    SignOuts,
    session_caller,
    signed_in,
)

__all__ = ("SIGN_IN_PATHS", "install_identity", "me")

SIGN_IN_PATHS = frozenset({"/auth/login", "/auth/callback", "/auth/logout"})
SESSION_COOKIE = "plangate_session"
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})


def session_secret(signing_key: str) -> str:
    """The key the session cookie is signed with: derived from the project's signing key, so
    that a cookie's signature tells nothing about the key that signs decisions."""
    return hmac.new(
        signing_key.encode(), b"plangate inbox session cookie", hashlib.sha256
    ).hexdigest()


def _failed(status: int, message: str) -> HTMLResponse:
    """A page saying why a sign-in failed, with a way to try again (no script: it needs none)."""
    text = html.escape(message)
    return HTMLResponse(
        "<!doctype html><html lang=en><meta charset=utf-8><title>plangate · sign-in failed"
        f"</title><h1>Sign-in failed</h1><p id=sign-in-error>{text}</p>"
        '<p><a href="/auth/login">Sign in again</a> · <a href="/">Back to the inbox</a></p>',
        status_code=status,
        headers={"cache-control": "no-store"},
    )


def install_identity(
    app: FastAPI,
    settings: IdentitySettings,
    *,
    db: str,
    allowed_hosts: Sequence[str] | None,
    public: Callable[[str], bool],
    headers: dict[str, str],
) -> None:
    """Give `app` its sign-in routes, the identity gate, and the session around it (add it
    after every route, before any middleware that must run first, as `TrustedHostMiddleware`).
    The store of plangate's tokens it reads is `app.state.tokens`, to close at shutdown."""
    try:
        # Optional: itsdangerous signs the session cookie, Authlib and httpx speak to the
        # provider. Without `identity:` the inbox needs none of them.
        from starlette.middleware.sessions import SessionMiddleware

        from plangate.identity.oidc import OidcSignIn
    except ImportError as exc:
        raise PlangateUsageError(
            f"the inbox of a project with identity: needs {exc.name or 'authlib'}",
            hint="install plangate's `oidc` extra (from a checkout: pip install '.[oidc]')",
        ) from None
    oidc = OidcSignIn(settings.oidc) if settings.oidc is not None else None
    hours = settings.oidc.session_hours if settings.oidc is not None else 8.0
    signed_out = SignOuts()
    add_sign_in_routes(app, oidc, hours=hours, signed_out=signed_out)
    app.state.tokens = TokenStore(db)
    app.add_middleware(
        IdentityGate,
        bearer=partial(
            bearer_identity,
            tokens=app.state.tokens,
            provider=oidc.verify_access_token if oidc is not None else None,
        ),
        public=lambda path: public(path) or path in SIGN_IN_PATHS,
        signed_out=signed_out,
        headers=headers,
    )
    loopback_only = allowed_hosts is not None and set(allowed_hosts) <= _LOOPBACK_HOSTS
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret(settings.signing_key),
        session_cookie=SESSION_COOKIE,
        max_age=round(hours * 3600),
        same_site="lax",
        https_only=not loopback_only,
    )


def add_sign_in_routes(app: FastAPI, oidc: Any, *, hours: float, signed_out: SignOuts) -> None:
    """`/auth/login`, `/auth/callback`, `/auth/logout` (`oidc`: the `OidcSignIn`, `None`
    where people come with bearer tokens only)."""

    @app.get("/auth/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        if oidc is None:
            return _failed(404, "This inbox signs nobody in: the project has no identity.oidc.")
        try:
            url, pending = await run_in_threadpool(
                oidc.begin, str(request.url_for("auth_callback"))
            )
        except PlangateError as exc:
            return _failed(502, exc.message)
        request.session["sign_in"] = dict(pending)
        return RedirectResponse(url, status_code=303, headers={"cache-control": "no-store"})

    @app.get("/auth/callback", name="auth_callback", include_in_schema=False)
    async def callback(request: Request) -> Response:
        from plangate.identity.oidc import SignInRefused

        if oidc is None:
            return _failed(404, "This inbox signs nobody in: the project has no identity.oidc.")
        pending = request.session.pop("sign_in", None)
        try:
            identity = await run_in_threadpool(oidc.finish, pending, dict(request.query_params))
        except SignInRefused as exc:
            return _failed(400, exc.message)
        except PlangateError as exc:
            return _failed(502, exc.message)
        signed_in(request.session, identity, hours=hours)
        return RedirectResponse("/", status_code=303, headers={"cache-control": "no-store"})

    @app.post("/auth/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        session = request.session
        if session_caller(session, signed_out) is not None:
            sent = request.headers.get(CSRF_HEADER, "")
            if not (sent and secrets.compare_digest(sent, str(session.get("csrf", "")))):
                return JSONResponse(
                    {
                        "detail": "missing or wrong CSRF token: still signed in",
                        "hint": f"send {CSRF_HEADER}: the csrf_token of GET /api/me",
                        "error": "Forbidden",
                    },
                    status_code=403,
                )
        signed_out.end(session)
        session.clear()
        return Response(status_code=204)


def me(request: Request) -> dict[str, Any]:
    """What `GET /api/me` answers: who the request is, and how it came."""
    caller = getattr(request.state, "caller", None)
    via = getattr(request.state, "via", None)
    session = request.scope.get("session") or {}
    by_session = via == "session"
    expires_at = session.get("expires_at") if by_session else None
    return {
        "identity": caller,
        "via": via,
        "csrf_token": session.get("csrf") if by_session else None,
        "expires_at": iso_from_epoch(expires_at) if expires_at else None,
    }


def iso_from_epoch(seconds: float) -> str:
    return iso(datetime.fromtimestamp(seconds, tz=timezone.utc))
