"""The offline demo toolkit: a small, deterministic sales workflow with visible effects.

`crm.lookup_account` reads a fixed set of accounts; `email.draft` prepares a message;
`email.send` and `crm.update_opportunity` write to an outbox SQLite file, so that what a run
did to the world can be looked at (`demo_outbox(path)`). Both honour the call's idempotency key:
a call made again with the same key (a restart after a crash) changes nothing and returns what
the first call did.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from contextlib import closing
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool, ToolException

from plangate.actions import declare_action
from plangate.adapters.mock import mock_tools
from plangate.nodes.tool_exec import IDEMPOTENCY_KEY

__all__ = ("DEMO_ACCOUNTS", "demo_mocks", "demo_outbox", "demo_toolkit")

DEMO_ACCOUNTS: dict[str, dict[str, Any]] = {
    "acme": {
        "account_id": "acc-001",
        "name": "Acme Corp",
        "contact": "Ana Lopez",
        "contact_email": "ana.lopez@acme.example",
        "contact_phone": "+1 415 555 0100",
        "opportunity_id": "opp-101",
        "stage": "negotiation",
        "value_usd": 48000,
    },
    "globex": {
        "account_id": "acc-002",
        "name": "Globex",
        "contact": "Hank Scorpio",
        "contact_email": "hank@globex.example",
        "contact_phone": "+1 212 555 0199",
        "opportunity_id": "opp-202",
        "stage": "discovery",
        "value_usd": 120000,
    },
}

_TABLES = """
CREATE TABLE IF NOT EXISTS outbox (
    message_id TEXT, recipient TEXT, subject TEXT, body TEXT, sent_at TEXT, idempotency_key TEXT
);
CREATE TABLE IF NOT EXISTS crm_updates (
    opportunity_id TEXT, stage TEXT, note TEXT, updated_at TEXT, idempotency_key TEXT
);
"""
_ONCE = """
CREATE UNIQUE INDEX IF NOT EXISTS outbox_once ON outbox (idempotency_key);
CREATE UNIQUE INDEX IF NOT EXISTS crm_updates_once ON crm_updates (idempotency_key);
"""


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


def _key(config: RunnableConfig) -> str | None:
    return config.get("metadata", {}).get(IDEMPOTENCY_KEY)


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30)
    conn.executescript(_TABLES)
    for table in ("outbox", "crm_updates"):  # an outbox written before keys existed
        columns = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if "idempotency_key" not in columns:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN idempotency_key TEXT")
    conn.executescript(_ONCE)
    return conn


def demo_outbox(path: str | Path) -> list[dict[str, Any]]:
    """Every email the demo's `email.send` has sent into the outbox at `path`, oldest first."""
    with closing(_connect(Path(path))) as conn:
        rows = conn.execute(
            "SELECT message_id, recipient, subject, body, sent_at FROM outbox ORDER BY rowid"
        ).fetchall()
    keys = ("message_id", "to", "subject", "body", "sent_at")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def demo_toolkit(outbox: str | Path = "plangate-outbox.db") -> list[BaseTool]:
    """The demo's four tools, writing their effects to the SQLite file `outbox`.

    Examples:
        >>> sorted(t.name for t in demo_toolkit("/tmp/outbox.db"))
        ['crm.lookup_account', 'crm.update_opportunity', 'email.draft', 'email.send']
    """
    path = Path(outbox)

    def lookup_account(account: str) -> dict[str, Any]:
        """Look up a CRM account by its short name (e.g. 'acme')."""
        found = DEMO_ACCOUNTS.get(account.lower())
        if found is None:
            raise ToolException(
                f"no account named {account!r}; known: {', '.join(sorted(DEMO_ACCOUNTS))}"
            )
        return dict(found)

    def draft_email(to: str, subject: str, body: str) -> dict[str, Any]:
        """Prepare an email for review; nothing is sent."""
        return {
            "draft_id": f"draft-{_digest(to, subject, body)}",
            "to": to,
            "subject": subject,
            "body": body,
        }

    def send_email(to: str, subject: str, body: str, config: RunnableConfig) -> dict[str, Any]:
        """Send an email (writes it to the demo outbox). Cannot be undone."""
        message_id = f"msg-{_digest(to, subject, body)}"
        with closing(_connect(path)) as conn, conn:
            # OR IGNORE: the same key again is the same send, already done.
            conn.execute(
                "INSERT OR IGNORE INTO outbox VALUES (?, ?, ?, ?, datetime('now'), ?)",
                (message_id, to, subject, body, _key(config)),
            )
        return {"message_id": message_id, "to": to, "status": "sent"}

    def update_opportunity(
        opportunity_id: str, stage: str, config: RunnableConfig, note: str = ""
    ) -> dict[str, Any]:
        """Move a CRM opportunity to a new stage, with a note."""
        with closing(_connect(path)) as conn, conn:
            conn.execute(
                "INSERT OR IGNORE INTO crm_updates VALUES (?, ?, ?, datetime('now'), ?)",
                (opportunity_id, stage, note, _key(config)),
            )
        return {"opportunity_id": opportunity_id, "stage": stage}

    # Each tool says what it does, so that no plan can call a send a read.
    return [
        declare_action(
            StructuredTool.from_function(
                lookup_account, name="crm.lookup_account", handle_tool_error=False
            ),
            action="read",
        ),
        declare_action(
            StructuredTool.from_function(draft_email, name="email.draft"), action="propose"
        ),
        declare_action(
            StructuredTool.from_function(send_email, name="email.send"),
            action="execute",
            irreversible=True,
        ),
        declare_action(
            StructuredTool.from_function(update_opportunity, name="crm.update_opportunity"),
            action="execute",
        ),
    ]


def demo_mocks() -> list[BaseTool]:
    """Mocks of the demo toolkit's tools, answering from the fixtures packaged with plangate:
    what `plangate run --offline` calls."""
    text = resources.files(__package__).joinpath("demo_fixtures.yaml").read_text("utf-8")
    return mock_tools(yaml.safe_load(text))
