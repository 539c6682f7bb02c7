"""Runs as the checkpointer stored them, read with the saver alone: no compiled graph.

What a command that only reads runs needs (`plangate pending`, `runs`, `show`, `trace`): the
threads, each one's latest checkpoint, the approvals it waits for, its trace, and its state's
values. Reading them through a compiled graph (`graph.get_state`) would import LangGraph's
graph machinery first: with LangChain's tracers and LangSmith, about 0.6 s of a command's start,
several times what the reading itself costs. So this module imports only LangGraph's checkpoint
package, and the state's reducers from `plangate._channels`; `plangate.runs.history` builds on
it for the readers that do hold a graph.

Two things a graph would give are rebuilt here, each from a documented part of the saver:
- an interrupt is decoded as a `StoredInterrupt` (its value and id) by `reading_serde`, since
  decoding LangGraph's own `Interrupt` imports `langgraph.types`, the costly import itself;
- a delta channel's value is replayed from `get_delta_channel_history` with the state's own
  reducers, as LangGraph replays it on load (`stored_values`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol

import ormsgpack
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from langgraph.checkpoint.serde.jsonplus import (
    EXT_CONSTRUCTOR_KW_ARGS,
    EXT_CONSTRUCTOR_POS_ARGS,
    JsonPlusSerializer,
)
from langgraph.checkpoint.serde.types import _DeltaSnapshot
from langgraph.checkpoint.sqlite import SqliteSaver

from plangate._channels import DELTA_CHANNELS, outcomes_from_state
from plangate._time import parse_iso

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig

    from plangate.state import StepOutcome, StepReport
    from plangate.tracing import TraceEvent

__all__ = (
    "EXPIRED_DECISION",
    "FINISHED",
    "Reread",
    "RunState",
    "StoredInterrupt",
    "StoredOverwrite",
    "StoredRun",
    "StoredSend",
    "WaitingInterrupt",
    "ended_outcomes",
    "interrupts_waiting",
    "is_approval_request",
    "is_expired",
    "latest_checkpoints",
    "list_threads",
    "open_store",
    "read_stored_run",
    "reading_serde",
    "run_state",
    "run_status",
    "stored_values",
    "thread_checkpoints",
    "trace_of",
    "trace_since",
    "unnumbered_events",
    "waiting_approvals",
)


class WaitingInterrupt(Protocol):
    """An interrupt a run waits on, as the readers use it: LangGraph's `Interrupt` (read
    through a graph) or a `StoredInterrupt` (read through `reading_serde`)."""

    @property
    def value(self) -> Any: ...

    @property
    def id(self) -> str: ...


class StoredInterrupt(NamedTuple):
    """An interrupt as stored: what it asks (`value`) and the id a resume answers it by."""

    value: Any
    id: str


class StoredSend(NamedTuple):
    """A task sent to a node with its own input (LangGraph's `Send`: `budget_check` sends each
    ready step to `tool_exec`), as the checkpoint of a superstep in progress holds it."""

    node: str
    arg: Any


class StoredOverwrite(NamedTuple):
    """A write that replaces a channel's value instead of going through its reducer
    (LangGraph's `Overwrite`: `plan_start` writes one to clear the outcomes of a new plan)."""

    value: Any


# --- decoding ---------------------------------------------------------------------------------

# LangGraph's classes a run's checkpoints hold, each decoded into its stand-in here.
_STAND_INS: dict[tuple[str, str], Callable[..., Any]] = {
    ("langgraph.types", "Interrupt"): lambda value, id, **_: StoredInterrupt(value, id),
    ("langgraph.types", "Overwrite"): lambda value, **_: StoredOverwrite(value),
    ("langgraph.types", "Send"): lambda node, arg, *_: StoredSend(node, arg),
}


def reading_serde() -> JsonPlusSerializer:
    """LangGraph's serializer, decoding interrupts and overwrites as their stand-ins here and
    everything else as it does (under the same allowlist), for savers that only read runs."""
    standard = JsonPlusSerializer()
    # The standard hook, kept whole (allowlist and warnings): only the interrupt is ours.
    decode_other = standard._unpack_ext_hook

    def decode(code: int, data: bytes) -> Any:
        if code in (EXT_CONSTRUCTOR_POS_ARGS, EXT_CONSTRUCTOR_KW_ARGS):
            module, name, given = ormsgpack.unpackb(
                data, ext_hook=decode, option=ormsgpack.OPT_NON_STR_KEYS
            )[:3]
            stand_in = _STAND_INS.get((module, name))
            if stand_in is not None:
                return stand_in(**given) if code == EXT_CONSTRUCTOR_KW_ARGS else stand_in(*given)
        return decode_other(code, data)

    return JsonPlusSerializer(__unpack_ext_hook__=decode)


def open_store(url: str) -> BaseCheckpointSaver[Any]:
    """The checkpointer at `url` (see `open_checkpointer`), for reading its runs without a
    graph: interrupts come back as `StoredInterrupt`s. Never resume a run through it."""
    from plangate.runs.checkpoint import open_checkpointer

    saver = open_checkpointer(url)
    saver.serde = reading_serde()
    return saver


# --- threads ----------------------------------------------------------------------------------

# The channels LangGraph records interrupts and resume values under, in a checkpoint's writes.
_INTERRUPT, _RESUME = "__interrupt__", "__resume__"


# The same queries on SQLite and PostgreSQL (whose saver names the writes table differently):
# one pass over the primary keys, not a scan of every checkpoint.
_LATEST = (
    "SELECT thread_id, MAX(checkpoint_id) AS last FROM checkpoints "
    "WHERE checkpoint_ns = '' GROUP BY thread_id"
)
_THREADS = f"{_LATEST} ORDER BY last DESC"
_INTERRUPTED = (
    f"SELECT thread_id, last FROM ({_LATEST}) AS latest "
    "WHERE EXISTS (SELECT 1 FROM {writes} AS w WHERE w.thread_id = latest.thread_id "
    "AND w.checkpoint_ns = '' AND w.checkpoint_id = latest.last "
    f"AND w.channel = '{_INTERRUPT}') ORDER BY last DESC"
)


def list_threads(saver: BaseCheckpointSaver[Any], *, interrupted: bool = False) -> list[str]:
    """Ids of every thread with a checkpoint, most recently written first; with `interrupted`,
    only those whose latest checkpoint holds an interrupt (a run that may wait for a decision)."""
    if isinstance(saver, SqliteSaver):
        query = _INTERRUPTED.format(writes="writes") if interrupted else _THREADS
        # Through the saver's cursor, which holds its lock: other threads share the connection.
        with saver.cursor(transaction=False) as cursor:
            return [row[0] for row in cursor.execute(query).fetchall()]
    if type(saver).__module__ == "langgraph.checkpoint.postgres":
        from langgraph.checkpoint.postgres import PostgresSaver

        from plangate.runs.postgres import fetch_all

        assert isinstance(saver, PostgresSaver)
        query = _INTERRUPTED.format(writes="checkpoint_writes") if interrupted else _THREADS
        return [row["thread_id"] for row in fetch_all(saver, query)]
    latest: dict[str, CheckpointTuple] = {}
    for saved in saver.list(None):  # each thread's checkpoints newest first
        latest.setdefault(saved.config["configurable"]["thread_id"], saved)
    # Checkpoint ids grow with time (the SQL's MAX relies on it too).
    newest_first = sorted(
        latest.items(), key=lambda item: item[1].config["configurable"]["checkpoint_id"]
    )[::-1]
    return [
        thread
        for thread, saved in newest_first
        if not interrupted or any(write[1] == _INTERRUPT for write in saved.pending_writes or [])
    ]


def _thread_config(thread_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}


def _latest_of(saver: BaseCheckpointSaver[Any], thread_id: str) -> CheckpointTuple | None:
    return saver.get_tuple(_thread_config(thread_id))


def latest_checkpoints(saver: BaseCheckpointSaver[Any]) -> Iterator[tuple[str, CheckpointTuple]]:
    """(thread id, its latest checkpoint) for every thread, most recently written first: what
    `run_state` reads. Costs one query for the ids, then one checkpoint read per thread (a
    listing of every run, unlike `waiting_approvals`, grows with the database)."""
    for thread_id in list_threads(saver):
        saved = _latest_of(saver, thread_id)
        if saved is not None:  # deleted since the listing
            yield thread_id, saved


def interrupts_waiting(saved: CheckpointTuple) -> list[WaitingInterrupt] | None:
    """Interrupts raised by tasks of `saved` that no resume value has answered yet, read from
    the checkpoint's pending writes; `None` when a task was answered and asked again, which
    only `get_state` untangles. Much cheaper than `get_state`, which rebuilds the whole state
    (replaying its delta channels) to find the same interrupts."""
    writes = saved.pending_writes or []
    # A task that wrote anything else has ended: answered, and it went on (with several
    # requests waiting at once, some may be decided while the others still wait).
    ended = {task for task, channel, _ in writes if channel not in (_INTERRUPT, _RESUME)}
    asked = [(t, value) for t, channel, value in writes if channel == _INTERRUPT and t not in ended]
    answered = {task for task, channel, _ in writes if channel == _RESUME}
    if any(task in answered for task, _ in asked):
        return None
    # An `__interrupt__` write holds the interrupts its task raised (LangGraph's or ours).
    return [item for _, values in asked for item in values if hasattr(item, "value")]


RunState = Literal["waiting", "unfinished", "finished"]
"""Where a thread's run stands: `waiting` for a decision, `finished` (its `result` is written),
or `unfinished`: between two steps, so either running now in some process or stopped (a crash,
Ctrl-C) until something resumes it (`PlangateGraph.hold` tells the two apart)."""


def run_state(saved: CheckpointTuple) -> RunState:
    """The `RunState` of a thread, from its latest checkpoint alone."""
    waiting = interrupts_waiting(saved)
    if waiting is None or waiting:
        return "waiting"
    finished = saved.checkpoint["channel_values"].get("result") is not None
    return "finished" if finished else "unfinished"


FINISHED = ("success", "partial", "failed")
"""The statuses of a run that has finished: its result's."""


def run_status(saved: CheckpointTuple, is_running: Callable[[], bool]) -> str:
    """A run's status, as every face shows it, from its latest checkpoint `saved`: its result's
    (`FINISHED`) once finished; `waiting` for a decision; else, between two steps, `running`
    while some process holds its lock (`is_running`, asked only then), or `stopped` when none
    does: its process died mid-way and the run goes on only when something resumes it."""
    state = run_state(saved)
    if state == "finished":
        return str(saved.checkpoint["channel_values"]["result"]["status"])
    if state == "waiting":
        return "waiting"
    return "running" if is_running() else "stopped"


def is_approval_request(value: Any) -> bool:
    """Whether an interrupt's value asks a person for a decision: on one step, or on the whole
    plan (`plan_review`). A step's request in LangChain's per-call form is typed `tool_approval`
    (`plangate.hitl.in_form`); its `request_id` tells it from LangChain's own."""
    if not isinstance(value, Mapping):
        return False
    kind = value.get("type")
    return kind in ("approval_request", "plan_review") or (
        kind == "tool_approval" and "request_id" in value
    )


EXPIRED_DECISION = {"decision": "reject", "reason": "approval expired", "approver": "expire"}
"""What closes an expired approval: any decision taken after the deadline is recorded as
`expired` (and `approval_timeout` emitted); this one says why."""


def is_expired(request: dict[str, Any], now: datetime) -> bool:
    return parse_iso(request["expires_at"]) < now


Reread = Callable[[str], Sequence[WaitingInterrupt]]
"""The interrupts a thread waits on, from its whole rebuilt state (`graph.get_state`): for a
run whose latest checkpoint alone does not tell (`interrupts_waiting` gives `None`)."""


def waiting_approvals(
    saver: BaseCheckpointSaver[Any], reread: Reread
) -> Iterator[tuple[str, list[WaitingInterrupt]]]:
    """(thread id, its approval interrupts) for every run waiting for a decision, most recently
    written first. Costs one query, then one checkpoint read per run holding an interrupt: not
    a read per run in the database. Only a re-asked approval is `reread`."""
    for thread_id in list_threads(saver, interrupted=True):
        saved = _latest_of(saver, thread_id)
        if saved is None:  # deleted since the listing
            continue
        waiting = interrupts_waiting(saved)
        if waiting is None:
            waiting = list(reread(thread_id))
        requests = [i for i in waiting if is_approval_request(i.value)]
        if requests:
            yield thread_id, requests


# --- the trace --------------------------------------------------------------------------------


def thread_checkpoints(
    saver: BaseCheckpointSaver[Any], thread_id: str
) -> Iterator[CheckpointTuple]:
    """A thread's checkpoints, newest first."""
    return saver.list(_thread_config(thread_id))


def trace_of(checkpoints: Iterable[CheckpointTuple]) -> list[TraceEvent]:
    """The trace events written on `checkpoints` (newest first, as a saver lists them), in
    `seq` order: the whole trace when they are all of a thread's checkpoints."""
    events: dict[tuple[str, int], TraceEvent] = {}
    for checkpoint in checkpoints:
        collect_events(events, checkpoint)
    return ordered_events(events)


def trace_since(
    saver: BaseCheckpointSaver[Any], thread_id: str, checkpoint_id: str | None
) -> list[TraceEvent]:
    """The trace events written on the checkpoint `checkpoint_id` and on every later one (all of
    them for `None`), in `seq` order: what a reader who last looked when `checkpoint_id` was
    the latest may have missed, since a running step writes onto the latest checkpoint. Costs
    the checkpoints read, not the thread's whole history."""
    return trace_of(_down_to(thread_checkpoints(saver, thread_id), checkpoint_id))


def _down_to(
    newest_first: Iterable[CheckpointTuple], checkpoint_id: str | None
) -> Iterator[CheckpointTuple]:
    """The checkpoints of `newest_first` down to `checkpoint_id` (included; all for `None`)."""
    for checkpoint in newest_first:
        yield checkpoint
        reached = checkpoint.config["configurable"]["checkpoint_id"]
        if checkpoint_id is not None and reached <= checkpoint_id:  # ids grow with time
            return


def collect_events(events: dict[tuple[str, int], TraceEvent], checkpoint: CheckpointTuple) -> None:
    """Add the trace events written on `checkpoint` to `events`, keyed by (trace, seq)."""
    for _task, channel, value in checkpoint.pending_writes or ():
        if channel == "events" and isinstance(value, list):
            for event in value:
                events[(event["trace_id"], event["seq"])] = event


def ordered_events(events: dict[tuple[str, int], TraceEvent]) -> list[TraceEvent]:
    return sorted(events.values(), key=lambda e: (e["seq"], e["ts"]))


def unnumbered_events(saved: CheckpointTuple) -> list[TraceEvent]:
    """The events of the steps of the wave in progress that have ended beside steps still
    waiting for a decision, in the order they happened: read from the wave's channel and from
    what the tasks of the superstep in progress stored (their pending writes). `trace_emit`
    numbers them (in plan order, so that `seq` does not depend on timing) only when the whole
    wave is over; meanwhile they carry `seq` -1 and a reader can show them as they are."""
    values = saved.checkpoint["channel_values"]
    recorded = (values.get("run") or {}).get("recorded", 0)
    reports: list[StepReport] = list(_stored(values.get("wave")) or ())[recorded:]
    for _task, channel, value in saved.pending_writes or ():
        if channel == "wave" and isinstance(value, list):
            reports += value
    ended = [event for report in reports if report.get("outcome") for event in report["events"]]
    return sorted(ended, key=lambda event: event["ts"])


# --- the state --------------------------------------------------------------------------------


def _stored(value: Any) -> Any:
    """A channel's value as a checkpoint holds it: a delta channel's snapshot is unwrapped."""
    return value.value if isinstance(value, _DeltaSnapshot) else value


def stored_values(saver: BaseCheckpointSaver[Any], saved: CheckpointTuple) -> dict[str, Any]:
    """The state's values at checkpoint `saved`, as LangGraph loads them to run the next step:
    each channel's stored value, and each delta channel's replayed from the nearest snapshot and
    the writes of the checkpoints since (one saver call). `graph.get_state` gives the same, with
    the writes of the tasks of the step in progress that ended applied on top; those stay in
    `saved.pending_writes` here (`ended_outcomes` reads the wave's)."""
    checkpoint = saved.checkpoint
    stored = checkpoint["channel_values"]
    values = {
        name: _stored(value)
        for name, value in stored.items()
        if not name.startswith(("branch:", "__")) and value is not None
    }
    # As LangGraph: a delta channel that has a version but no stored value is replayed; one
    # with no version was never written, and stays out.
    replayed = [
        name
        for name in DELTA_CHANNELS
        if name in checkpoint["channel_versions"] and name not in stored
    ]
    if replayed:
        histories = saver.get_delta_channel_history(config=saved.config, channels=replayed)
        for name, history in histories.items():
            reducer, empty = DELTA_CHANNELS[name]
            seed = _stored(history.get("seed"))
            base = empty() if seed is None else seed
            values[name] = _replayed(reducer, empty, base, [w[2] for w in history["writes"]])
    # The chat messages of a run started with a plan were never written: `get_state` shows
    # them empty all the same.
    if "messages" not in checkpoint["channel_versions"]:
        values["messages"] = []
    return values


def ended_outcomes(
    values: Mapping[str, Any], written_waves: Iterable[Any]
) -> dict[str, StepOutcome]:
    """Step id -> outcome of each step that has ended: those recorded in `outcomes`, and those
    of the wave in progress that ended beside steps waiting for a decision, recorded only when
    the whole wave is over (in the `wave` channel, or among `written_waves`: what the tasks of
    the step in progress wrote to it). A person reading the run meanwhile should see them."""
    reports: list[StepReport] = list(values.get("wave") or ())
    for written in written_waves:
        if written:  # a task's reports (`trace_emit` writes `None`, emptying the wave)
            reports += written
    reported = {r["outcome"]["step_id"]: r["outcome"] for r in reports if r.get("outcome")}
    return {**reported, **outcomes_from_state(values)}


def _replayed(
    reducer: Callable[[Any, Sequence[Any]], Any], empty: type, base: Any, writes: list[Any]
) -> Any:
    """`base` with `writes` applied, as `DeltaChannel.replay_writes` does: the last overwrite
    among them is the new base, and only the writes after it go through the reducer."""
    overwrites = [i for i, write in enumerate(writes) if isinstance(write, StoredOverwrite)]
    if overwrites:
        last = overwrites[-1]
        value = writes[last].value
        base = empty() if value is None else value
        writes = writes[last + 1 :]
    return reducer(base, writes) if writes else base


@dataclass(frozen=True)
class StoredRun:
    """A thread's run as its latest checkpoint stored it: its state's `values`, the writes of
    the step in progress (`pending_writes`: those of steps that ended beside steps still
    waiting, among them), and the interrupts it waits on (`None`: answered and asked again,
    which only a graph's `get_state` untangles)."""

    thread_id: str
    values: dict[str, Any]
    pending_writes: list[tuple[str, str, Any]]
    interrupts: list[WaitingInterrupt] | None
    saved: CheckpointTuple

    @property
    def state(self) -> RunState:
        return run_state(self.saved)

    @property
    def ended(self) -> dict[str, StepOutcome]:
        """`ended_outcomes` of this run."""
        written = (value for _, channel, value in self.pending_writes if channel == "wave")
        return ended_outcomes(self.values, written)


def read_stored_run(saver: BaseCheckpointSaver[Any], thread_id: str) -> StoredRun | None:
    """`thread_id`'s run as stored, or `None` if the thread has no checkpoint."""
    saved = _latest_of(saver, thread_id)
    if saved is None:
        return None
    return StoredRun(
        thread_id=thread_id,
        values=stored_values(saver, saved),
        pending_writes=list(saved.pending_writes or ()),
        interrupts=interrupts_waiting(saved),
        saved=saved,
    )
