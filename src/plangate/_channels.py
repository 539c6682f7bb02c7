"""How the state's channels store their values: the reducers of its delta channels, and the
stored form of a step's outcome.

Apart from `plangate.state`, which declares the channels with LangGraph's `DeltaChannel` (whose
import loads LangGraph's graph machinery, about half a second): reading a stored run
(`plangate.runs.stored`) rebuilds those channels with the same reducers without that import.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plangate.state import StepOutcome

__all__ = (
    "DELTA_CHANNELS",
    "SNAPSHOT_EVERY",
    "chat_messages",
    "latest_write",
    "merged_writes",
    "outcome_from_state",
    "outcomes_from_state",
    "stored_outcome",
    "wave_writes",
)

SNAPSHOT_EVERY = 100
"""Steps between full snapshots of the plan and the outcomes.

A checkpoint stores only the writes to a `DeltaChannel`; loading one (every resume) replays the
writes back to the last snapshot, walking one ancestor checkpoint per superstep. Snapshotting every
`SNAPSHOT_EVERY` steps bounds that walk; each snapshot costs one full copy of the channel, which
spread over the steps between snapshots stays small next to a step's own checkpoints.
"""


def latest_write(current: Any, writes: Sequence[Any]) -> Any:
    # A `None` write changes nothing; `trace_emit` writes one to make the plan snapshot.
    for write in writes:
        if write is not None:
            current = write
    return current


def merged_writes(current: dict[str, Any], writes: Sequence[dict[str, Any]]) -> dict[str, Any]:
    # A new dict, never the old one updated in place: a snapshot checkpoint may still hold the
    # old one while the saver serialises it. The copy is shallow (one pointer per step, about
    # 10 microseconds at 1,000 steps), next to the milliseconds a step's checkpoints cost.
    merged = dict(current)
    for write in writes:
        merged.update(write)
    return merged


def wave_writes(current: list[Any], writes: Sequence[list[Any] | None]) -> list[Any]:
    # `None` empties the wave: an `Overwrite` would make the channel write a snapshot each time.
    merged = list(current)
    for write in writes:
        merged = [] if write is None else [*merged, *write]
    return merged


def chat_messages(current: list[Any], writes: Sequence[Any]) -> list[Any]:
    # LangGraph's `add_messages`, write by write: a chat client's messages and the outcome's.
    # Imported here: only a run a chat client started has any.
    from langgraph.graph.message import add_messages

    merged: Any = current
    for write in writes:
        if write is not None:
            merged = add_messages(merged, write)
    return list(merged)


def stored_outcome(outcome: StepOutcome) -> str:
    """An outcome as the `outcomes` channel holds it: one JSON text per step, for the same
    reason as the plan's steps (`Plan.to_state`): a resume loads it as a copy of its bytes."""
    return json.dumps(outcome, ensure_ascii=False, separators=(",", ":"))


def outcome_from_state(stored: str | StepOutcome) -> StepOutcome:
    """An outcome `stored_outcome` stored (or, from a run stored before, the mapping)."""
    if isinstance(stored, str):
        found: StepOutcome = json.loads(stored)
        return found
    return stored


def outcomes_from_state(values: Mapping[str, Any]) -> dict[str, StepOutcome]:
    """Step id -> outcome, of the steps that have ended, from a state's values."""
    return {step: outcome_from_state(o) for step, o in (values.get("outcomes") or {}).items()}


DELTA_CHANNELS: dict[str, tuple[Callable[[Any, Sequence[Any]], Any], type]] = {
    "plan": (latest_write, dict),
    "outcomes": (merged_writes, dict),
    "wave": (wave_writes, list),
    "events": (latest_write, list),
    "messages": (chat_messages, list),
}
"""The state's delta channels: name -> (reducer, type of the empty value), as `PlanState`
declares them."""
