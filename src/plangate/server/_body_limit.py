"""The inbox's limit on request bodies: a body over it is refused (413) before it is read.

FastAPI reads a JSON body whole before it validates it, and parsing takes several times its
size in memory: a 200 MB body took a server past 600 MB before it was refused. FastAPI's own
`max_body_size` answers a body of a declared length in plain text, in place of any response
the app gives; this one answers in the inbox's `{detail, hint, error}` form.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

__all__ = ("BodyLimit", "too_large")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def too_large(limit: int) -> JSONResponse:
    """The answer to a body over `limit` bytes."""
    return JSONResponse(
        {
            "detail": f"the request body is over the limit of {limit:,} bytes",
            "hint": "set inbox.max_body_bytes in the project file to take larger ones",
            "error": "RequestTooLarge",
        },
        status_code=413,
    )


class BodyLimit:
    """ASGI middleware: a request that declares a `Content-Length` over `limit` is answered 413
    without a byte of its body read; one sent in chunks is stopped as soon as it grows past
    `limit`, with an `HTTPException(413)` that FastAPI passes on to its handler (the app's
    handler for 413 answers it with `too_large`)."""

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            await too_large(self.limit)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise HTTPException(413)
            return message

        await self.app(scope, counted, send)
