"""Tools for the tests where workers share one PostgreSQL (`PLANGATE_TEST_LEDGER`): each call
appends a row to `calls` as it starts and stamps it as it ends (the database's clock, shared by
every process), takes `seconds`, and puts its effect into `effects` once per idempotency key.

A project names them `{python: ledger_tools:toolkit, args: {steps: [...], seconds: 0.2}}`, the
file copied beside its `plangate.yaml`: each step `{name, action, irreversible}` is a tool
`work.<name>` of one argument, `item`, declaring `action` (none: undeclared) and, given,
`irreversible`.
"""

from __future__ import annotations

import os
import time
from typing import Any

import psycopg
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool

from plangate import declare_action
from plangate.nodes.tool_exec import IDEMPOTENCY_KEY


def _call(step: str, item: str, seconds: float, config: RunnableConfig) -> dict[str, str]:
    key = config["metadata"][IDEMPOTENCY_KEY]
    with psycopg.connect(os.environ["PLANGATE_TEST_LEDGER"], autocommit=True) as conn:
        (call,) = conn.execute(  # type: ignore[misc]
            "INSERT INTO calls (thread, step, key, pid, started) "
            "VALUES (%s, %s, %s, %s, clock_timestamp()) RETURNING id",
            (item, step, key, os.getpid()),
        ).fetchone()
        time.sleep(seconds)
        conn.execute(
            "INSERT INTO effects (key, thread, step) VALUES (%s, %s, %s) "
            "ON CONFLICT (key) DO NOTHING",
            (key, item, step),
        )
        conn.execute("UPDATE calls SET ended = clock_timestamp() WHERE id = %s", (call,))
    return {"step": step, "item": item}


def _tool(step: dict[str, Any], seconds: float) -> BaseTool:
    name = step["name"]

    def call(item: str, config: RunnableConfig) -> dict[str, str]:
        return _call(name, item, seconds, config)

    tool = StructuredTool.from_function(call, name=f"work.{name}", description=f"{name} an item")
    if step.get("action") is None:
        return tool
    return declare_action(tool, action=step["action"], irreversible=bool(step.get("irreversible")))


def toolkit(steps: list[dict[str, Any]], seconds: float) -> list[BaseTool]:
    return [_tool(step, seconds) for step in steps]
