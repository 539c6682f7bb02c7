"""The reference pages are rendered from the code, by the functions the site's MkDocs hook calls
(`docs/_gen/reference.py`): every key, command, event type, exit status and error the code has is
on its page, and the README's links lead to pages that exist."""

from __future__ import annotations

import importlib.util
import re
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest
from pydantic import BaseModel

from plangate import EVENT_TYPES
from plangate.cli.output import ExitCode
from plangate.profiles import Profile
from plangate.project import ProjectFile

ROOT = Path(__file__).resolve().parents[1]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_reference", ROOT / "docs/_gen/reference.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


reference = _generator()


def _keys_on(page: str) -> set[str]:
    """The keys of the rows of a page's key tables."""
    return set(re.findall(r"^\| `([a-z_]+)` \|", page, re.M))


def _every_model(model: type[BaseModel]) -> list[type[BaseModel]]:
    return list(reference._nested_models(model))


def test_every_profile_key_is_on_the_profile_page() -> None:
    page = reference.profile_keys()
    for model in _every_model(Profile):
        assert set(model.model_fields) <= _keys_on(page), model.__name__
    assert "| `max_concurrency` | integer (at least 1, at most 256) | `16` |" in page
    assert "## `RetryPolicy` {#retrypolicy}" in page


def test_every_project_file_key_is_on_the_project_file_page() -> None:
    page = reference.project_file_keys()
    models = _every_model(ProjectFile)
    assert {m.__name__ for m in models} >= {"MCPTools", "MCPServer", "OpenAPITools", "Anchors"}
    for model in models:
        assert set(model.model_fields) <= _keys_on(page), model.__name__
    assert "[MCPTools](#mcptools)" in page  # the `tools` row links to the entry's table


def test_a_key_without_a_description_stops_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A module of its own: descriptions are read from the source, as mkdocstrings reads them.
    (tmp_path / "undocumented_model.py").write_text(
        textwrap.dedent(
            '''
            from pydantic import BaseModel


            class Undocumented(BaseModel):
                """A model that forgot a key.

                Attributes:
                    said: Described.
                """

                said: int = 1
                unsaid: int = 2
            '''
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    from undocumented_model import Undocumented  # type: ignore[import-not-found]

    with pytest.raises(ValueError, match="no description of unsaid"):
        reference.model_tables(Undocumented)


def test_every_command_and_its_options_are_on_the_cli_page() -> None:
    page = reference.cli_reference()
    for command in ("run", "approve", "reject", "serve", "verify", "prune", "expire", "init"):
        assert f"## `plangate {command}`" in page
    assert "| `--finished-before AGE` |" in page
    assert "| `--project PATH` |" in page
    assert "[env var: PLANGATE_PROJECT]" in page


def test_every_event_type_exit_code_and_error_is_on_its_page() -> None:
    events = reference.event_types()
    assert all(f"| `{kind}` |" in events for kind in EVENT_TYPES)
    codes = reference.exit_codes()
    assert all(f"| {code.value} | `{code.name}` |" in codes for code in ExitCode)
    errors = reference.errors()
    for name in ("PlangateError", "ThreadError", "StaleDecision", "ProjectError"):
        assert f"## `{name}`" in errors
    assert "        - [`StaleDecision`](#staledecision)" in errors  # under ThreadError


def test_the_api_page_documents_every_public_name() -> None:
    import plangate
    import plangate.errors

    page = reference.api_reference()
    documented = set(re.findall(r"^::: [\w.]+\.(\w+)$", page, re.M))
    errors = set(plangate.errors.__all__)
    assert documented == set(plangate.__all__) - errors


def test_markers_are_replaced_and_an_unknown_one_is_refused() -> None:
    assert reference.render("# Exit codes\n\n<!-- generated: exit-codes -->\n").count("| 3 |") == 1
    with pytest.raises(KeyError):
        reference.render("<!-- generated: no-such-table -->")


def test_the_readme_links_lead_to_files_that_exist() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    local = [link for link in links if not link.startswith("http")]
    assert "docs/how-to/mcp.md" in local
    assert "docs/how-to/inbox.md" in local
    assert [link for link in local if not (ROOT / link).exists()] == []


def test_the_front_page_links_to_mcp_and_the_inbox() -> None:
    """Two clicks from the front page: connect an MCP server, approve from the browser."""
    front = (ROOT / "docs/index.md").read_text(encoding="utf-8")
    assert "[Connect an MCP server](how-to/mcp.md)" in front
    assert "[Approve from the browser](how-to/inbox.md)" in front
