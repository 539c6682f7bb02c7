"""`PlangateGraph`: the compiled graph, checking what enters it before LangGraph stores it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, AbstractContextManager, nullcontext
from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph._internal._constants import CONFIG_KEY_CHECKPOINTER, CONFIG_KEY_DURABILITY
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, Interrupt

from plangate.approval import parse_decision
from plangate.errors import InvalidDecision, NoPendingApproval, RunNotFinished, UnknownThread
from plangate.history import interrupts_waiting, is_approval_request
from plangate.locks import RunLocks, arun_locks, run_locks
from plangate.plan import parse_plan

__all__ = ("PlangateGraph",)


class PlangateGraph(CompiledStateGraph):
    """A compiled plangate graph: a LangGraph `CompiledStateGraph` that validates its input.

    A plan is validated (raising `PlanValidationError`) and a resume value is validated as a
    `Decision` against the pending request's tool (raising `InvalidDecision`) before either is
    handed to LangGraph. That matters for resumes: LangGraph stores a resume value before the
    interrupted node runs again, so a bad value must never get that far. A plan sent to a thread
    whose run has not finished raises `RunNotFinished`, and each run holds its thread's lock
    (`ResumeConflict` for a second one).
    """

    def __init__(self, *, tools: Mapping[str, BaseTool] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tools: Mapping[str, BaseTool] = tools or {}
        self._locks: RunLocks | None = None

    @classmethod
    def from_compiled(
        cls, compiled: CompiledStateGraph, tools: Mapping[str, BaseTool]
    ) -> PlangateGraph:
        attrs = {k: v for k, v in compiled.__dict__.items() if k != "__orig_class__"}
        return cls(tools=tools, **attrs)

    def stream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[Any]:
        # The thread's lock is taken before the pending approval is read, so that what is
        # checked is still true when the run goes on.
        with self._run_lock(config):
            waiting = self._waiting(config or {}) if self._is_resume(input) else None
            if self._starts_plan(input, config):
                _refuse_unfinished(self._saver.get_tuple(config or {}), config or {})
            admitted = self._admit(input, config, waiting)
            yield from super().stream(admitted, config, **self._with_durability(config, kwargs))

    async def astream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        async with await self._arun_lock(config):
            waiting = await self._awaiting(config or {}) if self._is_resume(input) else None
            if self._starts_plan(input, config):
                saved = await self._saver.aget_tuple(config or {})
                _refuse_unfinished(saved, config or {})
            admitted = self._admit(input, config, waiting)
            async for chunk in super().astream(
                admitted, config, **self._with_durability(config, kwargs)
            ):
                yield chunk

    def _with_durability(
        self, config: RunnableConfig | None, kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        """Default to `durability="sync"`: each step's checkpoint is written before the next
        step starts, so a tool's side effect is on disk before anything else runs (a crash never
        forgets a step that ran), and on SQLite it is also faster than LangGraph's default,
        `"async"`, whose background writer competes with the run for the GIL. A caller's choice,
        or a parent graph's, wins; with no checkpointer at all there is nothing to wait for."""
        configurable = (config or {}).get("configurable") or {}
        checkpointed = isinstance(self.checkpointer, BaseCheckpointSaver) or (
            configurable.get(CONFIG_KEY_CHECKPOINTER) is not None
        )
        if kwargs.get("durability") is not None or CONFIG_KEY_DURABILITY in configurable:
            return kwargs
        return {**kwargs, "durability": "sync"} if checkpointed else kwargs

    def _locked_thread(self, config: RunnableConfig | None) -> str | None:
        """The thread a run of this graph locks: its own, when it keeps its own checkpoints
        (under a parent graph's checkpointer, the parent's run holds the lock)."""
        thread = ((config or {}).get("configurable") or {}).get("thread_id")
        if thread is None or not isinstance(self.checkpointer, BaseCheckpointSaver):
            return None
        return str(thread)

    def _run_lock(self, config: RunnableConfig | None) -> AbstractContextManager[None]:
        thread = self._locked_thread(config)
        if thread is None:
            return nullcontext()
        if self._locks is None:
            self._locks = run_locks(self._saver)
        return self._locks.hold(thread)

    async def _arun_lock(self, config: RunnableConfig | None) -> AbstractAsyncContextManager[None]:
        thread = self._locked_thread(config)
        if thread is None:
            return nullcontext()
        if self._locks is None:
            self._locks = await arun_locks(self._saver)
        return self._locks.ahold(thread)

    @property
    def _saver(self) -> BaseCheckpointSaver[Any]:
        """The graph's own checkpointer; only asked for where the graph has one."""
        assert isinstance(self.checkpointer, BaseCheckpointSaver)
        return self.checkpointer

    def _starts_plan(self, input: Any, config: RunnableConfig | None) -> bool:
        """Whether `input` starts a plan on a thread of this graph's own checkpointer (under a
        parent's, the parent decides what its thread runs)."""
        return (
            isinstance(input, Mapping)
            and "plan" in input
            and self._locked_thread(config) is not None
        )

    def _is_resume(self, input: Any) -> bool:
        return (
            isinstance(input, Command)
            and input.resume is not None
            and isinstance(self.checkpointer, BaseCheckpointSaver)
        )

    def _waiting(self, config: RunnableConfig) -> list[Interrupt]:
        """The interrupts the thread waits on, from the latest checkpoint's pending writes: not
        `get_state`, whose rebuild of the state LangGraph would do again when the resume runs."""
        saved = self._saver.get_tuple(config)
        if saved is None:
            raise UnknownThread(_thread_id(config))
        waiting = interrupts_waiting(saved)
        return list(self.get_state(config).interrupts) if waiting is None else waiting

    async def _awaiting(self, config: RunnableConfig) -> list[Interrupt]:
        saved = await self._saver.aget_tuple(config)
        if saved is None:
            raise UnknownThread(_thread_id(config))
        waiting = interrupts_waiting(saved)
        return list((await self.aget_state(config)).interrupts) if waiting is None else waiting

    def _admit(
        self, input: Any, config: RunnableConfig | None, waiting: list[Interrupt] | None
    ) -> Any:
        if isinstance(input, Mapping) and "plan" in input:
            return {**input, "plan": parse_plan(input["plan"]).to_state()}
        if waiting is None or not isinstance(input, Command):
            return input
        pending = {i.id: i for i in waiting if is_approval_request(i.value)}
        if not pending:
            raise NoPendingApproval(_thread_id(config or {}))
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


def _refuse_unfinished(saved: CheckpointTuple | None, config: RunnableConfig) -> None:
    """Raise `RunNotFinished` unless the thread is new or its last run has its `result`: a new
    plan on it would silently abandon a pending approval or the steps left of a stopped run."""
    if saved is None:
        return
    waiting = interrupts_waiting(saved)
    if waiting is None or waiting:
        raise RunNotFinished(_thread_id(config), waiting=True)
    if saved.checkpoint["channel_values"].get("result") is None:
        raise RunNotFinished(_thread_id(config), waiting=False)


def _thread_id(config: RunnableConfig) -> str:
    return str((config.get("configurable") or {}).get("thread_id"))
