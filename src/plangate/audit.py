"""The audit trail: checking a thread's hash chain, and exporting its decisions and events.

Every event a graph's run writes carries a `hash` chained to the event before it
(`plangate.tracing.chain_hash`), across pauses, resumes, processes and the runs of one thread;
the run keeps the latest hash (`chain`). `verify_trace` reads the trace back and computes the
chain again: an event edited, removed or inserted in the database is the first one whose hash
does not match (or whose `seq` does not follow), and events removed from the end leave the
run's `chain` naming a hash no event has. With `PLANGATE_AUDIT_KEY` set the hashes are
HMACs: without the key, nobody can compute a chain that matches.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph

from plangate._governance import iso, utc_now
from plangate.errors import PlangateUsageError, UnknownThread
from plangate.runs.history import get_trace
from plangate.tracing import AUDIT_KEY_ENV, TraceEvent, audit_key, chain_hash

__all__ = ("ChainCheck", "audit_records", "verify_events", "verify_trace")


@dataclass(frozen=True, slots=True)
class ChainCheck:
    """What `verify_trace` found.

    Attributes:
        ok: Every event's hash matches, `seq` runs without a gap, and the last hash is the one
            the run recorded.
        events: How many events were checked.
        head: The hash of the last event that matched ("" when none did).
        seq: The `seq` of the first event that does not match, or `None`.
        problem: What is wrong with it, in one line; `None` when `ok`.
    """

    ok: bool
    events: int
    head: str
    seq: int | None = None
    problem: str | None = None


def verify_events(
    events: Sequence[Mapping[str, Any]], *, key: bytes | None = None, recorded: str | None = None
) -> ChainCheck:
    """Check the hash chain of `events` (a thread's trace in `seq` order, as `get_trace` or a
    `plangate audit` export gives them), under `key` (`None`: plain SHA-256); `recorded` is
    the hash the run recorded as its latest, which the last event must carry."""
    previous = ""
    for count, event in enumerate(events):
        seq = event.get("seq")
        problem = None
        if "hash" not in event:
            problem = "carries no hash (written before plangate chained its events?)"
        elif count and seq != events[count - 1].get("seq", -2) + 1 and _same_trace(events, count):
            problem = f"follows seq {events[count - 1].get('seq')}: the events between are missing"
        elif event["hash"] != chain_hash(previous, event, key):
            problem = "its hash does not match its content and the event before it"
            if count == 0:
                problem += _key_hint(key)
        if problem is not None:
            return ChainCheck(False, count, previous, seq, f"event seq {seq}: {problem}")
        previous = event["hash"]
    if recorded is not None and recorded != previous:
        last = events[-1].get("seq") if events else None
        return ChainCheck(
            False,
            len(events),
            previous,
            last,
            f"the run's latest hash is not that of its last event (seq {last}): "
            "events after it are missing",
        )
    return ChainCheck(True, len(events), previous)


def _same_trace(events: Sequence[Mapping[str, Any]], index: int) -> bool:
    # A run may continue another trace at its own `seq` (`trace_seq`): the count starts anew.
    return events[index].get("trace_id") == events[index - 1].get("trace_id")


def _key_hint(key: bytes | None) -> str:
    if key is None:
        return f" (if the run was written with {AUDIT_KEY_ENV} set, set the same key)"
    return f" (or the run was written under another {AUDIT_KEY_ENV}, or none)"


def verify_trace(
    graph: CompiledStateGraph, config: RunnableConfig, *, key: bytes | None = None
) -> ChainCheck:
    """Compute the hash chain of `config`'s thread again, from its stored events, under `key`
    (default: `PLANGATE_AUDIT_KEY`, else plain SHA-256), and say where it first breaks.

    Raises:
        UnknownThread: The thread has no checkpoint.

    Example:
        >>> from plangate import build_graph, open_checkpointer
        >>> graph = build_graph({"echo.say": lambda text: text}, profile="technical",
        ...                     checkpointer=open_checkpointer("sqlite:///:memory:"))
        >>> config = {"configurable": {"thread_id": "t1"}}
        >>> _ = graph.invoke({"plan": [{"tool": "echo.say", "args": {"text": "hi"}}]}, config)
        >>> verify_trace(graph, config).ok
        True
    """
    events = get_trace(graph, config)
    run = _run(graph, config)
    return verify_events(events, key=audit_key() if key is None else key, recorded=run.get("chain"))


def _run(graph: CompiledStateGraph, config: RunnableConfig) -> Mapping[str, Any]:
    saver = graph.checkpointer
    if not isinstance(saver, BaseCheckpointSaver):
        raise PlangateUsageError(
            "this graph has no checkpointer of its own",
            hint="build it with checkpointer=open_checkpointer(...) to read runs back",
        )
    thread = str(config["configurable"]["thread_id"])
    saved = saver.get_tuple({"configurable": {"thread_id": thread, "checkpoint_ns": ""}})
    if saved is None:
        raise UnknownThread(thread)
    run: Mapping[str, Any] = saved.checkpoint["channel_values"].get("run") or {}
    return run


def audit_records(
    graph: CompiledStateGraph, config: RunnableConfig, *, key: bytes | None = None
) -> Iterator[dict[str, Any]]:
    """The audit export of `config`'s thread, record by record (one JSON line each in
    `plangate audit`): first a `header` with the chain's check, then every `decision` (who
    decided what about which call, when, as the trace recorded it), then every `event` as
    stored, hash included, so that the chain can be checked again from the export alone
    (`verify_events`). Everything is as the trace holds it: redacted where the profile
    redacts.

    Raises:
        UnknownThread: The thread has no checkpoint.
    """
    thread = str(config["configurable"]["thread_id"])
    events = get_trace(graph, config)
    run = _run(graph, config)
    key = audit_key() if key is None else key
    check = verify_events(events, key=key, recorded=run.get("chain"))
    yield {
        "record": "header",
        "thread_id": thread,
        "trace_ids": list(dict.fromkeys(e["trace_id"] for e in events)),
        "exported_at": iso(utc_now()),
        "events": len(events),
        "chain": "hmac-sha256" if key else "sha256",
        "verified": check.ok,
        "problem": check.problem,
        "head": run.get("chain"),
    }
    for decision in _decisions(events):
        yield {"record": "decision", **decision}
    for event in events:
        yield {"record": "event", "event": event}


def _decisions(events: Sequence[TraceEvent]) -> Iterator[dict[str, Any]]:
    """Each request with its decision (or its expiry), from the trace's own events."""
    asked: dict[str, TraceEvent] = {}
    for event in events:
        data = event["data"]
        if event["type"] == "approval_requested":
            asked[data.get("request_id", "")] = event
        elif event["type"] in ("approval_received", "approval_timeout"):
            request = asked.get(data.get("request_id", ""))
            shown = request["data"] if request else {}
            yield {
                "request_id": data.get("request_id"),
                "trace_id": event["trace_id"],
                "step_id": event["step_id"],
                "tool": event["tool"],
                "requested_at": request["ts"] if request else None,
                "shown": {k: shown.get(k) for k in ("args", "action", "risk", "digest")},
                "decision": data.get("decision", "expired"),
                "approver": data.get("approver"),
                "reason": data.get("reason"),
                "args": data.get("args"),
                "decided_at": event["ts"],
                "seq": event["seq"],
            }
