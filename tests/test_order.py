"""A plan does what its list says: by default (`order: listed`) every effect (`propose`,
`execute`, or anything irreversible) waits for the steps listed before it and holds back the
steps listed after it, while the reads between two effects run together. A plan may ask for
data-flow order (`order: dependencies`), and a profile may make that the default; the order never
changes which steps ask a person."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from _support import CallLog, Runner, counting_tools, plan_of, plangate, thread
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.types import Command

from plangate import Profile, declare_action, load_profile, preflight
from plangate.cli import ExitCode

CLEANUP = plan_of(
    {"id": "restock", "tool": "inv.restock", "args": {"text": "widget"}},
    {"id": "ticket", "tool": "tickets.file", "args": {"text": "widget restocked"}},
    {"id": "report", "tool": "reports.write", "args": {"text": "weekly"}},
    {"id": "cleanup", "tool": "inv.delete", "args": {"text": "old widgets"}},
    goal="restock the widget, file a ticket, write a report, clean up",
)


def cleanup_tools(log: CallLog) -> list[BaseTool]:
    """The cleanup plan's tools as they declare themselves: restock and ticket `execute`, the
    report a `propose`, and the delete irreversible."""
    return [
        *counting_tools(log, "inv.restock", "tickets.file", action="execute"),
        *counting_tools(log, "reports.write", action="propose"),
        declare_action(
            counting_tools(log, "inv.delete", action=None)[0], action="execute", irreversible=True
        ),
    ]


def approve_all(runner: Runner, graph: Any, out: dict[str, Any]) -> tuple[list[list[str]], Any]:
    """Approve every request as it comes; the steps asked about at each pause, and the end."""
    asked = []
    while "__interrupt__" in out:
        waiting = [i.value["step_id"] for i in out["__interrupt__"]]
        asked.append(waiting)
        resume = {i.id: {"decision": "approve"} for i in out["__interrupt__"]}
        out = runner.invoke(graph, Command(resume=resume), thread())
    return asked, out["result"]


@pytest.mark.parametrize("profile", ["smb", "technical"])
def test_the_cleanup_plan_asks_for_and_runs_the_delete_last(
    runner: Runner, log: CallLog, profile: str
) -> None:
    """Nothing depends on anything, yet the calls are made in the list's order, and the
    approvals arrive in it one at a time: the delete (irreversible, so it asks even under
    `technical`) is asked about only when the ticket exists."""
    graph = runner.graph(cleanup_tools(log), profile=profile)

    asked, result = approve_all(runner, graph, runner.invoke(graph, {"plan": CLEANUP}, thread()))

    assert result["status"] == "success"
    assert [name for name, _ in log.calls] == [
        "inv.restock",
        "tickets.file",
        "reports.write",
        "inv.delete",
    ]
    expected = [["restock"], ["ticket"], ["cleanup"]] if profile == "smb" else [["cleanup"]]
    assert asked == expected


def test_data_flow_order_asked_for_by_the_plan_runs_effects_together(
    runner: Runner, log: CallLog
) -> None:
    """`order: dependencies` is the old data-flow order: nothing orders these steps, so all
    three approvals are asked for at once. The same steps ask as under listed order."""
    graph = runner.graph(cleanup_tools(log), profile="smb")
    plan = {**CLEANUP, "order": "dependencies"}

    out = runner.invoke(graph, {"plan": plan}, thread())

    assert sorted(i.value["step_id"] for i in out["__interrupt__"]) == [
        "cleanup",
        "restock",
        "ticket",
    ]
    assert log.calls[0][0] == "reports.write"  # ran in the first wave: it asks nobody
    listed, flow = preflight(graph, CLEANUP), preflight(graph, plan)
    assert (listed.order, flow.order) == ("listed", "dependencies")
    assert (
        [s.asks for s in listed.steps]
        == [s.asks for s in flow.steps]
        == [
            True,
            True,
            False,
            True,
        ]
    )


def test_a_profile_sets_the_default_order_and_a_plan_may_still_ask_for_the_list(
    runner: Runner, log: CallLog
) -> None:
    profile = Profile.model_validate({**load_profile("smb").model_dump(), "order": "dependencies"})
    graph = runner.graph(cleanup_tools(log), profile=profile)
    assert preflight(graph, CLEANUP).order == "dependencies"
    out = runner.invoke(graph, {"plan": {**CLEANUP, "order": "listed"}}, thread())
    assert [i.value["step_id"] for i in out["__interrupt__"]] == ["restock"]


def test_reads_between_two_effects_run_together_and_wait_for_the_effect_before_them(
    runner: Runner,
) -> None:
    """Two reads after an effect meet at a barrier only if they run at the same time; neither
    starts before the effect before them has ended, and the effect after them waits for both."""
    events: list[str] = []
    barrier = threading.Barrier(2, timeout=10)

    def make(name: str, action: str, meet: bool = False) -> BaseTool:
        def call(text: str = "") -> str:
            events.append(f"start {name}")
            if meet:
                barrier.wait()
            events.append(f"end {name}")
            return name

        tool = StructuredTool.from_function(call, name=name, description=f"Test tool {name}.")
        return declare_action(tool, action=action)  # type: ignore[arg-type]

    tools = [
        make("crm.first", "read"),
        make("crm.update", "execute"),
        make("crm.read_a", "read", meet=True),
        make("crm.read_b", "read", meet=True),
        make("crm.close", "execute"),
    ]
    graph = runner.graph(tools, profile="technical")
    plan = plan_of(*({"id": t.name, "tool": t.name} for t in tools))

    result = runner.invoke(graph, {"plan": plan}, thread())["result"]

    assert result["status"] == "success", result
    assert events.index("start crm.update") > events.index("end crm.first")
    assert events.index("start crm.read_a") > events.index("end crm.update")
    assert events.index("start crm.read_b") > events.index("end crm.update")
    assert events.index("start crm.close") > max(
        events.index("end crm.read_a"), events.index("end crm.read_b")
    )


def test_a_read_only_plan_runs_in_one_wave(runner: Runner, log: CallLog) -> None:
    """Listed order costs read-only plans nothing: every step is ready at once."""
    graph = runner.graph(counting_tools(log, "crm.a", "crm.b", "crm.c"), profile="technical")
    plan = plan_of(*({"tool": name} for name in ("crm.a", "crm.b", "crm.c")))
    chunks = runner.stream(graph, {"plan": plan}, thread(), stream_mode="updates")
    waves = [c for c in chunks if "budget_check" in c]
    assert len(waves) == 1


def test_plangate_check_says_which_order_applies(tmp_path: Path) -> None:
    """The pre-flight report names the order, in words and in its JSON."""
    (tmp_path / "tools.py").write_text(
        "from plangate import declare_action\n"
        "@declare_action(action='execute')\n"
        "def restock(text: str = '') -> str:\n    return text\n"
        "toolkit = {'inv.restock': restock}\n"
    )
    (tmp_path / "plangate.yaml").write_text(
        yaml.safe_dump({"profile": "technical", "tools": [{"python": "tools:toolkit"}]})
    )
    plan = {"steps": [{"tool": "inv.restock"}, {"tool": "inv.restock"}]}
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan))
    (tmp_path / "flow.yaml").write_text(yaml.safe_dump({**plan, "order": "dependencies"}))

    checked = plangate(tmp_path, "check", "plan.yaml")
    assert checked.returncode == ExitCode.SUCCESS, checked.stdout + checked.stderr
    assert "Order: listed (each propose or execute step waits" in checked.stdout
    as_json = plangate(tmp_path, "check", "flow.yaml", "--json")
    assert json.loads(as_json.stdout)["order"] == "dependencies"
