"""Workers: a worker process, `plangate worker`: it runs the project's queue until a signal
stops it. The first SIGTERM (or Ctrl-C) lets each run in progress finish the step it is in,
then queues the rest of it again; a second one ends the process at once (its jobs then go to
another worker once its heartbeat is `stall_seconds` old)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Sequence

from plangate.project import Project
from plangate.workers._app import QUEUE, apply_schema, worker_app
from plangate.workers._go_on import Drains

__all__ = ("run_worker",)

log = logging.getLogger("plangate.workers")


def run_worker(
    project: Project,
    *,
    concurrency: int = 2,
    queues: Sequence[str] | None = None,
    name: str | None = None,
) -> None:
    """Run a worker for `project` until SIGTERM or SIGINT.

    Args:
        project: Its `workers:` settings and PostgreSQL database.
        concurrency: Runs that go on at once in this process (each in a thread).
        queues: The queues to take jobs from (default: plangate's).
        name: The worker's name in procrastinate's logs, `plangate jobs` and `plangate runs`
            (default: `host:pid`).

    Raises:
        ProjectError: The project has no `workers:`, or its database is not PostgreSQL.
    """
    settings = project.workers
    apply_schema(project.db)
    drains = Drains()
    app = worker_app(project, drains=drains)

    async def work() -> None:
        loop = asyncio.get_running_loop()
        async with app.open_async():
            running = asyncio.create_task(
                app.run_worker_async(
                    concurrency=concurrency,
                    queues=list(queues or (QUEUE,)),
                    name=name or f"{socket.gethostname()}:{os.getpid()}",
                    install_signal_handlers=False,
                    update_heartbeat_interval=settings.heartbeat_seconds,
                    stalled_worker_timeout=settings.stall_seconds,
                    fetch_job_polling_interval=settings.heartbeat_seconds,
                )
            )
            signals = 0

            def stop() -> None:
                nonlocal signals
                signals += 1
                if signals > 1:
                    os._exit(128 + signal.SIGTERM)
                log.warning("stopping: the steps in flight finish, the rest is queued again")
                drains.drain_all()
                running.cancel()

            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop)
            with contextlib.suppress(asyncio.CancelledError):
                await running

    asyncio.run(work())
