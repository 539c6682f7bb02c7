"""Runs that must be able to finish: profile durations are bounded when the profile loads, an
expired approval ends its step and goes on or halts the plan as `on_expiry` (else `on_reject`)
says, `plangate expire` closes every expired run it can even when one of them cannot go on, and
`watch_expiry` (`plangate expire --watch`, the inbox) closes each one as it expires."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from _support import CallLog, Clock, Runner, counting_tools, plan_of, plangate, thread
from langgraph.types import Command

from plangate import (
    PlangateError,
    PlangateUsageError,
    Profile,
    ProfileError,
    ToolNotAvailable,
    build_graph,
    expire_approvals,
    load_profile,
    open_checkpointer,
    watch_expiry,
)

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


# In data-flow order, so that the lookup may run while the send waits, unless a halt forbids it.
SEND_THEN_LOOKUP = plan_of(
    {"id": "send", "tool": "email.send", "action": "execute", "args": {"text": "hi"}},
    {"id": "after", "tool": "crm.lookup", "args": {"text": "acme"}},
    order="dependencies",
)


@pytest.mark.parametrize(
    ("on_reject", "on_expiry", "after", "halted"),
    [
        ("skip", None, "ok", None),
        ("halt", None, "skipped", "halts on reject"),
        ("skip", "halt", "skipped", "halts on expiry"),
        ("halt", "skip", "ok", None),
        ("skip", "skip", "ok", None),
    ],
)
def test_an_expired_approval_skips_its_step_or_halts_the_plan_as_on_expiry_says(
    runner: Runner,
    log: CallLog,
    clock: Clock,
    *,
    on_reject: str,
    on_expiry: str | None,
    after: str,
    halted: str | None,
) -> None:
    """`on_expiry: skip` ends just the expired step and goes on, `halt` skips every step not
    started; unset, `on_reject` decides. A plan that may halt runs nothing listed after the
    waiting step while it waits."""
    profile = load_profile("smb").model_copy(
        update={"on_reject": on_reject, "on_expiry": on_expiry}
    )
    tools = counting_tools(log, "email.send", "crm.lookup")
    graph = runner.graph(tools, profile=profile, clock=clock)
    runner.invoke(graph, {"plan": SEND_THEN_LOOKUP}, thread())
    may_halt = "halt" in (on_reject, on_expiry)
    assert log.calls == ([] if may_halt else [("crm.lookup", {"text": "acme"})])

    clock.advance(hours=25)
    out = runner.invoke(graph, Command(resume={"decision": "approve"}), thread())

    assert log.count("email.send") == 0
    statuses = {s["step_id"]: s["status"] for s in out["result"]["steps"]}
    assert statuses == {"send": "expired", "after": after}
    if halted is None:
        assert out["result"]["halted"] is None
    else:
        assert out["result"]["halted"] == (
            f"step 'send' was not approved in time and profile 'smb' {halted}"
        )


def test_on_expiry_leaves_a_rejection_to_on_reject(runner: Runner, log: CallLog) -> None:
    """`on_expiry: halt` halts on an approval nobody gave, not on one a person refused."""
    profile = load_profile("smb").model_copy(update={"on_expiry": "halt"})
    graph = runner.graph(counting_tools(log, "email.send", "crm.lookup"), profile=profile)
    runner.invoke(graph, {"plan": SEND_THEN_LOOKUP}, thread())
    reject = {"decision": "reject", "reason": "no", "approver": "lee"}
    result = runner.invoke(graph, Command(resume=reject), thread())["result"]
    assert [s["status"] for s in result["steps"]] == ["rejected", "ok"]
    assert result["halted"] is None


def test_new_fields_unset_keep_the_fingerprint_runs_paused_before_them_were_bound_to(
    tmp_path: Path,
) -> None:
    """A run records its profile's fingerprint and goes on only under it: `on_expiry`,
    `approvals_required` and `plan_review`, left unset, must not change the fingerprints of the
    profiles that existed before them. (`enterprise` now reviews its plans: other rules, another
    fingerprint; without the review it is the profile it was.)"""
    assert load_profile("smb").fingerprint == "56f938f0c414cea1"
    enterprise = load_profile("enterprise")
    assert enterprise.fingerprint != "41e313261d201133"
    unreviewed = {"plan_review": None, "self_approval": "allowed"}
    assert enterprise.model_copy(update=unreviewed).fingerprint == "41e313261d201133"
    halting = tmp_path / "halting.yaml"
    halting.write_text("on_expiry: halt\n")
    assert load_profile(halting).on_expiry == "halt"
    assert load_profile(halting).fingerprint != Profile().fingerprint


# --- closing approvals as they expire ---------------------------------------------------------


def wait_for(check: Any, what: str, timeout: float = 60) -> Any:
    """Poll `check()` until it returns something true; fail saying `what` did not happen."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"{what} did not happen"
        time.sleep(0.05)
    return found


def test_watch_expiry_closes_a_run_as_it_expires_reports_one_it_cannot_and_stops(
    tmp_path: Path, log: CallLog
) -> None:
    """In a thread of its own, the watch closes a request that expires a second after it was
    made, though it looks for new requests only once a minute; a run whose tool its graph lacks
    is reported with `ToolNotAvailable` and stays paused for a graph that has it; setting
    `stop` ends the watch mid-sleep."""
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    profile = load_profile("smb").model_copy(update={"approval_timeout_seconds": 1})
    graph = build_graph(
        counting_tools(log, "email.send", "crm.lookup"),
        profile=profile,
        checkpointer=open_checkpointer(url),
    )
    billing = build_graph(
        counting_tools(log, "billing.pay"), profile=profile, checkpointer=open_checkpointer(url)
    )
    pay = plan_of({"id": "pay", "tool": "billing.pay", "action": "execute", "args": {}})
    billing.invoke({"plan": pay}, thread("pay"))
    graph.invoke({"plan": SEND_THEN_LOOKUP}, thread("send"))
    stop = threading.Event()
    reports: list[tuple[str, Any]] = []

    def watch() -> None:
        reports.extend(watch_expiry(graph, every=60, stop=stop))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = wait_for(
            lambda: graph.get_state(thread("send")).values.get("result"), "closing 'send'"
        )
    finally:
        stop.set()
        watcher.join(30)
    assert not watcher.is_alive()

    assert {s["step_id"]: s["status"] for s in result["steps"]} == {
        "send": "expired",
        "after": "ok",
    }
    assert log.count("email.send") == 0
    closed = dict(reports)
    assert closed["send"]["status"] == "partial"
    assert isinstance(closed["pay"], ToolNotAvailable)
    still = billing.get_state(thread("pay"))
    assert [i.value["step_id"] for i in still.interrupts] == ["pay"]
    ((swept, paid),) = expire_approvals(billing)
    assert (swept, paid["steps"][0]["status"]) == ("pay", "expired")
    assert log.count("billing.pay") == 0


@pytest.mark.parametrize("every", [0, -1, float("nan")])
def test_watch_expiry_refuses_a_wait_that_is_not_a_positive_number(every: float) -> None:
    graph = build_graph({}, checkpointer=open_checkpointer("sqlite:///:memory:"))
    with pytest.raises(PlangateUsageError) as refused:
        watch_expiry(graph, every=every)
    assert "positive number of seconds" in refused.value.message
    assert isinstance(refused.value, PlangateError)
