"""Transient tool failures are retried with backoff (waits injected, never slept), other errors
fail at once, and a call that outlives its timeout ends the step with `error_type: "timeout"`."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from _support import Runner, plan_of, thread
from langchain_core.tools import StructuredTool

from plangate import Profile, RetryPolicy, ToolPolicy, load_profile


class HTTPError(Exception):
    """An error shaped like an HTTP client's: it carries the response status."""

    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


def flaky(failures: list[Exception]) -> tuple[StructuredTool, list[int]]:
    """A tool that raises the given errors in turn, then answers; and its call count."""
    calls: list[int] = []

    def fetch(text: str = "") -> str:
        calls.append(1)
        if len(calls) <= len(failures):
            raise failures[len(calls) - 1]
        return f"fetched {text}"

    return StructuredTool.from_function(fetch, name="crm.fetch", description="Fetch."), calls


def retrying_profile(tmp_path: Path, **retry: Any) -> str:
    path = tmp_path / "retrying.yaml"
    policy = {"max_attempts": 3, "initial_backoff_seconds": 1.0, "backoff_multiplier": 2.0}
    path.write_text(yaml.safe_dump({"name": "retrying", "retry": {**policy, **retry}}))
    return str(path)


def run_one(runner: Runner, tool: StructuredTool, profile: str, waits: list[float]) -> Any:
    graph = runner.graph([tool], profile=profile, sleep=waits.append)
    out = runner.invoke(graph, {"plan": plan_of({"id": "get", "tool": "crm.fetch"})}, thread())
    return out["result"]["steps"][0], runner.trace(graph, thread())


def test_transient_errors_are_retried_with_backoff_and_jitter(
    runner: Runner, tmp_path: Path
) -> None:
    """A connection error then an HTTP 503 are retried; the step is ok after 3 attempts; each
    retry emits `tool_call_retry` with the attempt and a jittered wait in [base/2, base]."""
    tool, calls = flaky([ConnectionError("reset by peer"), HTTPError(503)])
    waits: list[float] = []
    step, trace = run_one(runner, tool, retrying_profile(tmp_path), waits)
    assert step["status"] == "ok"
    assert step["attempts"] == 3
    assert len(calls) == 3
    retries = [e for e in trace if e["type"] == "tool_call_retry"]
    assert [e["data"]["attempt"] for e in retries] == [2, 3]
    assert [e["data"]["error_type"] for e in retries] == ["ConnectionError", "HTTPError"]
    assert [e["data"]["wait_seconds"] for e in retries] == waits
    assert 0.5 <= waits[0] <= 1.0
    assert 1.0 <= waits[1] <= 2.0


def test_permanent_errors_fail_at_once(runner: Runner, tmp_path: Path) -> None:
    """A ValueError and an HTTP 404 are not transient: one attempt, no retry, no wait."""
    for error in (ValueError("bad input"), HTTPError(404)):
        tool, calls = flaky([error])
        waits: list[float] = []
        step, trace = run_one(runner, tool, retrying_profile(tmp_path), waits)
        assert (step["status"], step["attempts"], len(calls), waits) == ("error", 1, 1, [])
        assert not [e for e in trace if e["type"] == "tool_call_retry"]


def test_retries_stop_at_max_attempts(runner: Runner, tmp_path: Path) -> None:
    """A tool that keeps timing out is tried `max_attempts` times, then the step is `error`."""
    tool, calls = flaky([TimeoutError("slow")] * 5)
    waits: list[float] = []
    profile = retrying_profile(tmp_path, max_attempts=2, jitter=False)
    step, _ = run_one(runner, tool, profile, waits)
    assert (step["status"], step["attempts"], len(calls)) == ("error", 2, 2)
    assert waits == [1.0]


def test_slow_tool_times_out_with_error_type_timeout(runner: Runner, tmp_path: Path) -> None:
    """A sync tool and an async tool that outlive a per-tool timeout end as `error` with
    `error_type: "timeout"`; a tool outside the pattern keeps the profile default (none)."""
    release = threading.Event()

    def wait_sync(text: str = "") -> str:
        release.wait(10)
        return "late"

    async def wait_async(text: str = "") -> str:
        await asyncio.sleep(1)  # the sync run cannot cancel it: keep it short
        return "late"

    tools = [
        StructuredTool.from_function(wait_sync, name="slow.sync", description="Slow."),
        StructuredTool.from_function(coroutine=wait_async, name="slow.async", description="Slow."),
        StructuredTool.from_function(
            lambda text="": "quick", name="fast.echo", description="Fast."
        ),
    ]
    path = tmp_path / "timeouts.yaml"
    path.write_text(yaml.safe_dump({"tool_policies": {"slow.*": {"timeout_seconds": 0.05}}}))
    graph = runner.graph(tools, profile=str(path))
    plan = plan_of(
        {"id": "a", "tool": "slow.sync"},
        {"id": "b", "tool": "slow.async"},
        {"id": "c", "tool": "fast.echo"},
    )
    try:
        result = runner.invoke(graph, {"plan": plan}, thread())["result"]
    finally:
        release.set()
    by_id = {s["step_id"]: s for s in result["steps"]}
    for step_id in ("a", "b"):
        assert by_id[step_id]["status"] == "error"
        assert by_id[step_id]["failure_context"]["error_type"] == "timeout"
        assert "took longer than 0.05 s" in by_id[step_id]["error"]
    assert by_id["c"]["output"] == "quick"


def test_call_policy_picks_the_first_matching_pattern_then_the_profile_default() -> None:
    """`tool_policies` overrides timeout and retry per glob; unmatched tools use the defaults;
    the whole profile round-trips through a file."""
    profile = Profile(
        timeout_seconds=30,
        retry=RetryPolicy(max_attempts=2),
        tool_policies={
            "billing.*": ToolPolicy(timeout_seconds=5, retry=RetryPolicy(max_attempts=4))
        },
    )
    assert profile.call_policy("billing.refund") == (5, RetryPolicy(max_attempts=4))
    assert profile.call_policy("crm.lookup") == (30, RetryPolicy(max_attempts=2))
    assert RetryPolicy(jitter=False, max_backoff_seconds=3).backoff(5, 0.0) == 3


def test_retry_settings_round_trip_through_a_profile_file(tmp_path: Path) -> None:
    """`Profile.model_dump(mode="json")` with retry and tool policies loads back equal."""
    profile = Profile(
        name="r", retry=RetryPolicy(max_attempts=3), tool_policies={"x.*": ToolPolicy(retry=None)}
    )
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(profile.model_dump(mode="json")))
    assert load_profile(path) == profile


@pytest.mark.parametrize("bad", [{"retry": {"max_attempts": 0}}, {"timeout_seconds": -1}])
def test_bad_retry_settings_name_the_field(tmp_path: Path, bad: dict[str, Any]) -> None:
    """An impossible retry or timeout setting fails at load, naming the field."""
    from plangate import ProfileError

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    assert info.value.field in ("retry.max_attempts", "timeout_seconds")
