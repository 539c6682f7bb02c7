"""Looking after the audit trail and the database: `verify`, `audit`, `prune`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from plangate.cli.options import AnchorsOption, DbOption, ProjectOption, ThreadArg, duration
from plangate.cli.output import ExitCode, human_size, json_line, plural, say
from plangate.cli.where import audited_run, find_project, open_reader
from plangate.errors import PlangateUsageError
from plangate.runs.checkpoint import is_postgres_url

# The audit trail and pruning work on a graph (LangGraph's graph machinery), imported in the
# command that uses it: every command module is imported to build the command line.
if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig

    from plangate.runs.prune import PruneReport

__all__ = ("audit", "prune", "verify")


def verify(
    thread: ThreadArg,
    db: DbOption = None,
    project: ProjectOption = None,
    anchors: AnchorsOption = None,
) -> None:
    """Check a run's audit trail: compute its trace's hash chain again and name the first event
    that does not match (an event changed, removed or added in the database); check it against
    the run's anchors (kept outside the database: `anchors:` in the project file), which find
    the run's last checkpoints deleted whole; and check the approvals its state records
    (what `show` prints) against the chained ones, and the proofs of their verified deciders
    under the project's signing key (`identity:`).

    Set PLANGATE_AUDIT_KEY to the key the run was written with, if any.
    """
    from plangate.audit import verify_trace

    graph, sink, signer = audited_run(project, db, thread, anchors)
    config: RunnableConfig = {"configurable": {"thread_id": thread}}
    check = verify_trace(graph, config, anchors=sink, signer=signer)
    events = f"the hash chain of its {plural(check.events, 'event')} holds"
    if check.found_by == "chain" and not check.ok:
        say(f"Run {thread}: the hash chain breaks at {check.problem}")
        say(f"{check.events} events before it match.")
        raise typer.Exit(ExitCode.CHAIN_BROKEN)
    if not check.ok:
        if not check.events:  # every checkpoint of an anchored run is gone
            events = "no event of it is stored"
        say(f"Run {thread}: {events}, but {check.problem}.")
        raise typer.Exit(ExitCode.CHAIN_BROKEN)
    if check.anchors:
        say(f"Run {thread}: {events}, and reaches its {plural(check.anchors, 'anchor')}.")
        return
    say(f"Run {thread}: {events}.")
    say(
        ("No anchor of this run was found" if check.anchors == 0 else "No anchors")
        + ": a rollback of whole checkpoints (the run's last events and its head deleted "
        "together) cannot be detected; `anchors:` in the project file keeps each run's head "
        "outside the database."
    )


def audit(
    thread: ThreadArg,
    db: DbOption = None,
    project: ProjectOption = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", metavar="FILE", help="Write to FILE instead of stdout."),
    ] = None,
    anchors: AnchorsOption = None,
) -> None:
    """Export a run's audit trail as JSON lines: a header (with the check `verify` makes),
    each decision as the chained events record it, then each trace event with its hash,
    redacted as the trace is.
    """
    from plangate.audit import audit_records

    graph, sink, signer = audited_run(project, db, thread, anchors)
    config: RunnableConfig = {"configurable": {"thread_id": thread}}
    records = audit_records(graph, config, anchors=sink, signer=signer)
    if output is None:
        for record in records:
            say(json_line(record))
        return
    try:
        with output.open("w", encoding="utf-8") as file:
            for record in records:
                file.write(json_line(record) + "\n")
    except OSError as exc:
        raise PlangateUsageError(f"cannot write {output}: {exc.strerror or exc}") from None
    say(f"Wrote the audit trail of run {thread} to {output}.")


def prune(
    finished_before: Annotated[
        timedelta,
        typer.Option(
            "--finished-before",
            metavar="AGE",
            parser=duration,
            help="Prune the runs that finished at least AGE ago: 30d, 12h, 45m, 2w; "
            "0s prunes every finished run.",
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be removed; remove nothing.")
    ] = False,
    db: DbOption = None,
    project: ProjectOption = None,
) -> None:
    """Remove the intermediate checkpoints of finished runs: `show`, `trace` and `runs` read
    each one back as before, and a new plan on its thread continues its trace.

    Runs waiting for a decision and unfinished runs are never touched. On SQLite the file is
    then compacted (VACUUM), which rewrites it once. With workers on (`workers:`), the queue's
    finished jobs older than AGE go too (their arguments hold decisions): those of finished runs,
    of threads gone, and the sweeps'; jobs to do or in progress stay, but for the expiries
    scheduled at a deadline no run waits on any more (decided, finished), whatever their age.
    """
    from plangate.runs.prune import prune_runs

    found, db = find_project(project, db)
    reader = open_reader(db)
    report = prune_runs(reader, finished_before=finished_before, dry_run=dry_run)
    removes = "would remove" if dry_run else "removed"
    for run in report.runs:
        finished = run.finished_at.isoformat(timespec="seconds")
        say(
            f"{run.thread_id}  finished {finished}: "
            f"{removes} {plural(run.checkpoints_removed, 'checkpoint')}"
        )
    for thread in report.skipped:
        say(f"{thread}  skipped: another process runs it now")
    say(_prune_summary(report))
    if found is not None and found.queued and found.db == db and is_postgres_url(db):
        jobs = _prune_jobs(reader, db, finished_before=finished_before, dry_run=dry_run)
        expiries = _prune_expiries(reader, db, dry_run=dry_run)
        say(
            f"{'Would remove' if dry_run else 'Removed'} {plural(jobs, 'finished job')} "
            "of the queue (finished runs, threads gone, sweeps)"
            + (f", and {_expiries(expiries)} no run waits on any more." if expiries else ".")
        )


def _prune_jobs(reader: Any, db: str, *, finished_before: timedelta, dry_run: bool) -> int:
    """Delete the queue's finished jobs older than the cutoff, of finished runs (pruned now or
    before) and of threads gone: their arguments hold decisions. Jobs to do or in progress,
    and those of runs not finished, stay."""
    from plangate._time import parse_iso, utc_now
    from plangate.runs.queue import delete_finished_jobs
    from plangate.runs.stored import latest_checkpoints, run_state

    cutoff = utc_now() - finished_before
    kept: set[str] = set()
    for thread, latest in latest_checkpoints(reader.checkpointer):
        if run_state(latest) != "finished" or parse_iso(latest.checkpoint["ts"]) >= cutoff:
            kept.add(thread)
    return delete_finished_jobs(
        db, before=cutoff, may_go=lambda thread: thread not in kept, dry_run=dry_run
    )


def _prune_expiries(reader: Any, db: str, *, dry_run: bool) -> int:
    """Delete the queue's scheduled expiries of deadlines no run waits on any more."""
    from plangate._time import parse_iso
    from plangate.runs.history import waiting_approvals
    from plangate.runs.queue import delete_obsolete_expiries

    def waited() -> set[tuple[str, Any]]:
        return {
            (thread, parse_iso(request.value["expires_at"]))
            for thread, requests in waiting_approvals(reader)
            for request in requests
        }

    return delete_obsolete_expiries(db, waited, dry_run=dry_run)


def _expiries(count: int) -> str:
    return f"{count:,} scheduled expir{'y' if count == 1 else 'ies'}"


def _prune_summary(report: PruneReport) -> str:
    if not report.runs:
        return "No finished run to prune."
    runs = plural(len(report.runs), "run")
    checkpoints = plural(report.checkpoints_removed, "checkpoint")
    if report.dry_run:
        return f"Would prune {runs}: {checkpoints} (dry run: nothing was removed)."
    summary = f"Pruned {runs}: {checkpoints} removed"
    if report.bytes_before is not None and report.bytes_after is not None:
        summary += (
            f"; {human_size(report.bytes_before - report.bytes_after)} reclaimed "
            f"({human_size(report.bytes_before)} -> {human_size(report.bytes_after)})"
        )
    return summary + "."
