"""Driving a run from the command line: its trace events as they happen, then how it stands
(paused, finished, stopped by Ctrl-C or a closed pipe) as an exit code."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Generator, Iterator, Mapping, Sequence
from types import FrameType
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from langgraph.errors import GraphDrained
from langgraph.runtime import RunControl

from plangate.cli.describe import (
    describe,
    print_pending,
    print_result,
    recorded_actions,
    step_positions,
)
from plangate.cli.output import ExitCode, OutputClosed, Stopped, say
from plangate.cli.where import db_flag
from plangate.runs.guarded_graph import PlangateGraph
from plangate.runs.history import ended_so_far
from plangate.runs.stored import run_state, unnumbered_events

# --- driving runs -----------------------------------------------------------------------------

RESULT_CODES = {
    "success": ExitCode.SUCCESS,
    "partial": ExitCode.PARTIAL,
    "failed": ExitCode.FAILED,
}


def drive(
    graph: PlangateGraph,
    value: Any,
    config: RunnableConfig,
    db: str,
    *,
    steps: Sequence[str],
    decided_step: str | None = None,
) -> ExitCode:
    """Run until the graph ends or pauses, printing trace events as they happen; the exit code
    says how it stands. `decided_step` names the step a decision was sent for: that decision
    expiring is `EXPIRED`, whatever the run did next."""
    thread = str(config["configurable"]["thread_id"])
    # On a terminal only: output read by programs stays as it was.
    positions = step_positions(steps) if sys.stdout.isatty() else None
    late = False
    ctrl_c = CtrlC()
    live = LiveSteps()
    try:
        with ctrl_c:
            # Closed at once when the output closes: the run lets go of its thread's lock.
            stream = cast(
                Generator[Any, None, None],
                graph.stream(
                    value, config, stream_mode=["custom", "updates"], control=ctrl_c.control
                ),
            )
            with contextlib.closing(stream) as chunks:
                for event in live.events(chunks):
                    late = late or (
                        event["type"] == "approval_timeout" and event["step_id"] == decided_step
                    )
                    say(describe(event, positions))
                    if event["seq"] < 0 and live.note_once():
                        say(EARLY_NOTE)
        if ctrl_c.pressed:  # the run ended on its own before a next step would have started
            raise _interrupted(graph, config, db)
        snapshot = graph.get_state(config)
        requests = sorted((i.value for i in snapshot.interrupts), key=lambda r: r["step_index"])
        result = snapshot.values.get("result")
        if requests:
            saved = _saver(graph).get_tuple(config)
            if ended := [e for e in unnumbered_events(saved) if live.unseen(e)] if saved else None:
                say(*(describe(event, positions) for event in ended))
                if live.note_once():
                    say(EARLY_NOTE)
            print_pending(thread, requests, db)
            code = ExitCode.PAUSED
        elif result:
            print_result(result, recorded_actions(ended_so_far(snapshot)), thread=thread, db=db)
            code = RESULT_CODES[result["status"]]
        else:  # not seen: a stream ends paused or finished
            say(f"Run {thread} has not finished; `plangate resume {thread}{db_flag(db)}`.")
            code = ExitCode.FAILED
    except (GraphDrained, KeyboardInterrupt):
        raise _interrupted(graph, config, db) from None
    except OutputClosed:
        raise Stopped(
            stopped_line(graph, config, db, "output closed"), ExitCode.OUTPUT_CLOSED
        ) from None
    return ExitCode.EXPIRED if late else code


class CtrlC:
    """Ctrl-C while a run streams, on the main thread: the first press asks LangGraph to stop
    the run where one superstep ends and the next has not started (`RunControl`), and says that
    it waits for the tool calls in flight; later presses only say that it still waits.

    It never raises: a `KeyboardInterrupt` inside LangGraph's loop would leave calls that had
    already run without their results stored (and print their callbacks' tracebacks), and a
    call cut short might have acted. Once pressed, the handler stays for the rest of the
    process, so a press while the command says where the run stands is no traceback either.
    """

    def __init__(self) -> None:
        self.control = RunControl()
        self.pressed = 0
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> CtrlC:
        # Only the main thread may set a signal handler (a command run in a worker thread).
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_ctrl_c)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed and not self.pressed:
            signal.signal(signal.SIGINT, self._previous)

    def _on_ctrl_c(self, signum: int, frame: FrameType | None) -> None:
        self.pressed += 1
        self.control.request_drain("interrupted")
        line = (
            "plangate: interrupted: waiting for the tool calls in flight to end, then the run "
            "stops; their results are kept"
            if self.pressed == 1
            else "plangate: still waiting for the tool calls in flight; they are not cut short"
        )
        # Straight to the descriptor: the handler may run while the main thread is inside a
        # buffered write, which a second buffered write would refuse.
        with contextlib.suppress(OSError):
            os.write(sys.stderr.fileno(), (line + "\n").encode())


def _interrupted(graph: PlangateGraph, config: RunnableConfig, db: str) -> Stopped:
    return Stopped(stopped_line(graph, config, db, "interrupted"), ExitCode.INTERRUPTED)


def stopped_line(graph: PlangateGraph, config: RunnableConfig, db: str, why: str) -> str:
    """The line that says where a run stopped by `why` stands, and the command that goes on."""
    thread = str(config["configurable"]["thread_id"])
    flag = db_flag(db)
    saved: CheckpointTuple | None = None
    with contextlib.suppress(Exception):  # what is stored is read again by the next command
        saved = _saver(graph).get_tuple(config)
    state = None if saved is None else run_state(saved)
    if state == "waiting":
        return (
            f"plangate: {why}: run {thread} waits for an approval; "
            f"`plangate show {thread}{flag}` prints it"
        )
    if state == "finished":
        return (
            f"plangate: {why}: run {thread} has finished; "
            f"`plangate show {thread}{flag}` prints its result"
        )
    return (
        f"plangate: {why}: run {thread} stopped before it finished; "
        f"`plangate resume {thread}{flag}` goes on"
    )


EARLY_NOTE = (
    "  ([  -]: ended beside steps still running or waiting; numbered when the wave is over)"
)


class LiveSteps:
    """The trace events to print while a run streams (`stream_mode=["custom", "updates"]`), as
    they happen: the numbered ones LangGraph streams, and, ahead of them, the events of a step
    that ended while other steps of its wave still run.

    Such a step's events are numbered only when its whole wave is over (`trace_emit`, in plan
    order, so that `seq` does not depend on timing); a read that took a second beside a call
    that takes a minute would show nothing for that minute. Its task's update, which LangGraph
    streams as the task ends, carries them: they are printed then, unnumbered (`seq` -1), and
    not again when they come numbered."""

    def __init__(self) -> None:
        self._running: set[str] = set()
        self._shown: set[tuple[Any, ...]] = set()
        self._noted = False

    def note_once(self) -> bool:
        """Whether the note on events printed ahead of their number is yet to be printed (it is
        printed once, after the first of them)."""
        noted, self._noted = self._noted, True
        return not noted

    def events(self, chunks: Iterator[tuple[str, Any]]) -> Iterator[dict[str, Any]]:
        for mode, chunk in chunks:
            if mode == "updates" and isinstance(chunk, dict):
                yield from self._ended_early(chunk)
            elif (
                isinstance(chunk, dict)
                and "type" in chunk
                and "seq" in chunk
                and self.unseen(chunk)
            ):
                yield chunk

    def unseen(self, event: Mapping[str, Any]) -> bool:
        """Whether `event` has not been printed yet (unnumbered, when its step ended)."""
        return _key(event) not in self._shown

    def _ended_early(self, update: dict[str, Any]) -> Iterator[dict[str, Any]]:
        for node, written in update.items():
            if not isinstance(written, Mapping):
                continue
            running = (written.get("run") or {}).get("running")
            if node == "budget_check" and running:  # a new wave: these steps run now
                self._running = set(running)
            for report in written.get("wave") or ():
                outcome = report.get("outcome")
                if not outcome:
                    continue
                self._running.discard(outcome["step_id"])
                if self._running:  # others of its wave still run: say it now
                    self._shown.update(_key(event) for event in report["events"])
                    yield from report["events"]


def _key(event: Mapping[str, Any]) -> tuple[Any, ...]:
    return (event["step_id"], event["type"], event["ts"])


def _saver(graph: PlangateGraph) -> BaseCheckpointSaver[Any]:
    saver = graph.checkpointer
    assert isinstance(saver, BaseCheckpointSaver)  # every CLI graph is built with one
    return saver
