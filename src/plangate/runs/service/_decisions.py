"""The run service's one rule for binding a decision to the requests it answers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from langgraph.types import Command

from plangate.approval import parse_decision
from plangate.errors import (
    InvalidDecision,
    NoPendingApproval,
    PlangateUsageError,
    StaleDecision,
)
from plangate.identity._identity import Identity, is_verified, shown_name
from plangate.runs.admission import several_pending
from plangate.runs.guarded_graph import PlangateGraph

__all__ = ("BoundDecision", "bind_decision")


@dataclass(frozen=True)
class BoundDecision:
    """A decision bound to the requests it answers: those `requests` (in plan order), and what
    answers exactly them (`resume`): the decision checked for each, keyed by its interrupt's id
    and carrying its request's id and digest."""

    requests: list[dict[str, Any]]
    resume: dict[str, dict[str, Any]]

    @property
    def command(self) -> Command[Any]:
        """The value that resumes the run with this decision: one decision alone, bound by its
        request's id (a request decided meanwhile is then refused as stale, whatever waits
        now); several as a mapping by interrupt id."""
        if len(self.resume) == 1:
            (decision,) = self.resume.values()
            return Command(resume=decision)
        return Command(resume=self.resume)


def bind_decision(
    thread: str,
    waiting: Mapping[str, dict[str, Any]],
    decision: Mapping[str, Any],
    *,
    graph: PlangateGraph,
    interrupt_id: str | None = None,
    step: str | None = None,
    every: bool = False,
    caller: Identity | None = None,
) -> BoundDecision:
    """Bind `decision` (a `Decision` as JSON, with its `approver`) to the requests of `waiting`
    (interrupt id -> approval request, of a run's latest state) it answers, and check it as the
    graph will, for each of them: see the module's doc for the rule.

    A verified `caller` (the door authenticated them) decides as themselves: the decision gets
    their identity and, for each request, a proof made with the graph's key, which the graph
    checks again; an `approver` named beside them must be them. An unverified caller (the
    operating-system user of the CLI on the database) is the approver when none is named.

    Raises:
        NoPendingApproval: Nothing waits.
        StaleDecision: `interrupt_id` names a request that waits no more (decided meanwhile).
        InvalidDecision: A bare decision while several requests wait; no approver; a
            rejection without a reason; what `parse_decision` refuses (an edit the tool's
            schema refuses, say). The run stays as it was.
        PlangateUsageError: `step` names a step that does not wait; more than one of
            `interrupt_id`, `step` and `every`.
    """
    if not waiting:
        raise NoPendingApproval(thread)
    if sum((interrupt_id is not None, step is not None, every)) > 1:
        raise PlangateUsageError(
            "name the requests decided one way: an interrupt id, a step or all"
        )
    ordered = sorted(waiting.items(), key=lambda item: item[1]["step_index"])
    if interrupt_id is not None:
        if not isinstance(interrupt_id, str):
            raise InvalidDecision(
                "invalid decision: interrupt_id: expected the id of a pending approval",
                field="interrupt_id",
            )
        if interrupt_id not in waiting:
            raise StaleDecision(thread)
        chosen = [(interrupt_id, waiting[interrupt_id])]
    elif step is not None:
        chosen = [(key, request) for key, request in ordered if request.get("step_id") == step]
        if not chosen:
            raise PlangateUsageError(
                f"run {thread!r} is not waiting for step {step!r} (it waits for {_steps(ordered)})",
                hint="`plangate show THREAD` prints what it waits for",
            )
    elif every or len(ordered) == 1:
        chosen = ordered
    else:
        raise several_pending(
            [request for _, request in ordered],
            field="interrupt_id",
            hint="decide one by its step or interrupt id, or all of them at once",
        )
    resume = {key: _checked(decision, request, graph, caller) for key, request in chosen}
    return BoundDecision([request for _, request in chosen], resume)


def _steps(ordered: list[tuple[str, dict[str, Any]]]) -> str:
    return ", ".join(repr(request.get("step_id") or "the plan") for _, request in ordered)


def _checked(
    decision: Mapping[str, Any],
    request: dict[str, Any],
    graph: PlangateGraph,
    caller: Identity | None,
) -> dict[str, Any]:
    """`decision` as the resume value of `request`: bound to the request's id and digest (a
    digest the face was shown must be the request's), signed for a verified caller, checked as
    the graph will check it."""
    fields = {"request_id": request["request_id"], "digest": request.get("digest"), **decision}
    # Who decides is the door's to say, never the body's.
    fields.pop("identity", None)
    fields.pop("proof", None)
    signer = graph.governance.signer
    if caller is not None and is_verified(caller) and signer is not None:
        fields["identity"] = caller
        fields["proof"] = signer.sign_decision(
            fields, request_id=request["request_id"], digest=request.get("digest"), identity=caller
        )
    elif caller is not None and fields.get("approver") is None:
        fields["approver"] = shown_name(caller)
    parsed = parse_decision(
        fields,
        tool=graph.tools.get(request.get("tool") or ""),
        request=request,
        gate=graph.governance.gate(None),
    )
    if parsed.approver is None:  # none given, or a blank one (`Decision.approver`)
        raise InvalidDecision(
            "invalid decision: approver: give the name of who decides", field="approver"
        )
    if parsed.decision == "reject" and not (parsed.reason or "").strip():
        raise InvalidDecision(
            "invalid decision: reason: a 'reject' decision needs a reason", field="reason"
        )
    return parsed.model_dump(exclude_none=True)
