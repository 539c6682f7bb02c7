"""The run service: what the faces read and do with the runs of one checkpoint database, without
HTTP or a terminal. Each run is rebuilt in the project and under the setup `plangate run` stored
with it (`RunSetup`), so the inbox, the CLI and any worker drive the same graph. New runs start
in the service's project.

A decision is bound to the requests it answers by one rule, `bind_decision`, whichever face it
came through (`plangate approve`/`reject`, the inbox's decide endpoint): named by interrupt id
(the request a page showed), by step (`--step`), all of them (`--all`), or bare when exactly one
request waits; a bare decision while several wait is refused, naming them. The decision is then
checked as the graph will check it (`parse_decision`), needs an approver, and a rejection a
reason, before anything runs. The faces differ only in where the run goes on: the CLI in the
foreground, printing as it goes; the inbox in a worker thread (`RunService.decide`).

Runs the server resumes, starts, or closes as expired (`watch_expiry`, in a thread of its own
while it serves) go on in a pool of worker threads: the request returns once the run has made its
first move (or refused to: a conflict, a bad decision), and the page follows the rest through the
trace, which every process can read from the checkpointer.

Before a run, `check` and `tools` give what `plangate check` and `plangate tools` give, under
one of the project's profiles by name (never a file a caller names: `profile_named`). `status`
is a run as a face outside the decision path shows it (the MCP face, to the agent that submitted
the plan): what waits, but not the args of a waiting request, which are for the approver.

A run's status: its result's (`success`, `partial`, `failed`) once finished; `waiting` for a
decision; else, between two steps, `running` while some process holds the run's lock, or
`stopped` when none does: its process died mid-way (a crash, Ctrl-C, a kill) and the run goes on
only when something resumes it.
"""

from plangate.runs.service._decisions import BoundDecision, bind_decision
from plangate.runs.service._reading import FINISHED, RunReader
from plangate.runs.service._service import (
    NotStopped,
    RunService,
    ThreadExists,
    require_stopped,
)
from plangate.runs.service._views import (
    STARTED_BY,
    ApprovalView,
    DecisionTaken,
    QueuedRunView,
    RunStarted,
    RunSummary,
    RunView,
    StepRow,
)

__all__ = (
    "FINISHED",
    "STARTED_BY",
    "ApprovalView",
    "DecisionTaken",
    "QueuedRunView",
    "RunStarted",
    "RunSummary",
    "RunView",
    "StepRow",
    "BoundDecision",
    "NotStopped",
    "RunReader",
    "RunService",
    "ThreadExists",
    "bind_decision",
    "require_stopped",
)
