"""The approvals inbox in the browser: `plangate serve`, or `create_app(db, token=...)` under any
ASGI server. Needs the `plangate[server]` extra (FastAPI and uvicorn).

`listen` then `serve` run it as `plangate serve` does, on a socket bound first: with port 0 the
system picks a free port, known before anything is served.

Examples:
    >>> from plangate.server import create_app, listen, serve
    >>> app = create_app("sqlite:///runs.db", token="s3cret")  # doctest: +SKIP
    >>> sock = listen("127.0.0.1", 0)  # doctest: +SKIP
    >>> print(f"http://127.0.0.1:{sock.getsockname()[1]}/")  # doctest: +SKIP
    >>> serve(app, sock)  # doctest: +SKIP
"""

from plangate.server._serving import listen, serve
from plangate.server.app import create_app

__all__ = ("create_app", "listen", "serve")
