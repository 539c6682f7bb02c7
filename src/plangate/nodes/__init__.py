"""One module per graph node; `plangate.graph` wires them."""

from plangate.nodes.approval_interrupt import approval_interrupt
from plangate.nodes.budget_check import budget_check
from plangate.nodes.finalize import finalize
from plangate.nodes.plan_review import plan_review
from plangate.nodes.plan_start import plan_start
from plangate.nodes.tool_exec import atool_exec, tool_exec
from plangate.nodes.trace_emit import trace_emit

__all__ = (
    "approval_interrupt",
    "atool_exec",
    "budget_check",
    "finalize",
    "plan_review",
    "plan_start",
    "tool_exec",
    "trace_emit",
)
