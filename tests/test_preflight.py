"""The pre-flight report: a plan checked against a graph's tools and profile, nothing run."""

from __future__ import annotations

import json
from pathlib import Path

from _support import CallLog, counting_tools, plangate
from langchain_core.tools import StructuredTool
from pydantic import BaseModel

from plangate import Budget, PreflightReport, build_graph, demo_toolkit, load_profile, preflight
from plangate.adapters.openapi import openapi_tools


def test_a_plan_is_checked_step_by_step_without_running_anything(tmp_path: Path) -> None:
    """Unknown tools, refused args and the tier that runs out are problems naming their step;
    each step says its effective action, where it came from, its risk and whether it asks."""
    log = CallLog()
    rules = load_profile("smb").model_copy(update={"budget": Budget(calls_per_tool=2)})
    graph = build_graph(
        [*counting_tools(log, "crm.lookup"), *demo_toolkit(tmp_path / "outbox.db")],
        profile=rules,
    )
    plan = [
        {"id": "l1", "tool": "crm.lookup", "args": {"text": "a"}},
        {"id": "send", "tool": "email.send", "action": "read", "args": {"to": "a@b.example"}},
        {"id": "l2", "tool": "crm.lookup", "args": {"text": "b"}},
        {"id": "l3", "tool": "crm.lookup", "args": {"text": "c"}},
        {"id": "ghost", "tool": "fs.delete"},
    ]

    report = preflight(graph, plan)

    assert not report.ok
    assert log.calls == []
    assert (tmp_path / "outbox.db").exists() is False
    send = report.steps[1]
    assert (send.action, send.action_source, send.irreversible, send.risk, send.asks) == (
        "execute",
        "tool",
        True,
        "high",
        True,
    )
    assert report.steps[0].asks is False
    assert [s.blocked_by for s in report.steps] == [None, None, None, "tool:crm.lookup", None]
    assert [(p.kind, p.step_id) for p in report.problems] == [
        ("invalid_arguments", "send"),
        ("budget", "l3"),
        ("unknown_tool", "ghost"),
    ]
    assert "args.subject" in report.problems[0].message
    dumped = report.model_dump(mode="json")
    assert PreflightReport.model_validate(json.loads(json.dumps(dumped))) == report


def test_an_invalid_plan_is_one_plan_problem_not_an_exception(tmp_path: Path) -> None:
    graph = build_graph(demo_toolkit(tmp_path / "outbox.db"), profile="smb")
    report = preflight(
        graph, {"goal": "g", "steps": [{"id": "a", "tool": "x", "depends_on": ["z"]}]}
    )
    assert not report.ok
    assert report.steps == []
    (problem,) = report.problems
    assert (problem.kind, problem.step_id) == ("plan", "a")
    assert "unknown step 'z'" in problem.message


def test_a_tool_outside_the_allowlist_is_a_problem(tmp_path: Path) -> None:
    rules = load_profile("smb").model_copy(update={"allowed_tools": ["crm.*"]})
    graph = build_graph(demo_toolkit(tmp_path / "outbox.db"), profile=rules)
    body = {"to": "a@b.example", "subject": "s", "body": "b"}
    report = preflight(graph, [{"id": "s", "tool": "email.send", "args": body}])
    assert [(p.kind, p.step_id) for p in report.problems] == [("tool_not_allowed", "s")]
    assert report.steps[0].allowed is False


def test_plangate_check_prints_the_report_and_exits_non_zero_on_a_problem(tmp_path: Path) -> None:
    examples = Path(__file__).resolve().parents[1] / "examples" / "demo"
    good = plangate(tmp_path, "check", str(examples / "sales_followup.yaml"), "--profile", "smb")
    assert good.returncode == 0, good.stderr
    assert "send    email.send          execute (tool), irreversible  high  yes" in good.stdout
    assert "No problem found under profile smb." in good.stdout
    assert not (tmp_path / "plangate.db").exists()  # nothing is stored

    bad = tmp_path / "bad.yaml"
    bad.write_text("steps:\n  - {id: s, tool: email.send, args: {to: a@b.example}}\n")
    checked = plangate(tmp_path, "check", str(bad), "--json")
    assert checked.returncode == 1
    report = json.loads(checked.stdout)
    assert report["ok"] is False
    assert report["problems"][0]["kind"] == "invalid_arguments"

    missing = plangate(tmp_path, "check", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 1
    assert len(missing.stderr.splitlines()) == 1


def test_plangate_check_json_stays_json_whatever_the_plan_says(tmp_path: Path) -> None:
    """A bidi override or a C1 control in a plan reaches `--json` as a JSON escape: the line
    still parses, to the same text."""
    hostile = "send \u202egnp.exe\u0085 now"
    plan = {"steps": [{"id": "s", "tool": "nope.tool", "description": "d", "args": {}}]}
    plan["goal"] = hostile
    (tmp_path / "plan.json").write_text(
        json.dumps({**plan, "steps": [{**plan["steps"][0], "id": hostile}]})
    )
    checked = plangate(tmp_path, "check", "plan.json", "--json")
    assert checked.returncode == 1
    assert "\u202e" not in checked.stdout
    report = json.loads(checked.stdout)
    assert report["problems"][0]["step_id"] == hostile


def test_plangate_check_names_the_tier_a_plan_runs_out_of_and_the_steps_it_blocks(
    tmp_path: Path,
) -> None:
    email = {"to": "a@b.example", "subject": "s", "body": "b"}
    steps = [{"id": f"d{n}", "tool": "email.draft", "args": email} for n in range(7)]
    (tmp_path / "drafts.json").write_text(json.dumps({"goal": "drafts", "steps": steps}))

    checked = plangate(tmp_path, "check", "drafts.json", "--profile", "enterprise")

    assert checked.returncode == 1
    assert "Budget: tool:email.draft 5/5 calls; blocks d5, d6" in checked.stdout


class _Line(BaseModel):
    sku: str
    qty: int


class _Order(BaseModel):
    customer: str
    lines: list[_Line]


def _place_order(order: _Order, note: str = "") -> str:
    """Place an order."""
    return "placed"


# The same operation as a JSON Schema tool (an OpenAPI operation; an MCP tool's is alike).
_LINE = {
    "type": "object",
    "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}},
    "required": ["sku", "qty"],
}
_ORDER = {
    "type": "object",
    "properties": {"customer": {"type": "string"}, "lines": {"type": "array", "items": _LINE}},
    "required": ["customer", "lines"],
}
_ORDERS_API = {
    "openapi": "3.1.0",
    "info": {"title": "Orders", "version": "1"},
    "servers": [{"url": "http://127.0.0.1:9"}],
    "paths": {
        "/orders": {
            "post": {
                "operationId": "place_order",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"order": _ORDER, "note": {"type": "string"}},
                                "required": ["order"],
                            }
                        }
                    },
                },
                "responses": {"200": {"description": "placed"}},
            }
        }
    },
}


def test_referenced_args_are_left_to_the_run_for_json_schema_tools_as_for_python_ones() -> None:
    """A required argument whose value comes from a `${steps...}` reference inside an object
    or a list was reported invalid for an OpenAPI (or MCP) tool, not for a Python one: a CI
    gate on `preflight` refused a plan that runs. Every source now leaves a referenced value
    to the run, and still names an argument that is wrong whatever the references give."""
    python = StructuredTool.from_function(_place_order, name="shop.place_order")
    item = {"id": "item", "tool": "shop.item", "args": {"text": "x"}}
    referenced = {
        "order": {
            "customer": "${steps.item.output.customer}",
            "lines": [{"sku": "${steps.item.output.sku}", "qty": "${steps.item.output.qty}"}],
        },
        "note": "Restock ${steps.item.output.sku}",
    }
    place = {"id": "place", "tool": "shop.place_order", "args": referenced}
    wrong = {"order": {"customer": "${steps.item.output.customer}", "lines": [{"qty": 1}]}}
    for tools in ([python], openapi_tools(_ORDERS_API, prefix="shop")):
        graph = build_graph([*tools, *counting_tools(CallLog(), "shop.item")], profile="technical")

        report = preflight(graph, [item, place])

        assert report.ok, (tools[0], report.problems)
        assert report.steps[1].references == {
            "order.customer": "item",
            "order.lines[0].sku": "item",
            "order.lines[0].qty": "item",
            "note": "item",
        }
        refused = preflight(graph, [item, {**place, "args": wrong}])
        assert [(p.kind, p.step_id) for p in refused.problems] == [("invalid_arguments", "place")]
        assert refused.problems[0].message.startswith("shop.place_order: args.order.lines.0.sku")
