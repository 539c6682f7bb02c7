"""`tool_exec`: call one step's tool; the only node with side effects.

Each step of a wave is a task of its own (a `Send` from `budget_check` or, once approved, from
`approval_interrupt`), so the calls of a wave run at once: `invoke` runs sync tools in threads,
`ainvoke` awaits async tools. A read's task also runs the chain of reads `budget_check` gave it
(`StepTask.lane`), each link as the one before it ended `ok`. A task reads nothing of the shared
state and writes only its reports (`StepReport`); `trace_emit` numbers their events and charges
each call when the wave ends.

Before anything is called, it works the step's policy out again and recomputes the
digest of the call it is about to make: a call that needs approval and has none, or whose digest
is not the one approved (the args, the tool's declaration or the profile changed since), is not
run: `trace_emit` sends the step back to `budget_check`, and the person is asked again
(`approval_invalidated`).

It has a sync body (`tool_exec`, for `invoke`/`stream`) and an async one (`atool_exec`, for
`ainvoke`/`astream`, where async tools are awaited natively); both share everything but the call.
A tool's exception never ends the run: the step becomes `error` with a failure context, and
`trace_emit` applies the profile's `on_error`.

Offline (`Profile.offline`) the step's mock is called instead of its tool; under
`Profile.mock_fallback` a tool that cannot be reached (a connection error or a timeout, after its
retries) hands the call to its mock. Either way `adapter_fallback` says why, and the outcome is
marked `mocked`.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, ValidationError

from plangate._channels import outcome_from_state, stored_outcome
from plangate._governance import Governance, TraceWriter
from plangate.approval import approval_digest
from plangate.errors import PlangateUsageError
from plangate.plan import MAX_PLAN_SIZE, PlanStep, step_from_state
from plangate.profiles import RetryPolicy
from plangate.references import UnresolvedReference, resolve
from plangate.state import LaneStep, StepOutcome, StepReport, StepTask

__all__ = (
    "IDEMPOTENCY_KEY",
    "InvalidArguments",
    "ToolTimeout",
    "atool_exec",
    "idempotency_key",
    "is_transient",
    "tool_exec",
)

IDEMPOTENCY_KEY = "plangate_idempotency_key"
"""The run-config metadata key under which a tool finds its call's idempotency key."""
_KEYS = uuid.UUID("6f1c3b0e-8d2a-4c4e-9b57-2f0d3e4a1c90")


def idempotency_key(run_id: str, step_id: str) -> str:
    """The key of the call of step `step_id` in plan run `run_id`: the same every time that call
    is made again (a resume, a restart after a crash), different for any other call."""
    return str(uuid.uuid5(_KEYS, f"{run_id}/{step_id}"))


def jsonable(value: Any) -> Any:
    """A tool's output as plain JSON data, so that checkpoints and results stay JSON."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value


@dataclass(slots=True)
class _ToolCall:
    """One call in progress: what `tool_exec` and `atool_exec` share around the call itself,
    worked out once however many times the call is tried."""

    task: StepTask
    step: PlanStep
    tool: BaseTool
    fallback: BaseTool | None
    mocked: bool
    args: dict[str, Any]
    config: RunnableConfig
    timeout: float | None
    retry: RetryPolicy
    writer: TraceWriter
    action: str = "execute"
    action_source: str = "default"
    started: float = 0.0
    # Wall-clock nanoseconds at the first try: where the step's span starts.
    started_ns: int = 0
    attempts: int = 0

    def timed_out(self) -> ToolTimeout:
        return ToolTimeout(f"{self.step.tool} took longer than {self.timeout:g} s")

    def falls_back(self, error: Exception | None) -> bool:
        """Whether the call goes on with the tool's mock after the tool failed with `error`:
        under `mock_fallback`, when the tool could not be reached. Emits `adapter_fallback`."""
        if self.fallback is None or not isinstance(error, (ConnectionError, TimeoutError)):
            return False
        self.writer.emit(
            "adapter_fallback",
            {
                "reason": "unreachable",
                "error_type": _error_type(error),
                "message": str(error) or type(error).__name__,
            },
            step=self.step,
        )
        self.tool, self.fallback, self.mocked = self.fallback, None, True
        return True


def _lapsed(task: StepTask, step: PlanStep, governance: Governance) -> dict[str, Any] | None:
    """The update that sends the step back to be asked again, when the call about to be made
    is not the one a person approved (or needs approval and has none); else `None`."""
    policy = governance.policy(step)
    approval = task.get("approval")
    if approval is None:
        if not policy.needs_approval:
            return None
        reason = "the call needs approval and has none"
    else:
        digest = approval_digest(
            step.tool,
            task.get("args", step.args),
            policy.action,
            policy.risk,
            governance.fingerprint,
            declaration=governance.declaration(step.tool),
        )
        if approval.get("digest") == digest:
            return None
        reason = (
            "the call is not the one approved (its args, action, risk, tool declaration or "
            "profile changed)"
        )
    writer = TraceWriter.unnumbered(task["trace_id"], governance)
    writer.emit("approval_invalidated", {"reason": reason}, step=step)
    report: StepReport = {"index": task["index"], "events": writer.events, "recheck": True}
    return {"wave": [report]}


def _begin(task: StepTask, step: PlanStep, governance: Governance) -> _ToolCall:
    writer = TraceWriter.unnumbered(task["trace_id"], governance)
    args = task.get("args", step.args)
    key = idempotency_key(task["run_id"], step.id)
    timeout, retry = governance.profile.call_policy(step.tool)
    tool = governance.tool(step.tool)
    if tool is None:  # a run resumed on a graph built without the tool it was approved for
        raise PlangateUsageError(
            f"no tool named {step.tool!r} is registered with this graph",
            hint="resume the run on a graph built with the tools it started with",
        )
    offline = governance.profile.offline
    call = _ToolCall(
        task=task,
        step=step,
        tool=tool,
        fallback=None if offline else governance.fallback(step.tool),
        mocked=offline,
        args=args,
        # A LangChain tool that takes a `config: RunnableConfig` parameter reads this metadata.
        config={
            "run_name": step.tool,
            "metadata": {
                "plangate_step_id": step.id,
                "plangate_trace_id": task["trace_id"],
                IDEMPOTENCY_KEY: key,
            },
        },
        timeout=timeout,
        retry=retry,
        writer=writer,
    )
    if offline:
        writer.emit("adapter_fallback", {"reason": "offline"}, step=step)
    policy = governance.policy(step)
    call.action, call.action_source = policy.action, policy.source
    writer.emit(
        "tool_call_start",
        {
            "args": args,
            "action": policy.action,
            "action_source": policy.source,
            "idempotency_key": key,
            "mocked": offline,
        },
        step=step,
    )
    call.started = time.perf_counter()
    call.started_ns = time.time_ns()
    return call


def _error_type(error: Exception) -> str:
    """What `failure_context.error_type` says: an error's own `error_type` (`timeout`,
    `invalid_arguments`), else the name of its class."""
    return str(getattr(error, "error_type", None) or type(error).__name__)


def _end(
    call: _ToolCall, output: Any, error: Exception | None, governance: Governance
) -> dict[str, Any]:
    duration = round((time.perf_counter() - call.started) * 1000, 3)
    step = call.step
    outcome: StepOutcome = {
        "step_id": step.id,
        "tool": step.tool,
        "status": "ok",
        "output": None,
        "error": None,
        "attempts": call.attempts,
        "duration_ms": duration,
        "approval": call.task.get("approval"),
        "failure_context": None,
        "mocked": call.mocked,
        # Kept so that reading a run shows each step's action without reaching its tool.
        "action": call.action,
        "action_source": call.action_source,
    }
    if error is None:
        outcome["output"] = jsonable(output)
        call.writer.emit(
            "tool_call_complete", {"duration_ms": duration, "output": outcome["output"]}, step=step
        )
    else:
        message = str(error) or type(error).__name__
        error_type = _error_type(error)
        outcome.update(
            {
                "status": "error",
                "error": message,
                "failure_context": {
                    "step_id": step.id,
                    "tool": step.tool,
                    "error_type": error_type,
                    "message": message,
                },
            }
        )
        call.writer.emit(
            "tool_call_error",
            {"error_type": error_type, "message": message, "duration_ms": duration},
            step=step,
        )
    if governance.telemetry is not None and "telemetry" in call.task:
        governance.telemetry.step(
            call.task["telemetry"],
            step,
            outcome,
            start_ns=call.started_ns,
            end_ns=time.time_ns(),
            call_id=str(call.config["metadata"][IDEMPOTENCY_KEY]),
            args=call.args,
        )
    report: StepReport = {
        "index": call.task["index"],
        "events": call.writer.events,
        "outcome": outcome,
        "charged": True,
    }
    return {"wave": [report]}


def _only_async(tool: BaseTool) -> bool:
    return isinstance(tool, StructuredTool) and tool.func is None and tool.coroutine is not None


class ToolTimeout(TimeoutError):
    """A tool call ran past its timeout; its step ends with `error_type: "timeout"`."""

    error_type = "timeout"


class InvalidArguments(ValueError):
    """A step's arguments do not fit its tool's schema; the step ends with
    `error_type: "invalid_arguments"` and the tool is not called."""

    error_type = "invalid_arguments"


def _about_arguments(call: _ToolCall, error: Exception) -> Exception:
    """`error` in one line naming the tool and each bad field, when it is the tool's schema
    refusing the step's arguments; pydantic's own message takes several lines per field."""
    schema = call.tool.args_schema
    if not isinstance(error, ValidationError) or error.title not in (
        call.tool.name,
        getattr(schema, "__name__", None),
    ):
        return error
    problems = "; ".join(
        f"{'.'.join(str(part) for part in e['loc']) or 'arguments'}: {e['msg']}"
        for e in error.errors()
    )
    return InvalidArguments(f"{call.step.tool}: invalid arguments: {problems}")


def is_transient(error: Exception) -> bool:
    """Whether trying again may help: a timeout, a connection error, or HTTP 429/5xx."""
    if isinstance(error, (TimeoutError, ConnectionError)):
        return True
    status = getattr(error, "status_code", None)
    if status is None:
        status = getattr(getattr(error, "response", None), "status_code", None)
    return isinstance(status, int) and (status == 429 or 500 <= status <= 599)


_CANCEL_GRACE_SECONDS = 1.0
"""How long a sync run waits, past a call's timeout, for the cancelled call to wind down."""


def _call_once(call: _ToolCall) -> Any:
    timeout = call.timeout
    # With a timeout, a tool that has a coroutine runs as one so that running out cancels it:
    # a call that can stop (an MCP request, an HTTP request) must not go on after plangate gave
    # up on it, or a retry could make it act twice.
    cancellable = timeout is not None and _has_coroutine(call.tool)
    if _only_async(call.tool) or cancellable:
        # On an event loop of its own, in a worker thread, since the caller's thread may
        # already run a loop (a notebook).
        pending = call.tool.ainvoke(call.args, config=call.config)
        work = asyncio.wait_for(pending, timeout) if cancellable else pending
        run = partial(asyncio.run, work)
    elif timeout is not None:
        run = partial(call.tool.invoke, call.args, config=call.config)
    else:
        return call.tool.invoke(call.args, config=call.config)
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        waited = None if timeout is None else timeout + (_CANCEL_GRACE_SECONDS * cancellable)
        return pool.submit(run).result(timeout=waited)
    except (FutureTimeout, asyncio.TimeoutError):
        if timeout is None:  # the tool's own TimeoutError
            raise
        # A thread cannot be stopped: a call that is not a coroutine goes on in the
        # background, its result unused.
        raise call.timed_out() from None
    finally:
        pool.shutdown(wait=False)


def _has_coroutine(tool: BaseTool) -> bool:
    return isinstance(tool, StructuredTool) and tool.coroutine is not None


def _retry_wait(call: _ToolCall, attempt: int, error: Exception) -> float | None:
    """Seconds to wait before trying `call` again after failed try `attempt`, or `None` when
    it must not be retried; emits `tool_call_retry` when it will be."""
    if attempt >= call.retry.max_attempts or not is_transient(error):
        return None
    wait = round(call.retry.backoff(attempt, random.random()), 6)
    call.writer.emit(
        "tool_call_retry",
        {
            "attempt": attempt + 1,
            "wait_seconds": wait,
            "error_type": _error_type(error),
            "message": str(error) or type(error).__name__,
        },
        step=call.step,
    )
    return wait


def _tries(call: _ToolCall, governance: Governance) -> tuple[Any, Exception | None]:
    """Call the tool, and again after each failure its retry policy allows: (output, error)."""
    attempt = 1
    while True:
        call.attempts += 1
        try:
            return _call_once(call), None
        except Exception as exc:  # a failing tool is a step outcome, never a crashed run
            error = _about_arguments(call, exc)
            wait = _retry_wait(call, attempt, error)
            if wait is None:
                return None, error
        governance.sleep(wait)
        attempt += 1


async def _atries(call: _ToolCall, governance: Governance) -> tuple[Any, Exception | None]:
    attempt = 1
    while True:
        call.attempts += 1
        try:
            pending = call.tool.ainvoke(call.args, config=call.config)
            return await asyncio.wait_for(pending, call.timeout), None
        except Exception as exc:  # a failing tool is a step outcome, never a crashed run
            error = _about_arguments(call, exc)
            if isinstance(exc, asyncio.TimeoutError) and call.timeout is not None:
                error = call.timed_out()
        wait = _retry_wait(call, attempt, error)
        if wait is None:
            return None, error
        if governance.sleep is time.sleep:
            await asyncio.sleep(wait)
        else:
            governance.sleep(wait)
        attempt += 1


def _start(task: StepTask, governance: Governance) -> _ToolCall | dict[str, Any]:
    """The call to make, or the update that sends the step back to be asked again."""
    step = step_from_state(task["step"])
    return _lapsed(task, step, governance) or _begin(task, step, governance)


@dataclass(slots=True)
class _Lane:
    """The steps one task runs: its own, then those of its `lane`, each once the one before it
    ended `ok`. When one did not, the rest go back to the next wave untouched, where
    `budget_check` skips or asks about them as it would have."""

    task: StepTask
    reports: list[StepReport] = field(default_factory=list)

    def __iter__(self) -> Iterator[StepTask]:
        yield self.task
        lane = self.task.get("lane", [])
        for n, entry in enumerate(lane):
            after = self._after(entry)
            if after is None:
                self.reports += [
                    {"index": e["index"], "events": [], "recheck": True} for e in lane[n:]
                ]
                return
            yield after

    def ended(self, update: dict[str, Any]) -> None:
        self.reports += update["wave"]

    def update(self) -> dict[str, Any]:
        return {"wave": self.reports}

    def _after(self, entry: LaneStep) -> StepTask | None:
        """The task of lane step `entry`, its reference to the step before it resolved as
        `budget_check` would have (from the outcome as stored); `None` when it cannot run now."""
        before = self.reports[-1].get("outcome")
        if before is None or before["status"] != "ok":
            return None
        step = step_from_state(entry["step"])
        output = outcome_from_state(stored_outcome(before))["output"]
        try:
            resolved = resolve(step.args, {before["step_id"]: output}, limit=MAX_PLAN_SIZE)
        except UnresolvedReference:  # the next wave closes it, with the reason
            return None
        task: StepTask = {
            "index": entry["index"],
            "step": entry["step"],
            "run_id": self.task["run_id"],
            "trace_id": self.task["trace_id"],
        }
        if resolved.args != step.args:
            task["args"] = resolved.args
        if "telemetry" in entry:
            task["telemetry"] = entry["telemetry"]
        return task


def _run(task: StepTask, governance: Governance) -> dict[str, Any]:
    call = _start(task, governance)
    if not isinstance(call, _ToolCall):
        return call
    output, error = _tries(call, governance)
    if call.falls_back(error):
        output, error = _tries(call, governance)
    return _end(call, output, error, governance)


async def _arun(task: StepTask, governance: Governance) -> dict[str, Any]:
    call = _start(task, governance)
    if not isinstance(call, _ToolCall):
        return call
    output, error = await _atries(call, governance)
    if call.falls_back(error):
        output, error = await _atries(call, governance)
    return _end(call, output, error, governance)


def tool_exec(task: StepTask, *, governance: Governance) -> dict[str, Any]:
    lane = _Lane(task)
    for current in lane:
        lane.ended(_run(current, governance))
    return lane.update()


async def atool_exec(task: StepTask, *, governance: Governance) -> dict[str, Any]:
    lane = _Lane(task)
    for current in lane:
        lane.ended(await _arun(current, governance))
    return lane.update()
