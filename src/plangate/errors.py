"""Every exception plangate raises, under one base class.

Usage mistakes (a bad plan, profile or decision; a thread that does not exist) derive from
`PlangateUsageError`; they are raised before anything enters the graph, so a paused run is never
harmed by one. Failures of the tools a plan calls are not exceptions at all: they become step
outcomes (`error`, `blocked`, ...) in the run's result.
"""

from __future__ import annotations

__all__ = (
    "AdapterError",
    "DecisionQueued",
    "InvalidDecision",
    "MissingThreadId",
    "NoPendingApproval",
    "NotStopped",
    "PlanValidationError",
    "PlangateError",
    "PlangateUsageError",
    "ProfileError",
    "ProfileMismatch",
    "ResumeConflict",
    "RunNotFinished",
    "StaleDecision",
    "ThreadError",
    "ToolNotAvailable",
    "UnknownThread",
)


class PlangateError(Exception):
    """Base class of every plangate exception.

    Attributes:
        message: What went wrong, in one line.
        hint: What to do about it, or `None`.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message} ({hint})" if hint else message)


class PlangateUsageError(PlangateError):
    """The caller asked for something that cannot be done as asked; nothing was changed."""


class PlanValidationError(PlangateUsageError):
    """A plan is malformed: a missing field, a duplicate id, an unknown dependency or a cycle.

    Attributes:
        step_id: The offending step's id (or its position, `#3`), when one step is to blame.
    """

    def __init__(self, message: str, *, step_id: str | None = None, hint: str | None = None):
        self.step_id = step_id
        super().__init__(message, hint=hint)


class ProfileError(PlangateUsageError):
    """A profile name is unknown or a profile file is invalid.

    Attributes:
        field: The dotted path of the offending field (`budget.total_calls`), when known.
    """

    def __init__(self, message: str, *, field: str | None = None, hint: str | None = None):
        self.field = field
        super().__init__(message, hint=hint)


class InvalidDecision(PlangateUsageError):
    """A resume value is not a valid approval decision; the run stays paused and can be resumed.

    Attributes:
        field: The offending field of the decision (`decision`, `args`, `args.to`, ...), if known.
    """

    EDIT_HINT = "the args must match the tool's argument schema in response_schema"
    """The hint of an edit whose args the tool's schema refuses (a face may say it in its
    words)."""

    def __init__(self, message: str, *, field: str | None = None, hint: str | None = None):
        self.field = field
        super().__init__(message, hint=hint)


class AdapterError(PlangateUsageError):
    """Tools cannot be set up from a source: a malformed fixture file, an OpenAPI document
    without `operationId`s, an MCP server that cannot be reached. Raised before any run starts.

    Attributes:
        source: What the tools were to come from (a file path, a URL, an MCP server).
        tool: The tool to blame, when one is.
    """

    def __init__(
        self, message: str, *, source: str, tool: str | None = None, hint: str | None = None
    ):
        self.source = source
        self.tool = tool
        super().__init__(message, hint=hint)


class MissingThreadId(PlangateUsageError, ValueError):
    """A graph with a checkpointer was run without a `thread_id` in its config: every run is
    kept under its thread, so there is nowhere to keep this one. Nothing was run or stored.

    Also a `ValueError`, as LangGraph's own error for it is.
    """

    def __init__(self) -> None:
        super().__init__(
            "no thread_id in the config: a graph with a checkpointer keeps each run under a thread",
            hint="pass config={'configurable': {'thread_id': 'some-id'}}, a new id for a new "
            "run, the same id to resume one",
        )


class ThreadError(PlangateUsageError):
    """A request about one run that the state of its thread refuses.

    Attributes:
        thread_id: The thread the request named.
    """

    def __init__(self, thread_id: str, message: str, *, hint: str | None = None) -> None:
        self.thread_id = thread_id
        super().__init__(message, hint=hint)


class NotStopped(ThreadError):
    """A resume was asked for a run that has not stopped mid-way: it waits for a decision, or
    it has finished. Nothing was changed.

    Attributes:
        waiting: Whether the run waits for a decision (else it has finished).
    """

    def __init__(self, thread_id: str, *, waiting: bool):
        self.waiting = waiting
        if waiting:
            super().__init__(
                thread_id,
                f"run {thread_id!r} is waiting for an approval, not stopped",
                hint="decide it: approve or reject the step it waits for",
            )
        else:
            super().__init__(thread_id, f"run {thread_id!r} has finished", hint="nothing to resume")


class UnknownThread(ThreadError):
    """No run with this thread id exists in the checkpointer."""

    def __init__(self, thread_id: str):
        super().__init__(
            thread_id,
            f"no run with thread id {thread_id!r}",
            hint="`plangate pending` lists paused runs",
        )


class NoPendingApproval(ThreadError):
    """A decision was sent to a run that is not waiting for one."""

    def __init__(self, thread_id: str):
        super().__init__(
            thread_id,
            f"run {thread_id!r} is not waiting for an approval",
            hint="`plangate show THREAD` prints its result",
        )


class ResumeConflict(ThreadError):
    """Another run of the same thread is going on (another worker resuming the same approval,
    say); this one was refused before it changed anything, and the other goes on."""

    def __init__(self, thread_id: str):
        super().__init__(
            thread_id,
            f"run {thread_id!r} is already being run or resumed elsewhere",
            hint="wait for it to finish; `plangate show THREAD` tells how it ended",
        )


class RunNotFinished(ThreadError):
    """A new plan was sent to a thread whose run has not finished: it waits for an approval, or
    its process stopped mid-way. Starting over would abandon that run; nothing was changed.

    Attributes:
        waiting: Whether the run waits for a decision (else it stopped mid-way).
    """

    def __init__(self, thread_id: str, *, waiting: bool):
        self.waiting = waiting
        if waiting:
            super().__init__(
                thread_id,
                f"run {thread_id!r} is waiting for an approval; a new plan would abandon it",
                hint="decide it first (`plangate approve` / `plangate reject`, or "
                "Command(resume=...)), or start the plan on a new thread",
            )
        else:
            super().__init__(
                thread_id,
                f"run {thread_id!r} has not finished; a new plan would abandon it",
                hint="finish it first (`plangate resume THREAD`, or invoke(None, config)), "
                "or start the plan on a new thread",
            )


class StaleDecision(ThreadError):
    """A decision names an approval request the run no longer waits for: someone decided it
    first, and the run may already wait for the next one, which this decision must not answer.
    Nothing was changed.

    Attributes:
        request_id: The request the decision named, when it named one.
    """

    def __init__(self, thread_id: str, *, request_id: str | None = None):
        self.request_id = request_id
        super().__init__(
            thread_id,
            f"run {thread_id!r} no longer waits for "
            + (f"request {request_id!r}" if request_id else "this approval")
            + ": someone else decided it",
            hint="look at what it waits for now (`plangate show THREAD`) and decide on that",
        )


class DecisionQueued(ThreadError):
    """With workers on, a decision names a request that a decision queued earlier answers: a
    worker is yet to apply that one. Nothing was queued. A request asked again (a second
    approval of four eyes) is decided once the worker has applied the first.

    Attributes:
        job: The id of the queued decision's job.
    """

    def __init__(self, thread_id: str, *, job: int, decision: str, approver: str | None):
        self.job = job
        super().__init__(
            thread_id,
            f"run {thread_id!r}: this request is decided already ({decision} by "
            f"{approver or 'someone'}), queued as job {job}: a worker applies it first",
            hint="`plangate pending` shows it; if the run asks again, decide then",
        )


class ProfileMismatch(ThreadError):
    """A run was to go on under another profile than the one it started under (a run started
    under `enterprise` and resumed under `technical` would skip every approval left). Nothing
    was recorded; the run stays as it was.

    Attributes:
        started: The name of the profile the run started under.
        current: The name of the profile of the graph that was to resume it.
    """

    def __init__(
        self,
        thread_id: str,
        *,
        started: str,
        started_fingerprint: str,
        current: str,
        current_fingerprint: str,
    ):
        self.started = started
        self.current = current
        same_name = " (same name, other rules)" if started == current else ""
        super().__init__(
            thread_id,
            f"run {thread_id!r} started under profile {started!r} "
            f"({started_fingerprint}) and cannot go on under profile {current!r} "
            f"({current_fingerprint}){same_name}",
            hint="resume it with a graph built with the profile it started under",
        )


class ToolNotAvailable(ThreadError):
    """A decision was sent to a run waiting on a step whose tool the resuming graph does not
    have; it was refused before it was stored, and the run stays paused.

    Attributes:
        tool: The waiting step's tool.
    """

    def __init__(self, thread_id: str, *, tool: str):
        self.tool = tool
        super().__init__(
            thread_id,
            f"run {thread_id!r} waits on a call of {tool!r}, which this graph does not have",
            hint="decide it with a graph built with the tools the run started with",
        )
