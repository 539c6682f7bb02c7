"""`PlangateGraph`: the compiled graph, checking what enters it before LangGraph stores it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph._internal._constants import CONFIG_KEY_DURABILITY
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, StateSnapshot

from plangate.approval import parse_decision
from plangate.errors import InvalidDecision, NoPendingApproval, UnknownThread
from plangate.plan import parse_plan

__all__ = ("PlangateGraph",)


class PlangateGraph(CompiledStateGraph):
    """A compiled plangate graph: a LangGraph `CompiledStateGraph` that validates its input.

    A plan is validated (raising `PlanValidationError`) and a resume value is validated as a
    `Decision` against the pending request's tool (raising `InvalidDecision`) before either is
    handed to LangGraph. That matters for resumes: LangGraph stores a resume value before the
    interrupted node runs again, so a bad value must never get that far.
    """

    def __init__(self, *, tools: Mapping[str, BaseTool] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tools: Mapping[str, BaseTool] = tools or {}

    @classmethod
    def from_compiled(
        cls, compiled: CompiledStateGraph, tools: Mapping[str, BaseTool]
    ) -> PlangateGraph:
        attrs = {k: v for k, v in compiled.__dict__.items() if k != "__orig_class__"}
        return cls(tools=tools, **attrs)

    def stream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[Any]:
        snapshot = self.get_state(config or {}) if self._needs_snapshot(input) else None
        admitted = self._admit(input, config, snapshot)
        return super().stream(admitted, config, **_with_durability(config, kwargs))

    async def astream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        snapshot = await self.aget_state(config or {}) if self._needs_snapshot(input) else None
        admitted = self._admit(input, config, snapshot)
        async for chunk in super().astream(admitted, config, **_with_durability(config, kwargs)):
            yield chunk

    def _needs_snapshot(self, input: Any) -> bool:
        return (
            isinstance(input, Command)
            and input.resume is not None
            and self.checkpointer is not None
        )

    def _admit(
        self, input: Any, config: RunnableConfig | None, snapshot: StateSnapshot | None
    ) -> Any:
        if isinstance(input, Mapping) and "plan" in input:
            return {**input, "plan": parse_plan(input["plan"]).model_dump(mode="json")}
        if snapshot is None or not isinstance(input, Command):
            return input
        thread_id = str(((config or {}).get("configurable") or {}).get("thread_id"))
        if not snapshot.values and not snapshot.next:
            raise UnknownThread(thread_id)
        pending = {i.id: i for i in snapshot.interrupts if _is_request(i.value)}
        if not pending:
            raise NoPendingApproval(thread_id)
        resume = input.resume
        if isinstance(resume, Mapping) and resume and set(resume) <= set(pending):
            checked = {
                key: self._decision(pending[key].value, value) for key, value in resume.items()
            }
            return Command(resume=checked, update=input.update, goto=input.goto, graph=input.graph)
        if len(pending) > 1:
            raise InvalidDecision(
                f"{len(pending)} approvals are pending; "
                "resume with a mapping of interrupt id to decision",
                field="resume",
                hint="ids: " + ", ".join(pending),
            )
        (request,) = (i.value for i in pending.values())
        return Command(
            resume=self._decision(request, resume),
            update=input.update,
            goto=input.goto,
            graph=input.graph,
        )

    def _decision(self, request: Mapping[str, Any], value: Any) -> dict[str, Any]:
        decision = parse_decision(value, tool=self.tools.get(request["tool"]))
        return decision.model_dump(exclude_none=True)


def _with_durability(config: RunnableConfig | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Default to `durability="sync"`: each step's checkpoint is written before the next step
    starts, so a tool's side effect is on disk before anything else runs (a crash never forgets
    a step that ran), and on SQLite it is also faster than LangGraph's default, `"async"`, whose
    background writer competes with the run for the GIL. A caller's choice, or a parent graph's,
    wins."""
    inherited = CONFIG_KEY_DURABILITY in ((config or {}).get("configurable") or {})
    if kwargs.get("durability") is not None or inherited:
        return kwargs
    return {**kwargs, "durability": "sync"}


def _is_request(value: Any) -> bool:
    return isinstance(value, Mapping) and value.get("type") == "approval_request"
