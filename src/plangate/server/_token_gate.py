"""The bearer token every served face asks for (the inbox, the MCP face over HTTP): plain ASGI,
so that streamed responses (the inbox's event stream, MCP's) pass through untouched."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse

__all__ = ("ASGIApp", "Receive", "Scope", "Send", "TokenGate", "secured")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _nothing_public(_path: str) -> bool:
    return False


class TokenGate:
    """Refuses every HTTP request without `Authorization: Bearer <token>`, before anything
    else reads it, except those to a path `public` lets through; adds `headers` to every
    response.

    Args:
        app: The app behind the gate.
        token: The token; compared in constant time.
        printed_by: The command that printed the token, for the refusal's hint.
        public: Whether a path may be read without the token (default: none may).
        headers: Headers every response gets unless it sets them itself.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str,
        printed_by: str,
        public: Callable[[str], bool] = _nothing_public,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.app = app
        self.token = token.encode()
        self.printed_by = printed_by
        self.public = public
        self.headers = dict(headers or {})

    def _authorised(self, scope: Scope) -> bool:
        header = Headers(scope=scope).get("authorization", "")
        scheme, _, given = header.partition(" ")
        return scheme.lower() == "bearer" and secrets.compare_digest(
            given.strip().encode(), self.token
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not self.public(scope["path"]) and not self._authorised(scope):
            response = JSONResponse(
                {
                    "detail": "missing or wrong token",
                    "hint": f"send Authorization: Bearer <the token {self.printed_by} printed>",
                    "error": "Unauthorized",
                },
                status_code=401,
                headers={"www-authenticate": "Bearer"},
            )
            await response(scope, receive, self._secured(send))
            return
        await self.app(scope, receive, self._secured(send))

    def _secured(self, send: Send) -> Send:
        return secured(send, self.headers)


def secured(send: Send, headers: Mapping[str, str]) -> Send:
    """`send`, adding `headers` to the response unless it sets them itself."""
    if not headers:
        return send

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            given = MutableHeaders(scope=message)
            for name, value in headers.items():
                given.setdefault(name, value)
        await send(message)

    return wrapped
