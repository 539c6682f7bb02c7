"""A plangate worker process, for the tests where many workers share one database.

    worker.py start DB EFFECTS PREFIX COUNT
        Starts COUNT runs (threads PREFIX-0, PREFIX-1, ...) under `smb`; each does its
        `work.prepare` step and pauses before `work.commit`.
    worker.py resume DB EFFECTS PREFIX COUNT NAME SEED
        Goes through every thread in a random order and resumes it with a random decision
        (approve or reject, as NAME); a run another worker got to first is skipped.

Both tools append a row to the SQLite file EFFECTS on every call, with no deduplication, so the
test can count each step's executions. Prints one JSON line: what the worker did.
"""

from __future__ import annotations

import json
import random
import sqlite3
import sys
import time
from contextlib import closing
from typing import Any

from langgraph.types import Command

from plangate import (
    NoPendingApproval,
    ResumeConflict,
    build_graph,
    declare_action,
    open_checkpointer,
)


def effect_tools(effects: str) -> dict[str, Any]:
    def record(step: str, item: str) -> dict[str, str]:
        with closing(sqlite3.connect(effects, timeout=30)) as conn, conn:
            conn.execute("CREATE TABLE IF NOT EXISTS effects (step TEXT, item TEXT)")
            conn.execute("INSERT INTO effects VALUES (?, ?)", (step, item))
        return {"step": step, "item": item}

    @declare_action(action="read")  # it only stages; `commit` is what waits for a person
    def prepare(item: str) -> dict[str, str]:
        return record("prepare", item)

    def commit(item: str) -> dict[str, str]:
        time.sleep(0.02)  # long enough for other workers to try the same run meanwhile
        return record("commit", item)

    return {"work.prepare": prepare, "work.commit": commit}


def plan(item: str) -> dict[str, Any]:
    return {
        "goal": f"commit {item}",
        "steps": [
            {"id": "prepare", "tool": "work.prepare", "args": {"item": item}},
            {
                "id": "commit",
                "tool": "work.commit",
                "action": "execute",
                "args": {"item": item},
                "depends_on": ["prepare"],
            },
        ],
    }


def main(command: str, db: str, effects: str, prefix: str, count: str, *rest: str) -> None:
    graph = build_graph(effect_tools(effects), profile="smb", checkpointer=open_checkpointer(db))
    threads = [f"{prefix}-{i}" for i in range(int(count))]
    if command == "start":
        for thread in threads:
            graph.invoke({"plan": plan(thread)}, {"configurable": {"thread_id": thread}})
        print(json.dumps({"started": threads}))
        return
    name, seed = rest
    rng = random.Random(seed)
    rng.shuffle(threads)
    report: dict[str, Any] = {"decided": {}, "conflicts": 0, "done_elsewhere": 0}
    for thread in threads:
        decision = rng.choice(["approve", "reject"])
        resume = {"decision": decision, "approver": name, "reason": f"{name} said no"}
        try:
            graph.invoke(Command(resume=resume), {"configurable": {"thread_id": thread}})
        except ResumeConflict:
            report["conflicts"] += 1
        except NoPendingApproval:
            report["done_elsewhere"] += 1
        else:
            report["decided"][thread] = decision
    print(json.dumps(report))


if __name__ == "__main__":
    main(*sys.argv[1:])
