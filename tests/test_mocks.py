"""Mock tools from fixture files: offline runs call them instead of the real tools, a tool that
cannot be reached falls back to its mock under `mock_fallback`, and a bad fixture file is
refused with a one-line error naming the file, the tool and the problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from _support import CallLog, Runner, counting_tools, plan_of, thread
from langchain_core.tools import StructuredTool, ToolException
from langgraph.types import Command

from plangate import AdapterError, Profile, RetryPolicy, load_fixtures, mock_tools
from plangate.adapters.mock import MockHTTPError
from plangate.nodes.tool_exec import is_transient

FIXTURES = {
    "tools": {
        "crm.lookup": [
            {"match": {"text": "acme"}, "output": {"account": "acc-001"}},
            {"match": {"text": "down"}, "raise": {"error": "connection", "message": "crm down"}},
            {"raise": {"message": "no such account"}},
        ],
        "email.send": [{"output": {"status": "sent (mock)"}}],
    }
}


def by_name(tools: list[Any]) -> dict[str, Any]:
    return {tool.name: tool for tool in tools}


def test_the_first_matching_case_answers() -> None:
    lookup = by_name(mock_tools(FIXTURES))["crm.lookup"]
    assert lookup.invoke({"text": "acme"}) == {"account": "acc-001"}
    with pytest.raises(ConnectionError, match="crm down"):
        lookup.invoke({"text": "down"})
    with pytest.raises(ToolException, match="no such account"):
        lookup.invoke({"text": "globex"})


def test_raised_errors_are_transient_as_their_real_counterparts_are() -> None:
    cases = {
        "tool": [{"raise": {"message": "no"}}],
        "timeout": [{"raise": {"error": "timeout", "message": "slow"}}],
        "busy": [{"raise": {"error": "http", "status_code": 429, "message": "busy"}}],
        "gone": [{"raise": {"error": "http", "status_code": 404, "message": "gone"}}],
    }
    errors: dict[str, Exception] = {}
    for name, tool in by_name(mock_tools({"tools": cases})).items():
        with pytest.raises(Exception) as caught:  # noqa: PT011 -- each case raises its own type
            tool.invoke({})
        errors[name] = caught.value
    assert {name: is_transient(error) for name, error in errors.items()} == {
        "tool": False,
        "timeout": True,
        "busy": True,
        "gone": False,
    }
    assert isinstance(errors["busy"], MockHTTPError)
    assert errors["busy"].status_code == 429


def test_a_call_no_case_matches_names_the_tool_and_arguments() -> None:
    only_acme = {"tools": {"crm.lookup": [{"match": {"text": "acme"}, "output": 1}]}}
    lookup = by_name(mock_tools(only_acme))["crm.lookup"]
    with pytest.raises(ToolException, match=r'no fixture of crm.lookup matches .*"text": "x"'):
        lookup.invoke({"text": "x"})


def test_later_files_replace_a_tool_s_cases(tmp_path: Path) -> None:
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text(yaml.safe_dump(FIXTURES))
    second.write_text(yaml.safe_dump({"tools": {"email.send": [{"output": "queued"}]}}))
    fixtures = load_fixtures(first, second)
    assert sorted(fixtures.tools) == ["crm.lookup", "email.send"]
    assert by_name(mock_tools(fixtures))["email.send"].invoke({}) == "queued"


@pytest.mark.parametrize(
    ("text", "message", "tool"),
    [
        ("tools: [\n", "is not valid YAML/JSON at line 2", None),
        ("- 1\n", "expected a mapping with `tools: {tool name: [cases]}`", None),
        (
            "tools:\n  email.send:\n    - outptu: 1\n",
            "tools.email.send.0.outptu: Extra inputs are not permitted",
            "email.send",
        ),
        (
            "tools:\n  email.send:\n    - match: {}\n",
            "tools.email.send.0: give either output or raise",
            "email.send",
        ),
        (
            "tools:\n  crm.lookup:\n    - raise: {error: http, message: x}\n",
            "status_code goes with error: http",
            "crm.lookup",
        ),
        (
            "tools:\n  crm.lookup:\n    - output: 1\n      raise: {message: x}\n",
            "give either output or raise",
            "crm.lookup",
        ),
    ],
)
def test_a_malformed_fixture_file_is_one_line_naming_file_and_tool(
    tmp_path: Path, text: str, message: str, tool: str | None
) -> None:
    path = tmp_path / "fixtures.yaml"
    path.write_text(text)
    with pytest.raises(AdapterError) as caught:
        mock_tools(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)
    assert caught.value.tool == tool


def test_a_missing_fixture_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AdapterError, match=r"fixture file '.*nope.yaml' does not exist"):
        mock_tools(tmp_path / "nope.yaml")


def offline(**fields: Any) -> Profile:
    return Profile(name="offline", offline=True, **fields)


def test_offline_runs_call_mocks_and_never_the_tools(runner: Runner, log: CallLog) -> None:
    graph = runner.graph(
        counting_tools(log, "crm.lookup", "email.send"),
        profile=offline(),
        mocks=mock_tools(FIXTURES),
    )
    plan = plan_of(
        {"id": "look", "tool": "crm.lookup", "args": {"text": "acme"}},
        {"id": "send", "tool": "email.send", "args": {"text": "hi"}, "depends_on": ["look"]},
    )
    out = runner.invoke(graph, {"plan": plan}, thread())
    assert log.calls == []
    steps = out["result"]["steps"]
    assert [(s["status"], s["mocked"], s["output"]) for s in steps] == [
        ("ok", True, {"account": "acc-001"}),
        ("ok", True, {"status": "sent (mock)"}),
    ]
    trace = runner.trace(graph, thread())
    fallbacks = [e for e in trace if e["type"] == "adapter_fallback"]
    assert [(e["step_id"], e["data"]) for e in fallbacks] == [
        ("look", {"reason": "offline"}),
        ("send", {"reason": "offline"}),
    ]
    starts = [e["data"]["mocked"] for e in trace if e["type"] == "tool_call_start"]
    assert starts == [True, True]


def test_offline_a_tool_without_a_mock_is_blocked(runner: Runner, log: CallLog) -> None:
    graph = runner.graph(
        counting_tools(log, "crm.lookup", "crm.delete"),
        profile=offline(),
        mocks=mock_tools(FIXTURES),
    )
    plan = plan_of({"id": "wipe", "tool": "crm.delete", "args": {"text": "acme"}})
    step = runner.invoke(graph, {"plan": plan}, thread())["result"]["steps"][0]
    assert step["status"] == "blocked"
    assert step["failure_context"]["error_type"] == "no_mock"
    assert "running offline, and no mock of 'crm.delete' is registered" in step["error"]
    assert log.calls == []


def test_offline_a_plan_may_call_a_tool_that_only_exists_as_a_mock(runner: Runner) -> None:
    graph = runner.graph([], profile=offline(), mocks=mock_tools(FIXTURES))
    plan = plan_of({"tool": "crm.lookup", "args": {"text": "acme"}})
    step = runner.invoke(graph, {"plan": plan}, thread())["result"]["steps"][0]
    assert (step["status"], step["output"]) == ("ok", {"account": "acc-001"})


def test_offline_mock_errors_follow_the_retry_policy(runner: Runner, log: CallLog) -> None:
    waits: list[float] = []
    profile = offline(retry=RetryPolicy(max_attempts=3, initial_backoff_seconds=1, jitter=False))
    graph = runner.graph(
        counting_tools(log, "crm.lookup"),
        profile=profile,
        mocks=mock_tools(FIXTURES),
        sleep=waits.append,
    )
    plan = plan_of({"tool": "crm.lookup", "args": {"text": "down"}})
    step = runner.invoke(graph, {"plan": plan}, thread())["result"]["steps"][0]
    assert (step["status"], step["attempts"], step["mocked"]) == ("error", 3, True)
    assert step["failure_context"]["error_type"] == "ConnectionError"
    assert waits == [1.0, 2.0]
    assert log.calls == []


def unreachable(log: CallLog, error: Exception) -> StructuredTool:
    def lookup(text: str = "") -> str:
        log.calls.append(("crm.lookup", {"text": text}))
        raise error

    return StructuredTool.from_function(lookup, name="crm.lookup", description="Look up.")


@pytest.mark.parametrize(
    "error", [ConnectionError("connection refused"), TimeoutError("read timed out")]
)
def test_mock_fallback_when_the_tool_cannot_be_reached(
    runner: Runner, log: CallLog, error: Exception
) -> None:
    """The real tool is tried as its retry policy allows; then the mock answers, the outcome is
    marked mocked, and `adapter_fallback` carries the error that caused it."""
    profile = Profile(
        name="fallback", mock_fallback=True, retry=RetryPolicy(max_attempts=2, jitter=False)
    )
    graph = runner.graph(
        [unreachable(log, error)], profile=profile, mocks=mock_tools(FIXTURES), sleep=[].append
    )
    plan = plan_of({"id": "look", "tool": "crm.lookup", "args": {"text": "acme"}})
    step = runner.invoke(graph, {"plan": plan}, thread())["result"]["steps"][0]
    assert log.count("crm.lookup") == 2
    assert (step["status"], step["mocked"], step["output"]) == ("ok", True, {"account": "acc-001"})
    assert step["attempts"] == 3
    trace = runner.trace(graph, thread())
    types = [e["type"] for e in trace if e["step_id"] == "look"]
    assert types == [
        "tool_call_start",
        "tool_call_retry",
        "adapter_fallback",
        "tool_call_complete",
        "step_completed",
    ]
    fallback = next(e for e in trace if e["type"] == "adapter_fallback")
    assert fallback["data"] == {
        "reason": "unreachable",
        "error_type": type(error).__name__,
        "message": str(error),
    }


def test_no_fallback_for_errors_that_are_not_about_reaching_the_tool(
    runner: Runner, log: CallLog
) -> None:
    profile = Profile(name="fallback", mock_fallback=True)
    graph = runner.graph(
        [unreachable(log, ToolException("invalid account"))],
        profile=profile,
        mocks=mock_tools(FIXTURES),
    )
    plan = plan_of({"tool": "crm.lookup", "args": {"text": "acme"}})
    step = runner.invoke(graph, {"plan": plan}, thread())["result"]["steps"][0]
    assert (step["status"], step["mocked"], step["error"]) == ("error", False, "invalid account")
    assert "adapter_fallback" not in [e["type"] for e in runner.trace(graph, thread())]


def test_without_mock_fallback_an_unreachable_tool_is_an_error(
    runner: Runner, log: CallLog
) -> None:
    graph = runner.graph(
        [unreachable(log, ConnectionError("refused"))],
        profile="technical",
        mocks=mock_tools(FIXTURES),
    )
    plan = plan_of({"tool": "crm.lookup", "args": {"text": "acme"}})
    step = runner.invoke(graph, {"plan": plan}, thread())["result"]["steps"][0]
    assert (step["status"], step["mocked"]) == ("error", False)
    assert step["failure_context"]["error_type"] == "ConnectionError"


def test_offline_approval_resumes_on_the_mock(runner: Runner, log: CallLog) -> None:
    """A paused offline run resumed on a new graph (another process would build one) still
    calls the mock: offline is part of the profile, not of the process."""

    def graph() -> Any:
        return runner.graph(
            counting_tools(log, "email.send"),
            profile=offline(require_approval=["execute"]),
            mocks=mock_tools(FIXTURES),
        )

    plan = plan_of({"id": "send", "tool": "email.send", "action": "execute", "args": {}})
    paused = runner.invoke(graph(), {"plan": plan}, thread())
    assert paused["__interrupt__"]
    out = runner.invoke(graph(), Command(resume={"decision": "approve"}), thread())
    step = out["result"]["steps"][0]
    assert (step["status"], step["mocked"]) == ("ok", True)
    assert log.calls == []
