"""Runs: the workers' queue as the read commands (`plangate runs`, `jobs`, `pending`, `prune`)
and the run service see it.

The queue lives in procrastinate's tables in the project's PostgreSQL database
(`plangate.workers`); these functions read and clean them with psycopg alone, so that a
command that reads runs starts without importing procrastinate. `plangate_jobs` is plangate's
own note of each job: the worker that took it and the error that failed it, one line
(procrastinate keeps neither). A job's arguments may hold a decision with the args an
approver edited: nothing here returns them, only the kind of job they make and, of a decision,
its kind and who took it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from plangate._time import parse_iso
from plangate.errors import DecisionQueued
from plangate.runs.stored import EXPIRED_DECISION

__all__ = (
    "NOTES_TABLE",
    "QueuedDecision",
    "QueuedJob",
    "QueuedStart",
    "count_jobs",
    "delete_finished_jobs",
    "delete_obsolete_expiries",
    "job_kind",
    "list_jobs",
    "queued_decisions",
    "queued_runs",
    "queued_start",
    "refuse_queued",
)

JobKind = Literal["start", "decision", "resume", "expiry", "sweep"]

NOTES_TABLE = (
    "CREATE TABLE IF NOT EXISTS plangate_jobs ("
    "job_id bigint PRIMARY KEY REFERENCES procrastinate_jobs(id) ON DELETE CASCADE, "
    "worker text, error text)"
)
"""plangate's note of each job it ran (created with procrastinate's schema)."""

_PREFIX = "plangate:"
_GO_ON = "plangate.go_on"
_EXPIRE_AT = "plangate.expire_at"
_FINAL = ("succeeded", "failed", "cancelled", "aborted")
_JOBS = """
SELECT j.id, j.task_name, j.lock, j.args, j.status::text AS status, j.attempts, j.worker_id,
       n.worker, n.error,
       (SELECT min(e.at) FROM procrastinate_events e WHERE e.job_id = j.id) AS queued_at
FROM procrastinate_jobs j LEFT JOIN plangate_jobs n ON n.job_id = j.id
WHERE j.task_name LIKE 'plangate.%%' {where}
ORDER BY j.id DESC LIMIT %(limit)s
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class QueuedJob:
    """One job of plangate's tasks, as `plangate jobs` lists it (never its arguments).

    Attributes:
        id: procrastinate's job id (`plangate jobs --retry ID`).
        thread: The run's thread (the job's lock; a scheduled expiry's argument), `None` for a
            sweep.
        kind: `start`, `decision`, `resume` (a stopped run), `expiry` or `sweep`.
        status: procrastinate's: `todo`, `doing`, `succeeded`, `failed`, `cancelled`, `aborted`.
        attempts: How many times a worker took it.
        worker: The worker that took it last (`host:pid`), if any.
        queued_at: When it was queued.
        error: Why it failed, one line (the last attempt's).
    """

    id: int
    thread: str | None
    kind: JobKind
    status: str
    attempts: int
    worker: str | None
    queued_at: datetime | None
    error: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class QueuedStart:
    """A run's start a worker has not made yet (`plangate run`, the inbox or `submit_plan`
    queued it): the run has no checkpoint until it does.

    Attributes:
        job: The start job's id.
        worker: The worker starting it, if one has taken it.
        goal: The plan's goal.
        profile: The profile it starts under.
        offline: Whether it calls its tools' mocks.
        started_by: Who started it, as the door recorded them, if it said.
        queued_at: When it was queued.
    """

    job: int
    worker: str | None
    goal: str
    profile: str | None
    offline: bool
    started_by: str | None = None
    queued_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class QueuedDecision:
    """The newest decision job answering one request, when it is not done: queued (to do, or
    in progress on a worker), or failed. Never the args an approver edited.

    Attributes:
        job: The job's id.
        status: `todo`, `doing` or `failed`.
        decision: `approve`, `edit` or `reject`.
        approver: Who decided, as the door recorded them.
        error: Why it failed, one line (a failed job's).
    """

    job: int
    status: str
    decision: str
    approver: str | None
    error: str | None

    @property
    def queued(self) -> bool:
        """Whether a worker is yet to apply it: the request is decided, not decidable."""
        return self.status in ("todo", "doing")

    def mark(self) -> dict[str, Any]:
        """What a request's view says of it: under `queued` (the job, the decision, who took
        it), or under `last_failed` (with the job's error: the request is decidable again)."""
        said = {"job": self.job, "decision": self.decision, "approver": self.approver}
        if self.queued:
            return {"queued": said}
        return {"last_failed": {**said, "error": self.error}}

    def refusal(self, thread: str) -> DecisionQueued:
        """What refuses another decision on the request, while this one is queued."""
        return DecisionQueued(thread, job=self.job, decision=self.decision, approver=self.approver)


def job_kind(task: str, args: Mapping[str, Any]) -> JobKind:
    """What a job of `task` with `args` does, without showing what its arguments hold: a
    closing scheduled at a deadline (`expire_at`) is an `expiry`, as the closing it queues."""
    if task == _EXPIRE_AT:
        return "expiry"
    if task != _GO_ON:
        return "sweep"
    resume = args.get("resume")
    if args.get("start") is not None:
        return "start"
    if resume is None:
        return "resume"
    if resume and all(value == EXPIRED_DECISION for value in resume.values()):
        return "expiry"
    return "decision"


def _has_queue(conn: Any) -> bool:
    row = conn.execute("SELECT to_regclass('procrastinate_jobs'), to_regclass('plangate_jobs')")
    found = row.fetchone()
    return found is not None and found[0] is not None and found[1] is not None


def _thread_of(lock: str | None) -> str | None:
    return lock[len(_PREFIX) :] if lock and lock.startswith(_PREFIX) else None


def count_jobs(url: str, *, failed: bool = False) -> int:
    """How many of plangate's jobs `url`'s queue holds (the failed ones, if `failed`)."""
    from plangate.runs.postgres import connect_checked

    with connect_checked(url) as conn:
        if not _has_queue(conn):
            return 0
        row = conn.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE task_name LIKE 'plangate.%%' "
            + ("AND status = 'failed'" if failed else "")
        ).fetchone()
    return int(row[0]) if row else 0


def list_jobs(
    url: str, *, failed: bool = False, job_id: int | None = None, limit: int | None = None
) -> list[QueuedJob]:
    """plangate's jobs in `url`'s queue, newest first: only the failed ones, if `failed`; only
    job `job_id`, if given; the newest `limit` ones, if given."""
    from psycopg.rows import dict_row

    from plangate.runs.postgres import connect_checked

    where = ("AND j.status = 'failed' " if failed else "") + (
        "AND j.id = %(job)s" if job_id is not None else ""
    )
    with connect_checked(url) as conn:
        if not _has_queue(conn):
            return []
        rows = (
            conn.cursor(row_factory=dict_row)
            .execute(_JOBS.format(where=where), {"job": job_id, "limit": limit})
            .fetchall()
        )
    return [
        QueuedJob(
            id=row["id"],
            # A scheduled expiry has no lock (it would block the thread's jobs): its argument.
            thread=_thread_of(row["lock"]) or (row["args"] or {}).get("thread"),
            kind=job_kind(row["task_name"], row["args"] or {}),
            status=row["status"],
            attempts=row["attempts"],
            worker=row["worker"] or (f"worker {row['worker_id']}" if row["worker_id"] else None),
            queued_at=row["queued_at"],
            error=row["error"] if row["status"] == "failed" else None,
        )
        for row in rows
    ]


def queued_runs(url: str) -> dict[str, str]:
    """Thread -> `queued`, or `running on WORKER`, for every run with a `go_on` job to do or
    in progress, newest job first; `{}` where no worker ever made the queue."""
    from plangate.runs.postgres import connect_checked

    with connect_checked(url) as conn:
        if not _has_queue(conn):
            return {}
        rows = conn.execute(
            "SELECT j.lock, j.status::text, j.worker_id, n.worker FROM procrastinate_jobs j "
            "LEFT JOIN plangate_jobs n ON n.job_id = j.id "
            "WHERE j.task_name = %s AND j.status IN ('todo', 'doing') AND j.lock IS NOT NULL "
            "ORDER BY j.id DESC",
            (_GO_ON,),
        ).fetchall()
    found: dict[str, str] = {}
    for lock, status, worker_id, worker in rows:
        thread = _thread_of(lock)
        if thread is None:
            continue
        if status == "doing":  # a thread's job in progress says more than those waiting
            found[thread] = f"running on {worker or f'worker {worker_id}'}"
        else:
            found.setdefault(thread, "queued")
    return found


def queued_start(url: str, thread: str) -> QueuedStart | None:
    """The first start of `thread` queued and not yet made (to do, or in progress), if any."""
    from plangate.runs.postgres import connect_checked

    with connect_checked(url) as conn:
        if not _has_queue(conn):
            return None
        row = conn.execute(
            "SELECT j.id, j.worker_id, n.worker, j.args->'start', "
            "(SELECT min(e.at) FROM procrastinate_events e WHERE e.job_id = j.id) "
            "FROM procrastinate_jobs j LEFT JOIN plangate_jobs n ON n.job_id = j.id "
            "WHERE j.task_name = %s AND j.lock = %s AND j.status IN ('todo', 'doing') "
            "AND jsonb_typeof(j.args->'start') = 'object' ORDER BY j.id LIMIT 1",
            (_GO_ON, _PREFIX + thread),
        ).fetchone()
    if row is None:
        return None
    job, worker_id, worker, start, queued_at = row
    return QueuedStart(
        job=job,
        worker=worker or (f"worker {worker_id}" if worker_id else None),
        goal=str((start.get("plan") or {}).get("goal") or ""),
        profile=start.get("profile"),
        offline=bool(start.get("offline")),
        started_by=start.get("started_by"),
        queued_at=queued_at,
    )


# The newest decision job naming each request of the threads asked about: a job's resume value
# maps interrupt ids to decisions; an expiry's closing (`EXPIRED_DECISION`) is none.
_DECISIONS = """
SELECT DISTINCT ON (j.lock, k.key) j.lock, k.key, j.id, j.status::text,
       k.value->>'decision', k.value->>'approver', n.error
FROM procrastinate_jobs j
CROSS JOIN LATERAL jsonb_each(
    CASE WHEN jsonb_typeof(j.args->'resume') = 'object' THEN j.args->'resume' ELSE '{}' END
) AS k(key, value)
LEFT JOIN plangate_jobs n ON n.job_id = j.id
WHERE j.task_name = %(task)s AND j.lock = ANY(%(locks)s) AND k.value <> %(expired)s::jsonb
ORDER BY j.lock, k.key, j.id DESC
"""


def refuse_queued(url: str, thread: str, resume: Mapping[str, Any]) -> None:
    """Refuse a decision (`resume`, by interrupt id) on a request of `thread` that a decision
    queued earlier answers, and that no worker has applied yet.

    Raises:
        DecisionQueued: One is queued; nothing should be queued beside it.
    """
    found = queued_decisions(url, [thread])
    for key in resume:
        earlier = found.get((thread, key))
        if earlier is not None and earlier.queued:
            raise earlier.refusal(thread)


def queued_decisions(url: str, threads: Collection[str]) -> dict[tuple[str, str], QueuedDecision]:
    """(thread, interrupt id) -> the newest decision job answering that request of one of
    `threads`, if it is queued or failed; a request whose newest decision a worker applied
    (or whose job was cancelled) has none."""
    from plangate.runs.postgres import connect_checked

    if not threads:
        return {}
    with connect_checked(url) as conn:
        if not _has_queue(conn):
            return {}
        rows = conn.execute(
            _DECISIONS,
            {
                "task": _GO_ON,
                "locks": [_PREFIX + thread for thread in threads],
                "expired": json.dumps(EXPIRED_DECISION),
            },
        ).fetchall()
    found: dict[tuple[str, str], QueuedDecision] = {}
    for lock, key, job, status, decision, approver, error in rows:
        if status in ("todo", "doing", "failed"):
            found[(lock[len(_PREFIX) :], key)] = QueuedDecision(
                job=job,
                status=status,
                decision=decision,
                approver=approver,
                error=error if status == "failed" else None,
            )
    return found


def delete_finished_jobs(
    url: str, *, before: datetime, may_go: Callable[[str], bool], dry_run: bool = False
) -> int:
    """Delete plangate's jobs that finished (succeeded, failed, cancelled, aborted) before
    `before`: the sweeps', and those of a thread `may_go` lets go (a finished run, a thread
    gone). A job to do or in progress is never deleted. Returns how many went (or would).
    """
    from plangate.runs.postgres import connect_checked

    with connect_checked(url) as conn:
        if not _has_queue(conn):
            return 0
        rows = conn.execute(
            "SELECT j.id, j.lock FROM procrastinate_jobs j "
            "WHERE j.task_name LIKE 'plangate.%%' AND j.status::text = ANY(%s) "
            # When it ended: a job scheduled for later has an event at that time too.
            "AND (SELECT max(e.at) FROM procrastinate_events e WHERE e.job_id = j.id "
            "AND e.type <> 'scheduled') < %s "
            # A periodic task's last job is what procrastinate defers the next one from.
            "AND NOT EXISTS (SELECT 1 FROM procrastinate_periodic_defers d WHERE d.job_id = j.id)",
            (list(_FINAL), before),
        ).fetchall()
        going = [job for job, lock in rows if lock is None or may_go(_thread_of(lock) or lock)]
        if going and not dry_run:
            conn.execute(
                "DELETE FROM procrastinate_jobs WHERE id = ANY(%s) AND status::text = ANY(%s)",
                (going, list(_FINAL)),
            )
    return len(going)


def delete_obsolete_expiries(
    url: str,
    waited: Callable[[], Collection[tuple[str, datetime]]],
    *,
    dry_run: bool = False,
) -> int:
    """Delete the scheduled expiries (`expire_at` jobs to do) of deadlines that no run waits on
    any more, which no worker cancelled (one stopped between a run's move and the cancel, a
    run went on outside the queue, an older plangate scheduled them). `waited()` gives
    (thread, deadline) of every request waiting now; it is read after the jobs, so that an
    expiry is never taken for obsolete before its request is seen. A job a worker took
    meanwhile is left to run (and close nothing). Returns how many went (or would)."""
    from plangate.runs.postgres import connect_checked

    with connect_checked(url) as conn:
        if not _has_queue(conn):
            return 0
        rows = conn.execute(
            "SELECT id, args->>'thread', args->>'deadline' FROM procrastinate_jobs "
            "WHERE task_name = %s AND status = 'todo'",
            (_EXPIRE_AT,),
        ).fetchall()
        if not rows:
            return 0
        live = set(waited())
        going = [
            job
            for job, thread, deadline in rows
            if not deadline or (thread, parse_iso(deadline)) not in live
        ]
        if going and not dry_run:
            conn.execute(
                "DELETE FROM procrastinate_jobs WHERE id = ANY(%s) AND status = 'todo'", (going,)
            )
    return len(going)
