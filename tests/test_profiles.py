"""Profiles: the built-ins, loading files, errors that name the field, and the rules they apply."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from plangate import Budget, PlanStep, Profile, ProfileError, load_profile
from plangate.actions import ToolDeclaration, step_policy
from plangate.plan import Action
from plangate.profiles import BUILTIN_PROFILES

# --- built-ins -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "approvals", "budget", "redact"),
    [
        ("enterprise", {"propose", "execute"}, (20, 10, 5), True),
        ("smb", {"execute"}, (50, 25, 15), True),
        ("technical", set(), (10000, 5000, 5000), False),
    ],
)
def test_builtins_match_the_profiles_page_table(
    name: str, approvals: set[str], budget: tuple[int, int, int], redact: bool
) -> None:
    """Each built-in has the approvals, budget tiers and redaction the table of the Profiles page
    (docs/concepts/profiles.md) lists."""
    profile = load_profile(name)
    assert profile.name == name
    assert set(profile.require_approval) == approvals
    assert (
        profile.budget.total_calls,
        profile.budget.calls_per_domain,
        profile.budget.calls_per_tool,
    ) == budget
    assert profile.redact is redact


def test_builtin_names_are_the_three_documented_ones() -> None:
    """`BUILTIN_PROFILES` lists exactly enterprise, smb and technical."""
    assert set(BUILTIN_PROFILES) == {"enterprise", "smb", "technical"}


@pytest.mark.parametrize("name", BUILTIN_PROFILES)
def test_builtins_allow_everything_and_wait_a_day(name: str) -> None:
    """Built-ins allow every tool and keep approval requests valid for 24 hours."""
    profile = load_profile(name)
    assert profile.allows("anything.at_all")
    assert profile.approval_timeout == timedelta(hours=24)


@pytest.mark.parametrize(
    ("name", "action", "waits"),
    [
        ("enterprise", "read", False),
        ("enterprise", "propose", True),
        ("enterprise", "execute", True),
        ("smb", "read", False),
        ("smb", "propose", False),
        ("smb", "execute", True),
        ("technical", "execute", False),
    ],
)
def test_builtin_approval_gates(name: str, action: Action, waits: bool) -> None:
    """`needs_approval` follows each built-in's `require_approval` list."""
    assert load_profile(name).needs_approval("crm.update", action, irreversible=False) is waits


def test_builtin_loads_are_independent() -> None:
    """Two loads of a built-in are equal but separate: changing one leaves the next alone."""
    first = load_profile("smb")
    first.require_approval.append("read")
    assert load_profile("smb").require_approval == ["execute"]


# --- load_profile inputs -------------------------------------------------------------------------


def test_load_profile_returns_a_profile_as_is() -> None:
    """A `Profile` passed in is returned as the same object."""
    profile = Profile(name="mine", redact=False)
    assert load_profile(profile) is profile


def test_an_empty_file_is_the_default_profile(tmp_path: Path) -> None:
    """A profile file with nothing in it loads as `Profile()`, since every field is optional."""
    path = tmp_path / "blank.yaml"
    path.write_text("# nothing set yet\n", encoding="utf-8")
    assert load_profile(path) == Profile()


def test_defaults_of_an_empty_mapping(tmp_path: Path) -> None:
    """Every field is optional: `{}` is a profile with no limits that allows everything."""
    path = tmp_path / "empty.yaml"
    path.write_text("{}\n", encoding="utf-8")
    profile = load_profile(path)
    assert profile == Profile()
    assert profile.budget.total_calls is None
    assert profile.allows("any.tool")
    assert profile.require_approval == []
    assert profile.redact is True


def custom_profile() -> Profile:
    return Profile(
        name="finance-team",
        description="Finance",
        budget=Budget(total_calls=30, calls_per_domain=10, calls_per_tool=5, warning_threshold=0.7),
        require_approval=["execute"],
        approval_required_tools=["crm.delete*"],
        approval_timeout_seconds=3600,
        allowed_tools=["crm.*", "email.*"],
        irreversible_tools=["email.send"],
        sensitive_domains=["payments"],
        on_error="halt",
        on_reject="halt",
        on_expiry="skip",
        redact=False,
    )


@pytest.mark.parametrize(
    "profile", [custom_profile(), load_profile("enterprise")], ids=["custom", "enterprise"]
)
def test_model_dump_round_trips_through_yaml(tmp_path: Path, profile: Profile) -> None:
    """`model_dump(mode="json")` written as YAML loads back equal."""
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(profile.model_dump(mode="json")), encoding="utf-8")
    assert load_profile(path) == profile


@pytest.mark.parametrize(
    "profile", [custom_profile(), load_profile("technical")], ids=["custom", "technical"]
)
def test_model_dump_round_trips_through_json(tmp_path: Path, profile: Profile) -> None:
    """`model_dump(mode="json")` written as JSON loads back equal, from a `str` path too."""
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile.model_dump(mode="json"), indent=2), encoding="utf-8")
    assert load_profile(str(path)) == profile


def test_an_example_profile_loads(tmp_path: Path) -> None:
    """A profile file of the fields the Profiles page shows loads with the values it states."""
    path = tmp_path / "finance.yaml"
    path.write_text(
        """\
name: finance-team
budget:
  total_calls: 30
  calls_per_domain: 10
  calls_per_tool: 5
  warning_threshold: 0.8
require_approval: [execute]
approval_required_tools: ["crm.delete*"]
approval_timeout_seconds: 86400
allowed_tools: ["crm.*", "email.*"]
irreversible_tools: ["email.send"]
sensitive_domains: [payments]
on_error: continue
on_reject: skip
redact: true
""",
        encoding="utf-8",
    )
    profile = load_profile(path)
    assert profile.name == "finance-team"
    assert profile.budget == Budget(total_calls=30, calls_per_domain=10, calls_per_tool=5)
    assert profile.approval_required_tools == ["crm.delete*"]
    assert profile.allowed_tools == ["crm.*", "email.*"]


# --- errors --------------------------------------------------------------------------------------


def profile_error(tmp_path: Path, text: str, name: str = "p.yaml") -> ProfileError:
    """The `ProfileError` raised by loading a file holding `text`."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    return info.value


def test_bad_field_names_file_and_dotted_field(tmp_path: Path) -> None:
    """A non-integer `budget.total_calls` fails naming the file and the dotted field."""
    error = profile_error(tmp_path, "budget:\n  total_calls: lots\n")
    assert str(tmp_path / "p.yaml") in error.message
    assert "budget.total_calls" in error.message
    assert "valid integer" in error.message
    assert error.field == "budget.total_calls"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("budget:\n  total_calls: -1\n", "budget.total_calls"),
        ("budget:\n  warning_threshold: 1.5\n", "budget.warning_threshold"),
        ("budget:\n  warning_threshold: 0\n", "budget.warning_threshold"),
        ("require_approval: [delete]\n", "require_approval.0"),
        ("on_error: retry\n", "on_error"),
        ("on_reject: ignore\n", "on_reject"),
        ("on_expiry: retry\n", "on_expiry"),
        ("approval_timeout_seconds: 0\n", "approval_timeout_seconds"),
        ("allowed_tools: crm.*\n", "allowed_tools"),
    ],
)
def test_out_of_range_values_name_their_field(tmp_path: Path, text: str, field: str) -> None:
    """Values outside a field's range fail naming that field in `.field` and the message."""
    error = profile_error(tmp_path, text)
    assert error.field == field
    assert f": {field}: " in error.message


def test_unknown_key_is_rejected_and_named(tmp_path: Path) -> None:
    """A key the profile does not have (a typo) fails naming that key."""
    error = profile_error(tmp_path, "redcat: true\n")
    assert error.field == "redcat"
    assert "redcat" in error.message


def test_unknown_budget_key_is_rejected_and_named(tmp_path: Path) -> None:
    """A typo inside `budget` fails with the dotted path of the unknown key."""
    error = profile_error(tmp_path, "budget:\n  total: 3\n")
    assert error.field == "budget.total"


def test_json_file_errors_name_the_field(tmp_path: Path) -> None:
    """JSON files get the same field-naming errors as YAML files."""
    error = profile_error(tmp_path, json.dumps({"budget": {"calls_per_tool": "x"}}), "p.json")
    assert error.field == "budget.calls_per_tool"
    assert "p.json" in error.message


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    """A file that is not valid YAML fails naming the file."""
    error = profile_error(tmp_path, "budget: {total_calls: [\n")
    assert "p.yaml" in error.message
    assert "not valid YAML" in error.message


def test_file_that_is_not_a_mapping_is_rejected(tmp_path: Path) -> None:
    """A YAML list is not a profile: the error names the file and asks for a mapping."""
    error = profile_error(tmp_path, "- execute\n- propose\n")
    assert "p.yaml" in error.message
    assert "mapping" in error.message


def test_unknown_profile_name_lists_the_builtins() -> None:
    """A name that is neither a built-in nor a file fails, and the hint lists the built-ins."""
    with pytest.raises(ProfileError) as info:
        load_profile("startup")
    assert "'startup'" in info.value.message
    assert info.value.hint is not None
    for name in BUILTIN_PROFILES:
        assert name in info.value.hint


def test_missing_profile_file_fails(tmp_path: Path) -> None:
    """A path to a file that does not exist fails with a `ProfileError` naming it."""
    path = tmp_path / "missing.yaml"
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    assert str(path) in info.value.message


# --- rules ---------------------------------------------------------------------------------------


def test_allows_follows_the_glob_allowlist() -> None:
    """Only tools matching an `allowed_tools` glob are allowed; matching is case-sensitive."""
    profile = custom_profile()
    assert profile.allows("crm.lookup")
    assert profile.allows("email.send")
    assert not profile.allows("payments.refund")
    assert not profile.allows("CRM.lookup")
    assert not profile.allows("crm")


def test_empty_allowlist_allows_nothing() -> None:
    """`allowed_tools: []` blocks every tool."""
    assert not Profile(allowed_tools=[]).allows("crm.lookup")


def test_needs_approval_by_action() -> None:
    """Actions in `require_approval` wait; others do not, for tools outside the tool globs."""
    profile = custom_profile()
    assert profile.needs_approval("crm.update", "execute", irreversible=False)
    assert not profile.needs_approval("crm.update", "propose", irreversible=False)
    assert not profile.needs_approval("crm.lookup", "read", irreversible=False)


def test_approval_required_tools_wait_whatever_the_action() -> None:
    """A tool matching `approval_required_tools` waits even for a read."""
    profile = custom_profile()
    assert profile.needs_approval("crm.delete_account", "read", irreversible=False)
    assert profile.needs_approval("crm.delete", "propose", irreversible=False)
    assert not profile.needs_approval("email.delete_draft", "read", irreversible=False)


@pytest.mark.parametrize("name", ["enterprise", "smb", "technical"])
def test_an_irreversible_call_waits_under_every_builtin_unless_the_tool_is_named_exempt(
    name: str,
) -> None:
    profile = load_profile(name)
    assert profile.needs_approval("crm.update", "read", irreversible=True)
    exempt = profile.model_copy(update={"irreversible_exempt": ["crm.update"]})
    assert not exempt.needs_approval("crm.update", "read", irreversible=True)
    assert exempt.needs_approval("crm.updater", "read", irreversible=True)


def test_approval_required_tools_work_without_action_gates() -> None:
    """Under a profile that gates no action, only the globbed tools wait."""
    profile = Profile(approval_required_tools=["payments.*"])
    assert profile.needs_approval("payments.refund", "read", irreversible=False)
    assert not profile.needs_approval("crm.update", "execute", irreversible=False)


@pytest.mark.parametrize(
    ("action", "irreversible", "domain", "risk"),
    [
        ("read", False, "crm", "low"),
        ("propose", False, "email", "low"),
        ("execute", False, "crm", "medium"),
        ("read", True, "email", "medium"),
        ("execute", True, "email", "high"),
        ("read", False, "payments", "medium"),
        ("execute", False, "payments", "high"),
        ("propose", True, "payments", "high"),
        ("execute", True, "payments", "high"),
    ],
)
def test_risk_levels(action: Action, irreversible: bool, domain: str, risk: str) -> None:
    """read/propose start low, execute medium; irreversible and sensitive each add one, capped."""
    assert custom_profile().risk(action, irreversible=irreversible, domains=[domain]) == risk


def test_any_sensitive_domain_adds_a_level() -> None:
    """A call is in a sensitive domain when any of its domains is (the tool's own prefix and the
    step's `domain`, which only code governing calls itself sets): another domain cannot take
    the sensitivity away."""
    profile = custom_profile()
    assert profile.risk("execute", irreversible=False, domains=["crm", "payments"]) == "high"
    assert profile.risk("read", irreversible=False, domains=["crm", ""]) == "low"
    trusted = ToolDeclaration(action="read", irreversible=False, source="tool")
    quote = PlanStep(id="q", tool="payments.quote", domain="crm")
    assert step_policy(quote, trusted, profile).risk == "medium"


@pytest.mark.parametrize(
    ("name", "tool", "action", "domain", "risk"),
    [
        ("smb", "email.send", "execute", "email", "high"),
        ("smb", "crm.delete_account", "execute", "crm", "high"),
        ("smb", "billing.lookup", "read", "billing", "medium"),
        ("technical", "billing.lookup", "read", "billing", "low"),
        ("enterprise", "crm.update_opportunity", "execute", "crm", "medium"),
    ],
)
def test_builtin_risk(name: str, tool: str, action: Action, domain: str, risk: str) -> None:
    """Built-ins mark email.send and deletes irreversible and payments/billing sensitive."""
    profile = load_profile(name)
    irreversible = profile.is_irreversible(tool)
    assert profile.risk(action, irreversible=irreversible, domains=[domain]) == risk


def test_is_irreversible_uses_globs() -> None:
    """`is_irreversible` matches `irreversible_tools` globs exactly, not by prefix."""
    profile = load_profile("smb")
    assert profile.is_irreversible("email.send")
    assert profile.is_irreversible("crm.delete_account")
    assert not profile.is_irreversible("email.send_later")
    assert not profile.is_irreversible("email.draft")


def test_profile_dump_is_plain_json() -> None:
    """`model_dump(mode="json")` is JSON-serialisable as is."""
    dumped: dict[str, Any] = custom_profile().model_dump(mode="json")
    assert json.loads(json.dumps(dumped)) == dumped
    assert dumped["budget"]["total_calls"] == 30
