"""Runs: `PlangateGraph`, the compiled graph, checking what enters it before LangGraph stores
it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, AbstractContextManager, nullcontext
from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph._internal._constants import CONFIG_KEY_CHECKPOINTER, CONFIG_KEY_DURABILITY
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command

from plangate._governance import Governance
from plangate.adapters.registry import LazyTools
from plangate.errors import (
    MissingThreadId,
    ProfileMismatch,
    RunNotFinished,
    UnknownThread,
)
from plangate.hitl import interrupt_mode_of
from plangate.runs.admission import admit, plan_from_messages, thread_id_of
from plangate.runs.history import remaining_tools
from plangate.runs.locks import RunLocks, arun_locks, run_locks
from plangate.runs.stored import (
    WaitingInterrupt,
    interrupts_waiting,
    run_state,
)

__all__ = ("PlangateGraph",)


class PlangateGraph(CompiledStateGraph):
    """A compiled plangate graph: a LangGraph `CompiledStateGraph` that validates its input.

    A plan is validated (raising `PlanValidationError`) and a resume value is validated as a
    `Decision` on the pending request (raising `InvalidDecision`) before either is handed to
    LangGraph. That matters for resumes: LangGraph stores a resume value before the interrupted
    node runs again, so a bad value must never get that far. A resume is refused, and the run
    stays paused, when the decision names a request that is no longer pending
    (`StaleDecision`), when the run started under another profile than this graph's
    (`ProfileMismatch`), or when this graph lacks the waiting step's tool (`ToolNotAvailable`).
    A plan sent to a thread whose run has not finished raises `RunNotFinished`, and each run
    holds its thread's lock (`ResumeConflict` for a second one).
    """

    def __init__(self, *, governance: Governance, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.governance = governance
        self._locks: RunLocks | None = None

    @property
    def tools(self) -> Mapping[str, BaseTool]:
        """The tools plans may call, by name."""
        return self.governance.tools

    def reach(self, tools: Iterable[str]) -> None:
        """Load the source of each of `tools` now (an MCP server, an OpenAPI document), as a
        run would when it came to their steps: a source that cannot be reached raises its
        `AdapterError` here, before anything is stored or run, not after an earlier step has
        acted. Offline, mocks answer for every tool: nothing is reached."""
        if self.governance.profile.offline:
            return
        for name in tools:
            self.tools.get(name)

    def _sources_unloaded(self) -> bool:
        """Whether a decision must first reach the sources of the steps left (`reach`): only
        while some source has not been loaded, so that once they are, a resume reads no more
        than it did. Refused there, a decision is not applied: an irreversible step approved
        does not act only for the run to stop at the next step, whose source is down."""
        return isinstance(self.tools, LazyTools) and self.tools.unloaded

    @classmethod
    def from_compiled(cls, compiled: CompiledStateGraph, governance: Governance) -> PlangateGraph:
        attrs = {k: v for k, v in compiled.__dict__.items() if k != "__orig_class__"}
        return cls(governance=governance, **attrs)

    def stream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[Any]:
        # The thread's lock is taken before the pending approval is read, so that what is
        # checked is still true when the run goes on.
        self._refuse_no_thread(config)
        interrupt_mode_of(config)  # a mode nobody speaks is refused before anything runs
        input = plan_from_messages(input)
        with self.hold(config):
            saved = self._saver.get_tuple(config or {}) if self._locked_thread(config) else None
            if self._starts_plan(input, config):
                _refuse_unfinished(saved, config or {})
            else:
                self._check_profile(saved, config or {})
            waiting = self._waiting(saved, config or {}) if self._is_resume(input) else None
            if waiting is not None and self._sources_unloaded():
                self.reach(remaining_tools(self.get_state(config or {})))
            admitted = admit(input, config, waiting, self.governance)
            yield from super().stream(admitted, config, **self._with_durability(config, kwargs))

    async def astream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        self._refuse_no_thread(config)
        interrupt_mode_of(config)
        input = plan_from_messages(input)
        async with await self._arun_lock(config):
            locked = self._locked_thread(config)
            saved = await self._saver.aget_tuple(config or {}) if locked else None
            if self._starts_plan(input, config):
                _refuse_unfinished(saved, config or {})
            else:
                self._check_profile(saved, config or {})
            waiting = await self._awaiting(saved, config or {}) if self._is_resume(input) else None
            if waiting is not None and self._sources_unloaded():
                self.reach(remaining_tools(await self.aget_state(config or {})))
            admitted = admit(input, config, waiting, self.governance)
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

    def _refuse_no_thread(self, config: RunnableConfig | None) -> None:
        """Raise `MissingThreadId` when the graph keeps its own checkpoints and `config` names no
        thread to keep them under (LangGraph would raise a bare `ValueError` mid-way)."""
        thread = ((config or {}).get("configurable") or {}).get("thread_id")
        if thread in (None, "") and isinstance(self.checkpointer, BaseCheckpointSaver):
            raise MissingThreadId()

    def _locked_thread(self, config: RunnableConfig | None) -> str | None:
        """The thread a run of this graph locks: its own, when it keeps its own checkpoints
        (under a parent graph's checkpointer, the parent's run holds the lock)."""
        thread = ((config or {}).get("configurable") or {}).get("thread_id")
        if thread is None or not isinstance(self.checkpointer, BaseCheckpointSaver):
            return None
        return str(thread)

    def hold(self, config: RunnableConfig | None) -> AbstractContextManager[None]:
        """Hold the lock of the run of `config`'s thread: nothing else runs or resumes it
        meanwhile. Raises `ResumeConflict` when something already does."""
        thread = self._locked_thread(config)
        return nullcontext() if thread is None else self._run_locks.hold(thread)

    def is_running(self, config: RunnableConfig) -> bool:
        """Whether some process runs `config`'s thread now (`RunLocks.is_running`)."""
        thread = self._locked_thread(config)
        return thread is not None and self._run_locks.is_running(thread)

    @property
    def _run_locks(self) -> RunLocks:
        if self._locks is None:
            self._locks = run_locks(self._saver)
        return self._locks

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

    def _waiting(
        self, saved: CheckpointTuple | None, config: RunnableConfig
    ) -> list[WaitingInterrupt]:
        """The interrupts the thread waits on, from the latest checkpoint's pending writes: not
        `get_state`, whose rebuild of the state LangGraph would do again when the resume runs."""
        if saved is None:
            raise UnknownThread(thread_id_of(config))
        waiting = interrupts_waiting(saved)
        return list(self.get_state(config).interrupts) if waiting is None else waiting

    async def _awaiting(
        self, saved: CheckpointTuple | None, config: RunnableConfig
    ) -> list[WaitingInterrupt]:
        if saved is None:
            raise UnknownThread(thread_id_of(config))
        waiting = interrupts_waiting(saved)
        return list((await self.aget_state(config)).interrupts) if waiting is None else waiting

    def _check_profile(self, saved: CheckpointTuple | None, config: RunnableConfig) -> None:
        """Refuse to go on with a run under another profile than the one it started under: a
        run started under `enterprise` and resumed under `technical` would skip every approval
        left. Runs from before fingerprints were recorded go on."""
        if saved is None:
            return
        run = saved.checkpoint["channel_values"].get("run") or {}
        started = run.get("profile_fingerprint")
        if started is not None and started != self.governance.fingerprint:
            raise ProfileMismatch(
                thread_id_of(config),
                started=str(run.get("profile")),
                started_fingerprint=started,
                current=self.governance.profile.name,
                current_fingerprint=self.governance.fingerprint,
            )


def _refuse_unfinished(saved: CheckpointTuple | None, config: RunnableConfig) -> None:
    """Raise `RunNotFinished` unless the thread is new or its last run has its `result`: a new
    plan on it would silently abandon a pending approval or the steps left of a stopped run."""
    state = "finished" if saved is None else run_state(saved)
    if state != "finished":
        raise RunNotFinished(thread_id_of(config), waiting=state == "waiting")
