"""Runs that must be able to finish: profile durations are bounded when the profile loads, an
expired approval halts a plan whose profile halts on reject, and `plangate expire` closes every
expired run it can even when one of them cannot go on."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from _support import CallLog, Clock, Runner, counting_tools, plan_of, plangate, thread
from langgraph.types import Command

from plangate import ProfileError, load_profile

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "demo"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("approval_timeout_seconds", float("inf")),
        ("approval_timeout_seconds", 1e300),
        ("approval_timeout_seconds", float("nan")),
        ("timeout_seconds", float("inf")),
        ("retry.max_backoff_seconds", float("inf")),
        ("retry.initial_backoff_seconds", 1e300),
        ("tool_policies.email.*.timeout_seconds", float("inf")),
    ],
)
def test_a_duration_no_run_could_live_with_is_refused_at_load_in_one_line(
    tmp_path: Path, field: str, value: float
) -> None:
    """`.inf` made every resume raise OverflowError (the run could never finish), and an
    infinite tool timeout recorded a sent email as an error: both are profile mistakes."""
    data: dict = {}
    if field.startswith("tool_policies."):
        data = {"tool_policies": {"email.*": {"timeout_seconds": value}}}
    elif field.startswith("retry."):
        data = {"retry": {field.split(".", 1)[1]: value}}
    else:
        data = {field: value}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))

    with pytest.raises(ProfileError) as refused:
        load_profile(path)

    assert "\n" not in refused.value.message
    assert refused.value.field is not None
    assert refused.value.field.split(".")[0] == field.split(".", maxsplit=1)[0]


def test_a_year_long_approval_window_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("approval_timeout_seconds: 31536000\ntimeout_seconds: 3600\n")
    assert load_profile(path).approval_timeout_seconds == 31536000


def test_an_expired_approval_halts_a_plan_that_halts_on_reject(
    runner: Runner, log: CallLog, clock: Clock
) -> None:
    """The next, independent step does not run after an approval expired under
    `on_reject: halt`: an approval nobody gave in time is no approval."""
    profile = load_profile("smb").model_copy(update={"on_reject": "halt"})
    tools = counting_tools(log, "email.send", "crm.lookup")
    graph = runner.graph(tools, profile=profile, clock=clock)
    plan = plan_of(
        {"id": "send", "tool": "email.send", "action": "execute", "args": {"text": "hi"}},
        {"id": "after", "tool": "crm.lookup", "args": {"text": "acme"}},
    )
    runner.invoke(graph, {"plan": plan}, thread())

    clock.advance(hours=25)
    out = runner.invoke(graph, Command(resume={"decision": "approve"}), thread())

    assert log.calls == []
    statuses = {s["step_id"]: s["status"] for s in out["result"]["steps"]}
    assert statuses == {"send": "expired", "after": "skipped"}
    assert "was not approved in time" in out["result"]["halted"]


def test_expire_reports_a_run_it_cannot_go_on_with_and_closes_the_others(
    tmp_path: Path,
) -> None:
    """One run's profile file is gone: `plangate expire` says so for that run and still
    closes the other expired run; the broken one stays paused."""
    short = {"require_approval": ["execute"], "approval_timeout_seconds": 0.001}
    kept, gone = tmp_path / "kept.yaml", tmp_path / "gone.yaml"
    for path in (kept, gone):
        path.write_text(yaml.safe_dump(short))
    plan = str(EXAMPLES / "sales_followup.yaml")
    for name, path in (("a-gone", gone), ("b-kept", kept)):
        started = plangate(tmp_path, "run", plan, "--profile", str(path), "--thread", name)
        assert "Paused" in started.stdout, started.stderr
    gone.unlink()

    swept = plangate(tmp_path, "expire")

    assert "Traceback" not in swept.stderr
    assert "a-gone: skipped" in swept.stdout
    assert "gone.yaml" in swept.stdout
    assert "b-kept: approval expired" in swept.stdout
    assert "Run partial" in swept.stdout
    listed = plangate(tmp_path, "pending").stdout
    assert "a-gone" in listed
    assert "b-kept" not in listed
