"""OpenTelemetry: a run is a trace (its id the plangate trace's), with one span for the run and
one per step after the GenAI conventions for tool execution; a step's span times its call, not
the wait for its approval; a run resumed in another process adds to the same trace; attributes
are redacted as trace events are; and spans reach a real OTLP/HTTP receiver."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from _support import CallLog, counting_tools, plan_of, run_in, thread
from langchain_core.tools import StructuredTool
from langgraph.types import Command
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from plangate import PlangateGraph, build_graph, declare_action, load_profile, open_checkpointer
from plangate.identity import DecisionSigner, Identity

SEND = {"id": "send", "tool": "email.send", "action": "execute", "args": {"text": "to ana"}}
LOOKUP = {"id": "look", "tool": "crm.lookup", "args": {"text": "ana@acme.example"}}


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def traced(
    tools: Any,
    exporter: InMemorySpanExporter,
    tmp_path: Path,
    signer: DecisionSigner | None = None,
    **profile: Any,
) -> PlangateGraph:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return build_graph(
        tools,
        profile=load_profile("smb").model_copy(update=profile),
        checkpointer=open_checkpointer(f"sqlite:///{tmp_path / 'runs.db'}"),
        tracer_provider=provider,
        signer=signer,
    )


def by_name(spans: Any) -> dict[str, ReadableSpan]:
    return {span.name: span for span in spans}


def hex_id(number: int, digits: int) -> str:
    return format(number, f"0{digits}x")


def test_a_run_is_a_trace_with_a_span_per_step_under_the_runs(
    exporter: InMemorySpanExporter, log: CallLog, tmp_path: Path
) -> None:
    graph = traced(counting_tools(log, "crm.lookup", "email.send"), exporter, tmp_path)
    graph.invoke({"plan": plan_of(LOOKUP, {**SEND, "depends_on": ["look"]})}, thread())
    assert [s.name for s in exporter.get_finished_spans()] == ["execute_tool crm.lookup"]

    out = graph.invoke(Command(resume={"decision": "approve", "approver": "lee"}), thread())

    spans = by_name(exporter.get_finished_spans())
    run, look, send = (
        spans["plangate.run"],
        spans["execute_tool crm.lookup"],
        spans["execute_tool email.send"],
    )
    trace_id = out["result"]["trace_id"]
    assert {hex_id(s.context.trace_id, 32) for s in spans.values()} == {trace_id}
    assert run.parent is None
    assert look.parent is not None
    assert send.parent is not None
    assert look.parent.span_id == send.parent.span_id == run.context.span_id
    assert dict(send.attributes or {}) == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "email.send",
        "gen_ai.tool.type": "function",
        "gen_ai.tool.call.id": dict(send.attributes or {})["gen_ai.tool.call.id"],
        "plangate.step.id": "send",
        "plangate.step.status": "ok",
        "plangate.step.attempts": 1,
        "plangate.step.mocked": False,
        "plangate.step.action": "execute",
        "plangate.step.action_source": "plan",
        "plangate.budget.calls": 2,  # the run's calls, this one included
    }
    assert dict(look.attributes or {})["plangate.budget.calls"] == 1
    (approval,) = send.events
    assert approval.name == "plangate.approval"
    assert dict(approval.attributes or {})["plangate.approval.approver"] == "lee"
    assert dict(approval.attributes or {})["plangate.approval.verified_by"] == "unverified"
    assert "plangate.approval.subject" not in dict(approval.attributes or {})
    assert dict(run.attributes or {})["plangate.run.status"] == "success"
    assert dict(run.attributes or {})["plangate.budget.calls"] == 2


def test_the_approval_event_says_who_decided_and_how_they_were_known(
    exporter: InMemorySpanExporter, log: CallLog, tmp_path: Path
) -> None:
    signer = DecisionSigner(b"the project's signing key here")
    graph = traced(counting_tools(log, "email.send"), exporter, tmp_path, signer=signer)
    request = graph.invoke({"plan": plan_of(SEND)}, thread())["__interrupt__"][0].value
    lee: Identity = {
        "subject": "u-lee",
        "name": "Lee",
        "email": None,
        "groups": [],
        "verified_by": "token",
    }
    decision = {"decision": "approve"}
    proof = signer.sign_decision(
        decision, request_id=request["request_id"], digest=request["digest"], identity=lee
    )
    graph.invoke(Command(resume={**decision, "identity": lee, "proof": proof}), thread())

    (approval,) = by_name(exporter.get_finished_spans())["execute_tool email.send"].events
    attributes = dict(approval.attributes or {})
    assert attributes["plangate.approval.verified_by"] == "token"
    assert attributes["plangate.approval.subject"] == "u-lee"
    assert attributes["plangate.approval.approver"] == "Lee"


def test_the_call_id_is_the_idempotency_key_the_trace_records(
    exporter: InMemorySpanExporter, log: CallLog, tmp_path: Path
) -> None:
    graph = traced(counting_tools(log, "crm.lookup"), exporter, tmp_path)
    graph.invoke({"plan": plan_of(LOOKUP)}, thread())

    (start,) = [e for e in graph_trace(graph) if e["type"] == "tool_call_start"]
    span = by_name(exporter.get_finished_spans())["execute_tool crm.lookup"]
    assert dict(span.attributes or {})["gen_ai.tool.call.id"] == start["data"]["idempotency_key"]


def graph_trace(graph: PlangateGraph) -> list[dict[str, Any]]:
    from plangate import get_trace

    return [dict(e) for e in get_trace(graph, thread())]


def test_a_steps_span_times_its_call_not_the_wait_for_its_approval(
    exporter: InMemorySpanExporter, tmp_path: Path
) -> None:
    @declare_action(action="execute")
    def send(text: str) -> str:
        time.sleep(0.05)
        return text

    graph = traced({"email.send": send}, exporter, tmp_path)
    graph.invoke({"plan": plan_of(SEND)}, thread())
    time.sleep(0.3)  # the approver takes their time
    graph.invoke(Command(resume={"decision": "approve"}), thread())

    span = by_name(exporter.get_finished_spans())["execute_tool email.send"]
    assert span.end_time is not None
    assert span.start_time is not None
    took = (span.end_time - span.start_time) / 1e9
    assert 0.05 <= took < 0.3


def test_steps_that_end_without_a_call_have_a_span_with_their_status(
    exporter: InMemorySpanExporter, log: CallLog, tmp_path: Path
) -> None:
    graph = traced(counting_tools(log, "crm.lookup", "email.send"), exporter, tmp_path)
    plan = plan_of(SEND, {**LOOKUP, "depends_on": ["send"]}, {"id": "x", "tool": "nope.tool"})
    graph.invoke({"plan": plan}, thread())
    graph.invoke(Command(resume={"decision": "reject", "reason": "no"}), thread())

    spans = by_name(exporter.get_finished_spans())
    statuses = {
        name: dict(span.attributes or {})["plangate.step.status"]
        for name, span in spans.items()
        if name != "plangate.run"
    }
    assert statuses == {
        "execute_tool email.send": "rejected",
        "execute_tool crm.lookup": "skipped",
        "execute_tool nope.tool": "blocked",
    }
    assert all(s.start_time == s.end_time for n, s in spans.items() if n != "plangate.run")
    assert dict(spans["execute_tool nope.tool"].attributes or {})["error.type"] == (
        "tool_not_registered"
    )
    assert log.calls == []


@pytest.mark.parametrize("capture", [False, True])
def test_args_and_outputs_are_recorded_only_when_allowed_and_redacted_as_the_trace(
    exporter: InMemorySpanExporter, log: CallLog, tmp_path: Path, capture: bool
) -> None:
    graph = traced(counting_tools(log, "crm.lookup"), exporter, tmp_path, capture_content=capture)
    graph.invoke({"plan": plan_of(LOOKUP, goal="call ana@acme.example")}, thread())

    spans = by_name(exporter.get_finished_spans())
    attributes = dict(spans["execute_tool crm.lookup"].attributes or {})
    if not capture:
        assert "plangate.goal" not in dict(spans["plangate.run"].attributes or {})
        assert "gen_ai.tool.call.arguments" not in attributes
        assert "gen_ai.tool.call.result" not in attributes
        return
    assert dict(spans["plangate.run"].attributes or {})["plangate.goal"] == "call [REDACTED_EMAIL]"
    assert json.loads(str(attributes["gen_ai.tool.call.arguments"])) == {"text": "[REDACTED_EMAIL]"}
    result = json.loads(str(attributes["gen_ai.tool.call.result"]))
    assert result == {"tool": "crm.lookup", "echo": "[REDACTED_EMAIL]"}
    assert "ana@acme.example" not in json.dumps(dict(attributes))


def everything_in(span: ReadableSpan) -> str:
    """All a span carries that a backend stores: attributes, status, events."""
    events = [(event.name, dict(event.attributes or {})) for event in span.events]
    return json.dumps(
        [span.name, dict(span.attributes or {}), span.status.description, events], default=str
    )


def test_without_capture_content_no_goal_or_failure_message_reaches_a_span(
    exporter: InMemorySpanExporter, tmp_path: Path
) -> None:
    """Under `technical` (no redaction) with content capture off, the goal (`plangate.goal`)
    and a failed call's message (the span's status description) carried an email into spans.
    Both are content: left out; the span still says the step failed and why, by type."""

    def lookup(text: str) -> str:
        raise ValueError(f"no account for {text}")

    tool = declare_action(
        StructuredTool.from_function(lookup, name="crm.lookup", description="Look up."),
        action="read",
    )
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    graph = build_graph(
        [tool],
        profile=load_profile("technical").model_copy(update={"capture_content": False}),
        checkpointer=open_checkpointer(f"sqlite:///{tmp_path / 'runs.db'}"),
        tracer_provider=provider,
    )
    step = {**LOOKUP, "description": "find ana@acme.example"}
    out = graph.invoke({"plan": plan_of(step, goal="call ana@acme.example")}, thread())
    assert "ana@acme.example" in out["result"]["steps"][0]["error"]  # the run's own record has it

    spans = by_name(exporter.get_finished_spans())
    failed = spans["execute_tool crm.lookup"]
    assert failed.status.status_code is StatusCode.ERROR
    assert dict(failed.attributes or {})["error.type"]
    for span in spans.values():
        assert "acme.example" not in everything_in(span), span.name


def test_every_step_span_with_an_error_type_has_the_status_error(
    exporter: InMemorySpanExporter, log: CallLog, tmp_path: Path
) -> None:
    """A rejected and a blocked step set `error.type` but left the span's status UNSET, so
    backends counting errors by status missed them; a step that ended ok stays UNSET."""
    graph = traced(counting_tools(log, "crm.lookup", "email.send"), exporter, tmp_path)
    plan = plan_of(SEND, LOOKUP, {"id": "x", "tool": "nope.tool"})
    graph.invoke({"plan": plan}, thread())
    graph.invoke(Command(resume={"decision": "reject", "reason": "no"}), thread())

    spans = by_name(exporter.get_finished_spans())
    for name in ("execute_tool email.send", "execute_tool nope.tool"):
        assert dict(spans[name].attributes or {})["error.type"], name
        assert spans[name].status.status_code is StatusCode.ERROR, name
    ok = spans["execute_tool crm.lookup"]
    assert dict(ok.attributes or {})["plangate.step.status"] == "ok"
    assert "error.type" not in dict(ok.attributes or {})
    assert ok.status.status_code is StatusCode.UNSET


# A run's part in one process, its spans written to a file as JSON (`sys.argv`: the database,
# the spans file, and `start` or `approve`); the profile's `telemetry: otel` uses the global
# tracer provider.
PART_OF_A_RUN = """
import json, sys
from langgraph.types import Command
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from plangate import build_graph, demo_toolkit, load_profile, open_checkpointer

db, spans_file, what = sys.argv[1:]
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
profile = load_profile("smb").model_copy(update={"telemetry": "otel"})
graph = build_graph(demo_toolkit("outbox.db"), profile=profile,
                    checkpointer=open_checkpointer(f"sqlite:///{db}"))
config = {"configurable": {"thread_id": "t1"}}
email = {"to": "ana@acme.example", "subject": "Hi", "body": "."}
if what == "start":
    plan = {"goal": "g", "steps": [
        {"id": "look", "tool": "crm.lookup_account", "args": {"account": "acme"}},
        {"id": "send", "tool": "email.send", "args": email, "depends_on": ["look"]}]}
    graph.invoke({"plan": plan}, config)
else:
    graph.invoke(Command(resume={"decision": "approve", "approver": "lee"}), config)
spans = [{"name": s.name, "trace": format(s.context.trace_id, "032x"),
          "span": format(s.context.span_id, "016x"),
          "parent": s.parent and format(s.parent.span_id, "016x")}
         for s in exporter.get_finished_spans()]
json.dump(spans, open(spans_file, "w"))
"""


def test_a_run_resumed_in_another_process_adds_to_the_same_trace(tmp_path: Path) -> None:
    script = tmp_path / "part.py"
    script.write_text(PART_OF_A_RUN)
    db = tmp_path / "runs.db"
    for part in ("start", "approve"):
        done = run_in(tmp_path, sys.executable, str(script), str(db), f"{part}.json", part)
        assert done.returncode == 0, done.stderr

    first = json.loads((tmp_path / "start.json").read_text())
    second = json.loads((tmp_path / "approve.json").read_text())
    assert [s["name"] for s in first] == ["execute_tool crm.lookup_account"]
    assert sorted(s["name"] for s in second) == ["execute_tool email.send", "plangate.run"]
    (run,) = [s for s in second if s["name"] == "plangate.run"]
    assert {s["trace"] for s in [*first, *second]} == {run["trace"]}
    assert {s["parent"] for s in [*first, *second] if s is not run} == {run["span"]}


class _Receiver(BaseHTTPRequestHandler):
    """An OTLP/HTTP trace receiver: keeps each request's decoded spans."""

    received: list[ExportTraceServiceRequest]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        type(self).received.append(request)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: Any) -> None:  # quiet
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[ExportTraceServiceRequest]]]:
    received: list[ExportTraceServiceRequest] = []
    handler = type("Receiver", (_Receiver,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    worker = threading.Thread(target=server.serve_forever, daemon=True)
    worker.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces", received
    server.shutdown()
    server.server_close()


def test_spans_reach_a_real_otlp_http_receiver(
    receiver: tuple[str, list[ExportTraceServiceRequest]], log: CallLog, tmp_path: Path
) -> None:
    endpoint, received = receiver
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    tool = StructuredTool.from_function(lambda text="": text, name="crm.lookup", description="x")
    graph = build_graph(
        [declare_action(tool, action="read")],
        profile="technical",
        checkpointer=open_checkpointer(f"sqlite:///{tmp_path / 'runs.db'}"),
        tracer_provider=provider,
    )
    out = graph.invoke({"plan": plan_of(LOOKUP)}, thread())
    assert provider.force_flush()

    spans = [
        span
        for request in received
        for resource in request.resource_spans
        for scope in resource.scope_spans
        if scope.scope.name == "plangate"
        for span in scope.spans
    ]
    assert sorted(s.name for s in spans) == ["execute_tool crm.lookup", "plangate.run"]
    assert {s.trace_id.hex() for s in spans} == {out["result"]["trace_id"]}
    step = next(s for s in spans if s.name.startswith("execute_tool"))
    attributes = {a.key: a.value for a in step.attributes}
    assert attributes["gen_ai.operation.name"].string_value == "execute_tool"
    assert attributes["gen_ai.tool.name"].string_value == "crm.lookup"
