"""plangate: run LLM-made plans of tool calls as a governed, resumable LangGraph graph.

Example:
    >>> from langgraph.types import Command
    >>> from plangate import build_graph, demo_toolkit, open_checkpointer
    >>> graph = build_graph(demo_toolkit("/tmp/outbox.db"), profile="smb",
    ...                     checkpointer=open_checkpointer("sqlite:///:memory:"))
"""

from typing import Any

from plangate.actions import ActionSource, StepPolicy, declare_action
from plangate.adapters import (
    MockFixtures,
    demo_mocks,
    demo_toolkit,
    load_fixtures,
    mock_tools,
    tool_registry,
)
from plangate.adapters.demo import demo_outbox
from plangate.approval import Decision
from plangate.audit import ChainCheck, audit_records, verify_events, verify_trace
from plangate.errors import (
    AdapterError,
    InvalidDecision,
    MissingThreadId,
    NoPendingApproval,
    PlangateError,
    PlangateUsageError,
    PlanValidationError,
    ProfileError,
    ProfileMismatch,
    ResumeConflict,
    RunNotFinished,
    StaleDecision,
    ThreadError,
    ToolNotAvailable,
    UnknownThread,
)
from plangate.graph import build_graph
from plangate.integrations.as_tool import as_tool
from plangate.plan import Plan, PlanStep
from plangate.preflight import PreflightProblem, PreflightReport, PreflightStep, preflight
from plangate.profiles import Budget, Profile, RetryPolicy, ToolPolicy, load_profile
from plangate.project import Project, ProjectError
from plangate.result import ExecutionResult, StepResult
from plangate.runs.anchors import AnchorSink, FileAnchors, OtelAnchors
from plangate.runs.checkpoint import aopen_checkpointer, open_checkpointer
from plangate.runs.expiry import watch_expiry
from plangate.runs.guarded_graph import PlangateGraph
from plangate.runs.history import (
    aget_trace,
    expire_approvals,
    get_trace,
    list_threads,
    pending_approvals,
)
from plangate.runs.prune import PrunedRun, PruneReport, prune_runs
from plangate.state import ApprovalRecord, ApprovalRequest, StepOutcome
from plangate.tracing import EVENT_TYPES, TraceEvent, golden_signals, redact

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # `GovernanceMiddleware` needs `langchain` (the `plangate[langchain]` extra):
    # `plangate.integrations` imports it on first use, so that `import plangate` works without it
    # (and says which extra to install when it is missing).
    if name == "GovernanceMiddleware":
        from plangate.integrations import GovernanceMiddleware

        return GovernanceMiddleware
    raise AttributeError(f"module 'plangate' has no attribute {name!r}")


__all__ = (
    "EVENT_TYPES",
    "ActionSource",
    "AnchorSink",
    "AdapterError",
    "ApprovalRecord",
    "ApprovalRequest",
    "Budget",
    "ChainCheck",
    "Decision",
    "ExecutionResult",
    "FileAnchors",
    "GovernanceMiddleware",
    "InvalidDecision",
    "MissingThreadId",
    "MockFixtures",
    "NoPendingApproval",
    "OtelAnchors",
    "Plan",
    "PlanStep",
    "PlanValidationError",
    "PlangateError",
    "PlangateGraph",
    "PlangateUsageError",
    "PreflightProblem",
    "PreflightReport",
    "PreflightStep",
    "PruneReport",
    "PrunedRun",
    "Project",
    "ProjectError",
    "Profile",
    "ProfileError",
    "ProfileMismatch",
    "ResumeConflict",
    "RunNotFinished",
    "StaleDecision",
    "ThreadError",
    "RetryPolicy",
    "StepOutcome",
    "StepPolicy",
    "StepResult",
    "ToolNotAvailable",
    "ToolPolicy",
    "TraceEvent",
    "UnknownThread",
    "__version__",
    "aget_trace",
    "aopen_checkpointer",
    "as_tool",
    "audit_records",
    "build_graph",
    "declare_action",
    "demo_mocks",
    "demo_outbox",
    "demo_toolkit",
    "expire_approvals",
    "get_trace",
    "golden_signals",
    "list_threads",
    "load_fixtures",
    "load_profile",
    "mock_tools",
    "open_checkpointer",
    "pending_approvals",
    "preflight",
    "prune_runs",
    "redact",
    "tool_registry",
    "verify_events",
    "verify_trace",
    "watch_expiry",
)
