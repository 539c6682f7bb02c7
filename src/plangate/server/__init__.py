"""The approvals inbox in the browser: `plangate serve`, or `create_app(db, token=...)` under any
ASGI server. Needs the `plangate[server]` extra (FastAPI and uvicorn).

Example:
    >>> from plangate.server import create_app
    >>> app = create_app("sqlite:///runs.db", token="s3cret")  # doctest: +SKIP
"""

from plangate.server.app import create_app

__all__ = ("create_app",)
