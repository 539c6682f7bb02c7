"""The faces plangate serves over HTTP: the approvals inbox in the browser (`plangate serve`, or
`create_app(db, token=...)` under any ASGI server; the `plangate[server]` extra, FastAPI and
uvicorn), and the MCP face (`plangate mcp`, `plangate.server.mcp_face`; the `plangate[mcp]`
extra). Each is imported only when used: the MCP face needs no FastAPI.

`listen` then `serve` run an app as `plangate serve` does, on a socket bound first: with port 0
the system picks a free port, known before anything is served.

Examples:
    >>> from plangate.server import create_app, listen, serve
    >>> app = create_app("sqlite:///runs.db", token="s3cret")  # doctest: +SKIP
    >>> sock = listen("127.0.0.1", 0)  # doctest: +SKIP
    >>> print(f"http://127.0.0.1:{sock.getsockname()[1]}/")  # doctest: +SKIP
    >>> serve(app, sock)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plangate._lazy import lazy_exports

if TYPE_CHECKING:
    from plangate.server._serving import listen, serve
    from plangate.server.app import create_app

# Each name's module is imported on first use (see `plangate._lazy`).
lazy_exports(
    __name__,
    {
        "create_app": "plangate.server.app",
        "listen": "plangate.server._serving",
        "serve": "plangate.server._serving",
    },
)

__all__ = ("create_app", "listen", "serve")
