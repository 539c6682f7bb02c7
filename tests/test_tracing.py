"""Golden signals, the budget helpers, and approval decisions (pure functions)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from langchain_core.tools import BaseTool, StructuredTool

from plangate import Budget, Decision, InvalidDecision, PlanStep, load_profile
from plangate.actions import StepPolicy, ToolDeclaration, step_policy
from plangate.approval import consequence_of, parse_decision, response_schema
from plangate.budget import charge, crossed_warnings, empty_usage, exceeded_tier, usage_report
from plangate.plan import Action
from plangate.state import BudgetUsage
from plangate.tracing import golden_signals

# --- golden_signals ------------------------------------------------------------------------------


def test_golden_signals_with_known_inputs() -> None:
    """Rates, nearest-rank percentiles and wait stats come out as computed by hand."""
    signals = golden_signals(
        ["ok", "error", "ok", "skipped", "blocked"], [40.0, 10.0, 30.0, 20.0], [100.0, 300.0], 0.5
    )
    assert signals["steps"] == 5
    assert signals["success_rate"] == 0.4
    assert signals["error_rate"] == 0.25
    assert signals["tool_latency_ms"] == {"p50": 20.0, "p95": 40.0, "max": 40.0}
    assert signals["approval_wait_ms"] == {"count": 2, "mean": 200.0, "max": 300.0}
    assert signals["budget_utilisation"] == 0.5


def test_golden_signal_percentiles_over_one_to_a_hundred() -> None:
    """Over latencies 1..100 (given shuffled), p50 is 50, p95 is 95 and max 100."""
    latencies = [float((n * 37) % 100 + 1) for n in range(100)]
    assert sorted(latencies) == [float(n) for n in range(1, 101)]
    signals = golden_signals(["ok"], latencies, [], 0.0)
    assert signals["tool_latency_ms"] == {"p50": 50.0, "p95": 95.0, "max": 100.0}


def test_golden_signals_single_call() -> None:
    """With one tool call every latency statistic is that call's latency."""
    signals = golden_signals(["ok"], [12.3456], [], 0.0)
    assert signals["tool_latency_ms"] == {"p50": 12.346, "p95": 12.346, "max": 12.346}
    assert signals["success_rate"] == 1.0
    assert signals["error_rate"] == 0.0


def test_error_rate_counts_tool_calls_not_steps() -> None:
    """Skipped and blocked steps made no call, so they do not dilute the error rate."""
    signals = golden_signals(["error", "skipped", "skipped", "blocked"], [5.0], [], 0.0)
    assert signals["error_rate"] == 1.0
    assert signals["success_rate"] == 0.0


def test_golden_signals_round_rates_and_utilisation() -> None:
    """Rates and utilisation are rounded to four places."""
    signals = golden_signals(["ok", "error", "error"], [1.0, 2.0, 3.0], [], 2 / 3)
    assert signals["success_rate"] == 0.3333
    assert signals["error_rate"] == 0.6667
    assert signals["budget_utilisation"] == 0.6667


def test_golden_signals_on_empty_inputs() -> None:
    """With no steps, calls or waits: zero rates, `None` statistics, a zero wait count."""
    signals = golden_signals([], [], [], 0.0)
    assert signals["steps"] == 0
    assert signals["success_rate"] == 0.0
    assert signals["error_rate"] == 0.0
    assert signals["tool_latency_ms"] == {"p50": None, "p95": None, "max": None}
    assert signals["approval_wait_ms"] == {"count": 0, "mean": None, "max": None}
    assert signals["budget_utilisation"] == 0.0


def test_golden_signals_accept_generators() -> None:
    """Any iterables work, including one-shot generators."""
    signals = golden_signals(
        (s for s in ["ok", "ok"]), (x for x in [3.0, 1.0]), (w for w in [10.0]), 0.1
    )
    assert signals["success_rate"] == 1.0
    assert signals["tool_latency_ms"]["max"] == 3.0
    assert signals["approval_wait_ms"] == {"count": 1, "mean": 10.0, "max": 10.0}


# --- budget helpers ------------------------------------------------------------------------------


LOOKUP = PlanStep(id="lookup", tool="crm.lookup")
UPDATE = PlanStep(id="update", tool="crm.update", action="execute")
SEND = PlanStep(id="send", tool="email.send", action="execute")


def usage_after(*steps: PlanStep) -> BudgetUsage:
    usage = empty_usage()
    for step in steps:
        usage = charge(usage, step)
    return usage


def test_charge_counts_all_three_tiers() -> None:
    """One call counts once in total, in its domain and for its tool."""
    usage = usage_after(LOOKUP, LOOKUP, UPDATE, SEND)
    assert usage == {
        "total": 4,
        "domains": {"crm": 3, "email": 1},
        "tools": {"crm.lookup": 2, "crm.update": 1, "email.send": 1},
    }


def test_charge_does_not_mutate_its_input() -> None:
    """`charge` returns new usage; the usage passed in, and its inner dicts, stay as they were."""
    usage = usage_after(LOOKUP)
    before = copy.deepcopy(usage)
    after = charge(usage, LOOKUP)
    assert usage == before
    assert after["total"] == 2
    assert after["domains"] is not usage["domains"]
    assert after["tools"] is not usage["tools"]


def test_charge_uses_the_step_domain_not_the_tool_prefix() -> None:
    """A step with an explicit domain is charged to that domain."""
    step = PlanStep(id="s", tool="crm.refund", domain="payments")
    assert charge(empty_usage(), step)["domains"] == {"payments": 1}


def test_exceeded_tier_is_none_within_limits() -> None:
    """A call that fits every tier exceeds nothing, also with unlimited tiers."""
    assert (
        exceeded_tier(usage_after(LOOKUP), LOOKUP, Budget(total_calls=2, calls_per_tool=2)) is None
    )
    assert exceeded_tier(usage_after(LOOKUP, LOOKUP), LOOKUP, Budget()) is None


def test_exceeded_tier_reports_the_first_tier() -> None:
    """With every tier full, the total tier is reported first, with its use and limit."""
    budget = Budget(total_calls=2, calls_per_domain=2, calls_per_tool=2)
    usage = usage_after(LOOKUP, LOOKUP)
    assert exceeded_tier(usage, LOOKUP, budget) == {"tier": "total", "used": 2, "limit": 2}


def test_exceeded_tier_reports_domain_before_tool() -> None:
    """With total room left, a full domain is reported before a full tool."""
    budget = Budget(total_calls=10, calls_per_domain=2, calls_per_tool=2)
    usage = usage_after(LOOKUP, LOOKUP)
    assert exceeded_tier(usage, LOOKUP, budget) == {"tier": "domain:crm", "used": 2, "limit": 2}


def test_exceeded_tier_reports_the_tool_tier() -> None:
    """Another tool in the same domain still fits when only the first tool's tier is full."""
    budget = Budget(calls_per_domain=5, calls_per_tool=1)
    usage = usage_after(LOOKUP)
    assert exceeded_tier(usage, LOOKUP, budget) == {
        "tier": "tool:crm.lookup",
        "used": 1,
        "limit": 1,
    }
    assert exceeded_tier(usage, UPDATE, budget) is None


def test_zero_limit_blocks_the_first_call() -> None:
    """A tier with limit 0 is exceeded by the very first call."""
    assert exceeded_tier(empty_usage(), SEND, Budget(calls_per_tool=0)) == {
        "tier": "tool:email.send",
        "used": 0,
        "limit": 0,
    }


def test_crossed_warnings_once_per_tier() -> None:
    """Charging call after call, each tier warns exactly once, when it reaches the threshold."""
    budget = Budget(total_calls=10, calls_per_domain=4, calls_per_tool=2, warning_threshold=0.5)
    usage, warned = empty_usage(), []
    emitted: list[tuple[int, str]] = []
    for n in range(1, 6):
        usage = charge(usage, LOOKUP)
        for warning in crossed_warnings(usage, LOOKUP, budget, warned):
            emitted.append((n, warning["tier"]))
            warned.append(warning["tier"])
    assert emitted == [(1, "tool:crm.lookup"), (2, "domain:crm"), (5, "total")]


def test_crossed_warnings_carry_use_limit_and_threshold() -> None:
    """A warning names its tier, how much is used, the limit and the threshold."""
    budget = Budget(calls_per_tool=5, warning_threshold=0.8)
    usage = usage_after(SEND, SEND, SEND, SEND)
    assert crossed_warnings(usage, SEND, budget, []) == [
        {"tier": "tool:email.send", "used": 4, "limit": 5, "threshold": 0.8}
    ]
    assert crossed_warnings(usage_after(SEND, SEND, SEND), SEND, budget, []) == []


def test_crossed_warnings_skip_unlimited_tiers() -> None:
    """Unlimited tiers never warn."""
    assert crossed_warnings(usage_after(*[LOOKUP] * 50), LOOKUP, Budget(), []) == []


def test_usage_report_lists_tiers_and_utilisation() -> None:
    """The report holds used/limit per tier and the fullest tier's share as utilisation."""
    budget = Budget(total_calls=10, calls_per_domain=4, calls_per_tool=5)
    report = usage_report(usage_after(LOOKUP, LOOKUP, UPDATE, SEND), budget)
    assert report["total"] == {"used": 4, "limit": 10}
    assert report["domains"] == {"crm": {"used": 3, "limit": 4}, "email": {"used": 1, "limit": 4}}
    assert report["tools"]["crm.lookup"] == {"used": 2, "limit": 5}
    assert report["utilisation"] == 0.75


def test_usage_report_without_limits_or_use() -> None:
    """No limits and no calls: utilisation is 0 and limits are `None`."""
    report = usage_report(usage_after(LOOKUP), Budget())
    assert report["total"] == {"used": 1, "limit": None}
    assert report["utilisation"] == 0.0
    assert usage_report(empty_usage(), Budget(total_calls=3))["utilisation"] == 0.0


# --- decisions -----------------------------------------------------------------------------------


def send_email(to: str, subject: str, body: str = "") -> str:
    """Send an email."""
    return f"sent to {to}"


@pytest.fixture
def email_tool() -> BaseTool:
    return StructuredTool.from_function(send_email, name="email.send")


@pytest.mark.parametrize(
    "value",
    [
        {"decision": "approve", "approver": "lee", "reason": "looks right"},
        {"decision": "reject", "reason": "wrong person"},
        {"decision": "respond", "message": "Ana already renewed"},
        {"decision": "edit", "args": {"to": "bo@acme.example", "subject": "Hi"}},
    ],
)
def test_valid_decisions_parse(value: dict[str, Any], email_tool: BaseTool) -> None:
    """Each decision kind with the fields it needs parses into an equal `Decision`."""
    decision = parse_decision(value, tool=email_tool)
    assert decision == Decision(**value)


def test_decision_instance_passes_through() -> None:
    """A `Decision` given as is comes back as the same object."""
    decision = Decision(decision="approve", approver="lee")
    assert parse_decision(decision) is decision


def invalid(value: Any, tool: BaseTool | None = None) -> InvalidDecision:
    """The `InvalidDecision` that `parse_decision(value, tool=tool)` raises."""
    with pytest.raises(InvalidDecision) as info:
        parse_decision(value, tool=tool)
    return info.value


def test_unknown_decision_names_the_decision_field() -> None:
    """`decision: maybe` fails with `.field == "decision"` and lists the allowed values."""
    error = invalid({"decision": "maybe"})
    assert error.field == "decision"
    assert "'approve'" in error.message
    assert "'respond'" in error.message


def test_missing_decision_names_the_decision_field() -> None:
    """A mapping without `decision` fails naming `decision`."""
    assert invalid({"approver": "lee"}).field == "decision"


@pytest.mark.parametrize("value", ["approve", None, ["approve"], 1])
def test_non_mapping_is_invalid(value: Any) -> None:
    """Anything but a mapping or a `Decision` fails naming `decision` and the type given."""
    error = invalid(value)
    assert error.field == "decision"
    assert type(value).__name__ in error.message


def test_unknown_decision_key_is_named() -> None:
    """An extra key fails with that key as `.field`."""
    assert invalid({"decision": "approve", "aprover": "lee"}).field == "aprover"


def test_wrong_type_is_named() -> None:
    """A non-string reason fails naming `reason`."""
    assert invalid({"decision": "reject", "reason": ["x"]}).field == "reason"


def test_edit_without_args_names_args() -> None:
    """An edit with no args fails, and the error points at `args`."""
    error = invalid({"decision": "edit", "approver": "lee"})
    assert "args" in error.message
    assert error.field == "args"


def test_args_on_approve_names_args() -> None:
    """Args are only for edits: an approve with args fails pointing at `args`."""
    error = invalid({"decision": "approve", "args": {"to": "x"}})
    assert "'approve'" in error.message
    assert error.field == "args"


@pytest.mark.parametrize(
    "value",
    [{"decision": "respond"}, {"decision": "respond", "message": ""}],
    ids=["none", "empty"],
)
def test_respond_without_message_names_message(value: dict[str, Any]) -> None:
    """A respond with no (or an empty) message fails pointing at `message`."""
    error = invalid(value)
    assert "message" in error.message
    assert error.field == "message"


def test_edit_args_missing_a_required_tool_arg(email_tool: BaseTool) -> None:
    """Edited args lacking a required tool argument fail naming `args.<arg>` and the tool."""
    error = invalid({"decision": "edit", "args": {"subject": "Hi"}}, email_tool)
    assert error.field == "args.to"
    assert "'email.send'" in error.message


def test_edit_args_of_the_wrong_type(email_tool: BaseTool) -> None:
    """Edited args of the wrong type fail naming that argument."""
    error = invalid({"decision": "edit", "args": {"to": "a@b.co", "subject": 7}}, email_tool)
    assert error.field == "args.subject"


def test_edit_args_are_checked_on_a_decision_instance_too(email_tool: BaseTool) -> None:
    """A `Decision` object with bad edited args is checked against the tool like a dict is."""
    error = invalid(Decision(decision="edit", args={}), email_tool)
    assert error.field == "args.to"


def test_edit_args_are_not_checked_without_a_tool() -> None:
    """With no tool to check against, any args mapping is accepted for an edit."""
    assert parse_decision({"decision": "edit", "args": {"anything": 1}}).args == {"anything": 1}


def test_response_schema_puts_tool_args_under_args(email_tool: BaseTool) -> None:
    """With a tool, `properties.args` offers the tool's argument schema (or null)."""
    schema = response_schema(email_tool)
    options = schema["properties"]["args"]["anyOf"]
    tool_schema = next(option for option in options if option.get("type") == "object")
    assert set(tool_schema["properties"]) == {"to", "subject", "body"}
    assert tool_schema["properties"]["to"]["type"] == "string"
    assert sorted(tool_schema["required"]) == ["subject", "to"]
    assert {"type": "null"} in options


def test_response_schema_describes_a_decision(email_tool: BaseTool) -> None:
    """The schema lists the four decisions and requires `decision`, with or without a tool."""
    for tool in (email_tool, None):
        schema = response_schema(tool)
        assert schema["required"] == ["decision"]
        assert schema["properties"]["decision"]["enum"] == ["approve", "edit", "reject", "respond"]
        assert {"message", "reason", "approver", "args"} <= set(schema["properties"])


def test_response_schema_without_tool_accepts_any_args() -> None:
    """Without a tool, `args` is a free-form object (or null)."""
    options = response_schema(None)["properties"]["args"]["anyOf"]
    assert {"type": "null"} in options
    assert any(option.get("type") == "object" and "properties" not in option for option in options)


# --- consequence_of ------------------------------------------------------------------------------


def policy_of(step: PlanStep, action: Action, *, irreversible: bool = False) -> StepPolicy:
    """The policy of `step` when its tool declares `action` (under `smb`)."""
    trusted = ToolDeclaration(action=action, irreversible=irreversible, source="tool")
    return step_policy(step, trusted, load_profile("smb"))


def test_consequence_of_irreversible_execute() -> None:
    """An irreversible execute says it cannot be undone, names the target and the risk."""
    step = PlanStep(id="send", tool="email.send", args={"to": "ana@acme.example"})
    text = consequence_of(step, policy_of(step, "execute", irreversible=True), step.args)
    assert "cannot be undone" in text
    assert "email.send" in text
    assert "to ana@acme.example" in text
    assert "(high risk)" in text


def test_consequence_of_reversible_execute() -> None:
    """A reversible execute says undoing it needs a follow-up, not that it cannot be undone."""
    step = PlanStep(id="u", tool="crm.update_opportunity")
    text = consequence_of(step, policy_of(step, "execute"), step.args)
    assert "cannot be undone" not in text
    assert "follow-up" in text


def test_consequence_of_read() -> None:
    """A read says it only reads and changes nothing."""
    step = PlanStep(id="l", tool="crm.lookup_account", args={"account": "acme"})
    text = consequence_of(step, policy_of(step, "read"), step.args)
    assert "only reads" in text
    assert "cannot be undone" not in text
    assert "account acme" in text


def test_consequence_of_propose_uses_the_description() -> None:
    """A propose step is described in the step's own words and says nothing is sent yet."""
    step = PlanStep(id="d", tool="email.draft", description="Draft the renewal mail.")
    text = consequence_of(step, policy_of(step, "propose"), step.args)
    assert text.startswith("If approved, plangate will draft the renewal mail (low risk).")
    assert "nothing is sent" in text
