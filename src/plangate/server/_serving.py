"""Serving the inbox on a socket bound before the server starts.

Binding first is what lets `plangate serve --port 0` work: the system picks a free port, which
is known (and can be printed) before anything is served, and which no other process can take in
between, as it could if a free port were looked up, released, and then bound by the server.
"""

from __future__ import annotations

import socket
from typing import Any

from plangate.errors import PlangateUsageError

__all__ = ("listen", "serve")


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on `host`:`port` (`0`: a free port the system picks; read it with
    `sock.getsockname()[1]`), ready for `serve`.

    Raises:
        PlangateUsageError: The address cannot be listened on (the port is taken, say).
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise PlangateUsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        # As uvicorn binds: a port left in TIME_WAIT by a server just stopped can be bound again.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise PlangateUsageError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            hint="listen on another port, or 0 for one the system picks",
        ) from None
    return sock


def serve(app: Any, sock: socket.socket, **options: Any) -> None:
    """Serve the ASGI `app` with uvicorn on `sock` (from `listen`) until interrupted; `options`
    go to `uvicorn.Config` (by default warnings only, and three seconds for requests to end)."""
    import uvicorn

    config = uvicorn.Config(
        app, **{"log_level": "warning", "timeout_graceful_shutdown": 3, **options}
    )
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    if not server.started:  # uvicorn has logged why (the app's startup failed, say)
        raise PlangateUsageError("the inbox did not start")
