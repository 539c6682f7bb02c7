"""The audit trail: checking a thread's hash chain, and exporting its decisions and events.

Every event a graph's run writes carries a `hash` chained to the event before it
(`plangate.tracing.chain_hash`), across pauses, resumes, processes and the runs of one thread;
the run keeps the latest hash (`chain`). `verify_trace` reads the trace back and computes the
chain again: an event edited, removed or inserted in the database is the first one whose hash
does not match (or whose `seq` does not follow), and single events removed from the end leave
the run's `chain` naming a hash no event has. With `PLANGATE_AUDIT_KEY` set the hashes are
HMACs: without the key, nobody can compute a chain that matches.

The run's `chain` lives in the same database as the events: deleting a thread's last
checkpoints whole takes both back together, and leaves a shorter chain that holds. Only the
thread's anchors (`plangate.runs.anchors`), kept outside the database, show that: every
anchored event must still be there, with the anchored hash. Without anchors, `verify` says
that such a rollback cannot be detected.

What people read must be what the chain proves: each step's approval, as the run's state
records it (what `show` and the inbox print), must be the one the chained
`approval_received` (or `approval_timeout`) event records.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph

from plangate._channels import outcomes_from_state
from plangate._time import iso, utc_now
from plangate.errors import PlangateUsageError, UnknownThread
from plangate.identity import DecisionSigner, is_verified, shown_name
from plangate.runs.anchors import AnchorSink, anchors_of
from plangate.runs.history import get_trace
from plangate.tracing import (
    AUDIT_KEY_ENV,
    Anchor,
    TraceEvent,
    anchor_signature,
    audit_key,
    chain_hash,
    redact,
)

__all__ = (
    "ChainCheck",
    "audit_records",
    "verify_anchors",
    "verify_decisions",
    "verify_events",
    "verify_trace",
)


@dataclass(frozen=True, slots=True)
class ChainCheck:
    """What `verify_trace` found.

    Attributes:
        ok: Every event's hash matches, `seq` runs without a gap, the last hash is the one
            the run recorded, every anchor is in the chain, and every recorded approval is
            the chained one, whose verified people its proofs bear out.
        events: How many events were checked.
        head: The hash of the last event that matched ("" when none did).
        seq: The `seq` of the first event that does not match (or is missing), or `None`.
        problem: What is wrong with it, in one line; `None` when `ok`.
        found_by: What found the problem: the hash `chain`, the thread's `anchors`, the
            recorded `decisions` compared with the chained ones, or their `proofs` checked
            under the project's signing key (`verify_proofs`).
        anchors: How many anchors of the thread were checked; `None` when there is no
            anchor sink: then a rollback of whole checkpoints cannot be detected.
    """

    ok: bool
    events: int
    head: str
    seq: int | None = None
    problem: str | None = None
    found_by: Literal["chain", "anchors", "decisions", "proofs"] = "chain"
    anchors: int | None = None


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


def verify_anchors(
    events: Sequence[Mapping[str, Any]], anchors: Sequence[Anchor], *, key: bytes | None = None
) -> tuple[int | None, str] | None:
    """What is wrong with `events` (a thread's trace, its chain already checked) against the
    thread's `anchors`, as (the `seq` of the first event missing or not as anchored, the
    problem in one line); `None` when every anchor is signed as `key` says and names an event
    that is there with the anchored hash.

    Examples:
        >>> from plangate.tracing import make_anchor
        >>> cut = make_anchor(thread_id="t", run_id="r", trace_id="x", seq=4, hash="h",
        ...                   ts="noon", key=None)
        >>> print(*verify_anchors([{"trace_id": "x", "seq": 0, "hash": "g"}], [cut]))
        1 events seq 1..4 are missing: the database was rolled back (anchored up to seq 4 at noon)
    """
    for anchor in anchors:
        problem = _signature_problem(anchor, key)
        if problem is not None:
            return None, f"the anchor of seq {anchor['seq']} ({anchor['ts']}) {problem}"
    stored = {(e.get("trace_id"), e.get("seq")): e for e in events}
    missing: list[Anchor] = []
    for anchor in sorted(anchors, key=lambda a: a["seq"]):
        event = stored.get((anchor["trace_id"], anchor["seq"]))
        if event is None:
            missing.append(anchor)
        elif event.get("hash") != anchor["hash"]:
            return anchor["seq"], (
                f"event seq {anchor['seq']}: its hash is not the one anchored at {anchor['ts']} "
                "(the events from there on were written again)"
            )
    if not missing:
        return None
    trace = missing[0]["trace_id"]
    furthest = max((a for a in missing if a["trace_id"] == trace), key=lambda a: a["seq"])
    first = 1 + max((e["seq"] for e in events if e.get("trace_id") == trace), default=-1)
    seq = furthest["seq"]
    lost = f"events seq {first}..{seq} are" if first < seq else f"event seq {seq} is"
    return first, (
        f"{lost} missing: the database was rolled back "
        f"(anchored up to seq {seq} at {furthest['ts']})"
    )


def _signature_problem(anchor: Anchor, key: bytes | None) -> str | None:
    if key is None:
        return f"is signed: set {AUDIT_KEY_ENV} to check it" if anchor.get("signed") else None
    if not anchor.get("signed"):
        return f"is not signed, while {AUDIT_KEY_ENV} is set"
    if anchor.get("signature") != anchor_signature(anchor, key):
        return f"is not signed with this {AUDIT_KEY_ENV} (forged, or written under another key)"
    return None


def verify_decisions(
    events: Sequence[Mapping[str, Any]], outcomes: Sequence[Mapping[str, Any]]
) -> tuple[int | None, str] | None:
    """The first step whose approval, as `outcomes` (the run's state) record it, is not the
    one the chained events record, as (the chained event's `seq`, what differs); `None` when
    they all agree. Approvals covered by a plan review have no event of their own."""
    chained: dict[str, list[Mapping[str, Any]]] = {}
    for event in events:
        if event.get("type") in ("approval_received", "approval_timeout"):
            chained.setdefault(str(event["data"].get("request_id")), []).append(event)
    for outcome in outcomes:
        approval = outcome.get("approval")
        if not approval or approval.get("covered_by"):
            continue
        step = outcome["step_id"]
        found = chained.get(str(approval.get("request_id")), [])
        if approval["decision"] == "expired":
            if not any(e["type"] == "approval_timeout" for e in found):
                return None, f"step {step}: it is recorded as expired, and no event says so"
            continue
        received = [e for e in found if e["type"] == "approval_received"]
        problem = _decision_problem(approval, received)
        if problem is not None:
            seq, what = problem
            return seq, f"step {step}: {what}"
    return None


def _said(decision: Mapping[str, Any]) -> list[Any]:
    """What a decision says of itself: its kind, its approver, and how they were known (a
    record keeps it in its identity, an event beside it)."""
    identity = decision.get("identity") or {}
    verified_by = decision.get("verified_by", identity.get("verified_by"))
    return [decision.get("decision"), decision.get("approver"), verified_by]


def verify_proofs(
    outcomes: Sequence[Mapping[str, Any]], signer: DecisionSigner | None
) -> str | None:
    """The first approval the run records whose verified identities its proofs do not bear
    out, under the project's key (`identity.signing_key`): a proof that no longer holds (the
    decision, the request or the person changed after signing), or a verified person no proof
    names. `None` when they all hold."""
    for outcome in outcomes:
        approval = outcome.get("approval") or {}
        step = outcome.get("step_id")
        proofs = approval.get("proofs") or []
        claimed = [
            approval.get("identity"),
            *(a.get("identity") for a in approval.get("approvals") or ()),
        ]
        verified = [identity for identity in claimed if is_verified(identity)]
        if (proofs or verified) and signer is None:
            return (
                f"step {step}: its approval records verified people, and their proofs need "
                "the project's signing key (identity.signing_key) to be checked"
            )
        for signed in proofs:
            assert signer is not None
            if not signer.decision_holds(signed, **{k: signed.get(k) for k in _BOUND}):
                name = shown_name(signed.get("identity") or {})
                return (
                    f"step {step}: the proof of {signed.get('decision')} by {name!r} does not "
                    "hold: the record was changed after it was signed"
                )
        signed_by = [signed.get("identity") for signed in proofs]
        for identity in verified:
            if identity not in signed_by:
                return (
                    f"step {step}: the record says {shown_name(identity)!r} "
                    f"({identity.get('verified_by')}) decided, and no proof says so"
                )
    return None


_BOUND = ("request_id", "digest", "identity", "proof")


def _decision_problem(
    approval: Mapping[str, Any], received: Sequence[Mapping[str, Any]]
) -> tuple[int | None, str] | None:
    """What of `approval` (a step's `ApprovalRecord`) the chained `received` events of its
    request do not say: its own decision is the last one's, and each approval that counted is
    one of them, in order."""
    recorded = f"the run records {approval['decision']} by {approval.get('approver')}"
    if not received:
        return None, f"{recorded}, and no chained event records a decision"
    last = received[-1]["data"]
    own = _said(approval)
    # An approval of a call an earlier approver edited is recorded as that edit.
    if own[0] == "edit" and any(e["data"].get("decision") == "edit" for e in received):
        own[0] = last.get("decision")
    if not _agrees(own, _said(last)):
        seq = received[-1]["seq"]
        chained = f"{last.get('decision')} by {last.get('approver')}"
        return seq, f"{recorded}, the chain (event seq {seq}) {chained}"
    events = iter(received)
    for given in approval.get("approvals") or ():
        # One iterator for all: each approval that counted is found after the one before it.
        if not any(_agrees(_said(given), _said(e["data"])) for e in events):
            return None, f"the run records an approval by {given.get('approver')} no event records"
    return None


def _agrees(recorded: list[Any], chained: list[Any]) -> bool:
    # The trace holds what the profile's redaction left of the name.
    return chained in (recorded, redact(recorded))


def verify_trace(
    graph: CompiledStateGraph,
    config: RunnableConfig,
    *,
    key: bytes | None = None,
    anchors: AnchorSink | Sequence[Anchor] | None = None,
    signer: DecisionSigner | None = None,
) -> ChainCheck:
    """Compute the hash chain of `config`'s thread again, from its stored events, under `key`
    (default: `PLANGATE_AUDIT_KEY`, else plain SHA-256), and say where it first breaks; then
    check it against the thread's anchors, and the approvals its state records against the
    chained ones.

    Args:
        graph: A graph with a checkpointer.
        config: A config naming the `thread_id`.
        key: The chain's key (default: `PLANGATE_AUDIT_KEY`).
        anchors: Where the thread's anchors are (a sink, or anchors read elsewhere); default:
            the sink `graph` was built with (`build_graph(anchors=...)`), if any.
        signer: The project's signing key, to check the proofs of verified decisions
            (`verify_proofs`); default: the one `graph` was built with, if any.

    Raises:
        UnknownThread: The thread has no checkpoint, and no anchor.
        PlangateUsageError: The anchors cannot be read.

    Examples:
        >>> from plangate import build_graph, open_checkpointer
        >>> graph = build_graph({"echo.say": lambda text: text}, profile="technical",
        ...                     checkpointer=open_checkpointer("sqlite:///:memory:"))
        >>> config = {"configurable": {"thread_id": "t1"}}
        >>> _ = graph.invoke({"plan": [{"tool": "echo.say", "args": {"text": "hi"}}]}, config)
        >>> check = verify_trace(graph, config)
        >>> check.ok, check.anchors  # no anchors: a rollback of whole checkpoints goes unseen
        (True, None)
    """
    key = audit_key() if key is None else key
    thread = str(config["configurable"]["thread_id"])
    if anchors is None:
        governance = getattr(graph, "governance", None)
        anchors = getattr(governance, "anchors", None)
    try:
        recorded = _run(graph, config).get("chain")
    except UnknownThread:
        found = _readable_anchors(anchors, thread)
        if not found:
            raise
        # Every checkpoint of an anchored thread is gone: the whole run was rolled back.
        broken = verify_anchors([], found, key=key)
        assert broken is not None  # no event is there: every anchored one is missing
        return ChainCheck(False, 0, "", *broken, "anchors", len(found))
    events = get_trace(graph, config)
    check = verify_events(events, key=key, recorded=recorded)
    if not check.ok:
        return check
    if anchors is not None:
        found = anchors_of(anchors, thread)
        check = replace(check, anchors=len(found))
        broken = verify_anchors(events, found, key=key)
        if broken is not None:
            seq, problem = broken
            return replace(check, ok=False, seq=seq, problem=problem, found_by="anchors")
    outcomes = _recorded_outcomes(graph, config)
    mismatch = verify_decisions(events, outcomes)
    if mismatch is not None:
        seq, problem = mismatch
        return replace(check, ok=False, seq=seq, problem=problem, found_by="decisions")
    if signer is None:
        signer = getattr(getattr(graph, "governance", None), "signer", None)
    unproven = verify_proofs(outcomes, signer)
    if unproven is not None:
        return replace(check, ok=False, seq=None, problem=unproven, found_by="proofs")
    return check


def _readable_anchors(anchors: AnchorSink | Sequence[Anchor] | None, thread: str) -> list[Anchor]:
    """The anchors of a thread that has no checkpoint; none where they cannot be read here (the
    thread is then unknown, as it would be without anchors)."""
    try:
        return anchors_of(anchors, thread) if anchors is not None else []
    except PlangateUsageError:
        return []


def _recorded_outcomes(
    graph: CompiledStateGraph, config: RunnableConfig
) -> list[Mapping[str, Any]]:
    """The step outcomes the thread's state records: those of its result, and those of the
    steps recorded so far (a run that has not finished)."""
    values = graph.get_state({"configurable": {"thread_id": config["configurable"]["thread_id"]}})
    result = values.values.get("result") or {}
    return [*(result.get("steps") or ()), *outcomes_from_state(values.values).values()]


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
    graph: CompiledStateGraph,
    config: RunnableConfig,
    *,
    key: bytes | None = None,
    anchors: AnchorSink | Sequence[Anchor] | None = None,
    signer: DecisionSigner | None = None,
) -> Iterator[dict[str, Any]]:
    """The audit export of `config`'s thread, record by record (one JSON line each in
    `plangate audit`): first a `header` with the check of `verify_trace` (chain, anchors,
    decisions), then every `decision` (who decided what about which call, when, as the chained
    events record it), then every `event` as stored, hash included, so that the chain can be
    checked again from the export alone (`verify_events`). Everything is as the trace holds
    it: redacted where the profile redacts.

    Raises:
        UnknownThread: The thread has no checkpoint.
    """
    thread = str(config["configurable"]["thread_id"])
    key = audit_key() if key is None else key
    check = verify_trace(graph, config, key=key, anchors=anchors, signer=signer)
    events = get_trace(graph, config)
    run = _run(graph, config)
    yield {
        "record": "header",
        "thread_id": thread,
        "trace_ids": list(dict.fromkeys(e["trace_id"] for e in events)),
        "exported_at": iso(utc_now()),
        "events": len(events),
        "chain": "hmac-sha256" if key else "sha256",
        "verified": check.ok,
        "problem": check.problem,
        "anchors": check.anchors,
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
                "verified_by": data.get("verified_by", "unverified"),
                "identity": data.get("identity"),
                "reason": data.get("reason"),
                "args": data.get("args"),
                "decided_at": event["ts"],
                "seq": event["seq"],
            }
