"""plangate: run LLM-made plans of tool calls as a governed, resumable LangGraph graph.

Examples:
    >>> from langgraph.types import Command
    >>> from plangate import build_graph, demo_toolkit, open_checkpointer
    >>> graph = build_graph(demo_toolkit("/tmp/outbox.db"), profile="smb",
    ...                     checkpointer=open_checkpointer("sqlite:///:memory:"))
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plangate._lazy import lazy_exports

if TYPE_CHECKING:
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
    from plangate.identity import DecisionSigner, Identity
    from plangate.integrations import GovernanceMiddleware
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
        pending_approvals,
    )
    from plangate.runs.prune import PrunedRun, PruneReport, prune_runs
    from plangate.runs.stored import list_threads
    from plangate.state import ApprovalRecord, ApprovalRequest, StepOutcome
    from plangate.tracing import EVENT_TYPES, TraceEvent, golden_signals, redact

__version__ = "0.1.0"

# Where each public name lives. `import plangate` loads none of them: a name's module is imported
# on first use, so that a program pays only for the parts it uses (all of them together, with
# LangGraph's graph, LangChain's tracers and the adapters, took about a second to import).
# `GovernanceMiddleware` also needs `langchain` (the `plangate[langchain]` extra), and its module
# says which extra to install.
_EXPORTS: dict[str, str] = {
    "ActionSource": "plangate.actions",
    "AdapterError": "plangate.errors",
    "AnchorSink": "plangate.runs.anchors",
    "ApprovalRecord": "plangate.state",
    "ApprovalRequest": "plangate.state",
    "Budget": "plangate.profiles",
    "ChainCheck": "plangate.audit",
    "Decision": "plangate.approval",
    "EVENT_TYPES": "plangate.tracing",
    "ExecutionResult": "plangate.result",
    "FileAnchors": "plangate.runs.anchors",
    "GovernanceMiddleware": "plangate.integrations",
    "InvalidDecision": "plangate.errors",
    "MissingThreadId": "plangate.errors",
    "MockFixtures": "plangate.adapters",
    "NoPendingApproval": "plangate.errors",
    "OtelAnchors": "plangate.runs.anchors",
    "Plan": "plangate.plan",
    "PlanStep": "plangate.plan",
    "PlanValidationError": "plangate.errors",
    "PlangateError": "plangate.errors",
    "PlangateGraph": "plangate.runs.guarded_graph",
    "PlangateUsageError": "plangate.errors",
    "DecisionSigner": "plangate.identity",
    "Identity": "plangate.identity",
    "PreflightProblem": "plangate.preflight",
    "PreflightReport": "plangate.preflight",
    "PreflightStep": "plangate.preflight",
    "Profile": "plangate.profiles",
    "ProfileError": "plangate.errors",
    "ProfileMismatch": "plangate.errors",
    "Project": "plangate.project",
    "ProjectError": "plangate.project",
    "PruneReport": "plangate.runs.prune",
    "PrunedRun": "plangate.runs.prune",
    "ResumeConflict": "plangate.errors",
    "RetryPolicy": "plangate.profiles",
    "RunNotFinished": "plangate.errors",
    "StaleDecision": "plangate.errors",
    "StepOutcome": "plangate.state",
    "StepPolicy": "plangate.actions",
    "StepResult": "plangate.result",
    "ThreadError": "plangate.errors",
    "ToolNotAvailable": "plangate.errors",
    "ToolPolicy": "plangate.profiles",
    "TraceEvent": "plangate.tracing",
    "UnknownThread": "plangate.errors",
    "aget_trace": "plangate.runs.history",
    "aopen_checkpointer": "plangate.runs.checkpoint",
    "as_tool": "plangate.integrations.as_tool",
    "audit_records": "plangate.audit",
    "build_graph": "plangate.graph",
    "declare_action": "plangate.actions",
    "demo_mocks": "plangate.adapters",
    "demo_outbox": "plangate.adapters.demo",
    "demo_toolkit": "plangate.adapters",
    "expire_approvals": "plangate.runs.history",
    "get_trace": "plangate.runs.history",
    "golden_signals": "plangate.tracing",
    "list_threads": "plangate.runs.stored",
    "load_fixtures": "plangate.adapters",
    "load_profile": "plangate.profiles",
    "mock_tools": "plangate.adapters",
    "open_checkpointer": "plangate.runs.checkpoint",
    "pending_approvals": "plangate.runs.history",
    "preflight": "plangate.preflight",
    "prune_runs": "plangate.runs.prune",
    "redact": "plangate.tracing",
    "tool_registry": "plangate.adapters",
    "verify_events": "plangate.audit",
    "verify_trace": "plangate.audit",
    "watch_expiry": "plangate.runs.expiry",
}


lazy_exports(__name__, _EXPORTS)

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
    "DecisionSigner",
    "ExecutionResult",
    "FileAnchors",
    "GovernanceMiddleware",
    "Identity",
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
