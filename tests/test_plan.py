"""Plans: step defaults, strict fields, reading files, and the checks that name the culprit."""

from __future__ import annotations

import json
import random
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from plangate import Plan, PlanStep, PlanValidationError
from plangate.plan import MAX_DEPTH, MAX_NAME_CHARS, MAX_STEPS, MAX_STRING_CHARS, parse_plan


def ids(plan: Plan) -> list[str]:
    return [step.id for step in plan.steps]


def rejected(data: Any) -> PlanValidationError:
    """The `PlanValidationError` that `parse_plan(data)` raises."""
    with pytest.raises(PlanValidationError) as info:
        parse_plan(data)
    return info.value


# --- PlanStep defaults ---------------------------------------------------------------------------


def test_ids_default_to_their_one_based_position() -> None:
    """Steps without an id get `step-<n>`; an explicit id is kept and does not shift the count."""
    plan = parse_plan(
        [{"tool": "crm.lookup"}, {"id": "send", "tool": "email.send"}, {"tool": "x.y"}]
    )
    assert ids(plan) == ["step-1", "send", "step-3"]


def test_steps_built_without_ids_are_named_by_position_in_the_plan() -> None:
    """`PlanStep` objects made without an id get `step-<n>` when a plan holds them."""
    plan = Plan(goal="g", steps=[PlanStep(tool="crm.a"), PlanStep(id="x", tool="crm.b")])
    assert [step.id for step in plan.steps] == ["step-1", "x"]


def test_empty_id_counts_as_missing() -> None:
    """An empty-string id is replaced by the positional default, not kept as `''`."""
    plan = parse_plan([{"id": "", "tool": "crm.lookup"}])
    assert ids(plan) == ["step-1"]


def test_action_defaults_to_none_and_collections_to_empty() -> None:
    """A bare step says nothing of its action (the tool's trusted action applies), and has no
    args, no dependencies, no description and no metadata."""
    step = PlanStep(id="a", tool="crm.lookup")
    assert step.action is None
    assert step.args == {}
    assert step.depends_on == []
    assert step.description == ""
    assert step.metadata == {}


def test_default_args_are_not_shared_between_steps() -> None:
    """Each step gets its own args dict, so changing one step's args leaves another's alone."""
    first, second = PlanStep(id="a", tool="x.y"), PlanStep(id="b", tool="x.y")
    first.args["k"] = 1
    assert second.args == {}


@pytest.mark.parametrize(
    ("tool", "domain"),
    [("crm.lookup", "crm"), ("crm.accounts.lookup", "crm"), ("search", "search")],
)
def test_domain_defaults_to_the_tool_prefix(tool: str, domain: str) -> None:
    """Without a domain, the part of the tool name before the first `.` is the domain."""
    assert PlanStep(id="a", tool=tool).domain == domain


def test_a_plan_cannot_choose_its_steps_domains() -> None:
    """Inside a plan, a step's domain is its tool's, whatever the plan says in `domain` or
    `metadata.domain`: a made-up domain would open a fresh per-domain budget."""
    plan = parse_plan(
        [
            {"tool": "crm.lookup", "domain": "billing"},
            {"tool": "crm.lookup", "metadata": {"domain": "sales"}},
        ]
    )
    assert [step.domain for step in plan.steps] == ["crm", "crm"]
    assert plan.steps[1].metadata == {"domain": "sales"}  # carried along, not used


def test_code_that_governs_calls_itself_may_set_a_domain() -> None:
    """A step built by trusted code (the middleware's `domains`) keeps the domain it is given."""
    assert PlanStep(id="a", tool="crm_lookup", domain="crm").domain == "crm"


def test_domain_default_applies_inside_a_plan() -> None:
    """Steps parsed as part of a plan get the same domain default as standalone steps."""
    plan = parse_plan({"goal": "g", "steps": [{"tool": "email.send", "action": "execute"}]})
    assert plan.steps[0].domain == "email"
    assert plan.steps[0].action == "execute"
    assert plan.goal == "g"


# --- strict fields -------------------------------------------------------------------------------


def test_unknown_step_key_is_rejected_and_named() -> None:
    """An extra key on a step fails, naming the key and the step it is on."""
    error = rejected([{"id": "lookup", "tool": "crm.lookup", "arguments": {"a": 1}}])
    assert "arguments" in error.message
    assert "'lookup'" in error.message
    assert error.step_id == "lookup"


def test_tool_name_instead_of_tool_is_rejected_and_named() -> None:
    """A step spelling `tool` as `tool_name` fails with a message that names `tool_name`."""
    error = rejected([{"id": "lookup", "tool_name": "crm.lookup"}])
    assert error.step_id == "lookup"
    assert "tool_name" in error.message


def test_standalone_step_rejects_unknown_keys() -> None:
    """`PlanStep` itself forbids extra fields (pydantic's own error, outside `parse_plan`)."""
    with pytest.raises(ValueError, match="tool_name"):
        PlanStep.model_validate({"id": "a", "tool": "x.y", "tool_name": "x.y"})


def test_unknown_plan_key_is_rejected_and_named() -> None:
    """An extra top-level key fails naming that key and no step."""
    error = rejected({"goal": "g", "steps": [{"tool": "x.y"}], "budget": 3})
    assert "budget" in error.message
    assert error.step_id is None


def test_bad_action_names_the_step_and_field() -> None:
    """An action outside read/propose/execute fails naming the step and `action`."""
    error = rejected([{"tool": "x.y"}, {"id": "send", "tool": "email.send", "action": "delete"}])
    assert error.step_id == "send"
    assert "'send'" in error.message
    assert "action" in error.message


def test_error_on_unnamed_step_uses_its_positional_id() -> None:
    """A bad step without an id is named by its default id `step-<n>`."""
    error = rejected([{"tool": "x.y"}, {"tool": "x.y", "args": "not a mapping"}])
    assert error.step_id == "step-2"
    assert "step-2" in error.message
    assert "args" in error.message


# --- parse_plan inputs ---------------------------------------------------------------------------


def test_parse_plan_accepts_a_list_of_steps() -> None:
    """A bare list is a plan with those steps and an empty goal."""
    plan = parse_plan([{"id": "a", "tool": "x.y"}, {"id": "b", "tool": "x.z"}])
    assert ids(plan) == ["a", "b"]
    assert plan.goal == ""


def test_parse_plan_returns_a_plan_unchanged() -> None:
    """A `Plan` passes through as the same object."""
    plan = Plan.model_validate({"steps": [{"tool": "x.y"}]})
    assert parse_plan(plan) is plan


def test_parse_plan_rejects_a_non_mapping() -> None:
    """A string is neither a mapping nor a list: the error says what was given."""
    error = rejected("crm.lookup")
    assert "mapping" in error.message
    assert "str" in error.message


@pytest.mark.parametrize("data", [[], {"goal": "g", "steps": []}])
def test_empty_steps_are_rejected(data: Any) -> None:
    """A plan needs at least one step; the error names `steps`."""
    error = rejected(data)
    assert "steps" in error.message


def test_missing_steps_are_rejected() -> None:
    """A mapping without `steps` fails naming `steps`."""
    assert "steps" in rejected({"goal": "g"}).message


def test_source_prefixes_the_message() -> None:
    """`parse_plan(..., source=...)` puts the source at the start of the message."""
    with pytest.raises(PlanValidationError) as info:
        parse_plan([{"id": "a", "tool": "x.y", "depends_on": ["zz"]}], source="plan file 'p.yaml'")
    assert info.value.message.startswith("plan file 'p.yaml': ")


# --- dependency checks ---------------------------------------------------------------------------


def test_duplicate_ids_name_the_step() -> None:
    """Two steps with the same id fail naming that id."""
    error = rejected(
        [{"id": "a", "tool": "x.y"}, {"id": "b", "tool": "x.y"}, {"id": "a", "tool": "x.z"}]
    )
    assert error.step_id == "a"
    assert "'a'" in error.message
    assert "duplicate" in error.message


def test_explicit_id_colliding_with_a_default_id_is_a_duplicate() -> None:
    """An explicit `step-1` on the second step collides with the first step's default id."""
    error = rejected([{"tool": "x.y"}, {"id": "step-1", "tool": "x.z"}])
    assert error.step_id == "step-1"
    assert "duplicate" in error.message


def test_unknown_dependency_names_the_step_and_the_missing_id() -> None:
    """A `depends_on` id that no step has fails naming the dependent step and the unknown id."""
    error = rejected([{"id": "a", "tool": "x.y"}, {"id": "b", "tool": "x.y", "depends_on": ["zz"]}])
    assert error.step_id == "b"
    assert "'b'" in error.message
    assert "'zz'" in error.message


def test_self_dependency_names_the_step() -> None:
    """A step that depends on itself fails naming itself."""
    error = rejected(
        [{"id": "a", "tool": "x.y"}, {"id": "loop", "tool": "x.y", "depends_on": ["loop"]}]
    )
    assert error.step_id == "loop"
    assert "'loop'" in error.message
    assert "itself" in error.message


def test_two_step_cycle_names_a_step_in_it() -> None:
    """`a -> b -> a` fails with a cycle error whose step id is one of the two."""
    error = rejected(
        [
            {"id": "a", "tool": "x.y", "depends_on": ["b"]},
            {"id": "b", "tool": "x.y", "depends_on": ["a"]},
        ]
    )
    assert error.step_id in {"a", "b"}
    assert f"'{error.step_id}'" in error.message
    assert "cycle" in error.message


def test_cycle_error_ignores_steps_before_it() -> None:
    """Steps ahead of a three-step cycle are not blamed; the named step is in the cycle."""
    error = rejected(
        [
            {"id": "ok", "tool": "x.y"},
            {"id": "a", "tool": "x.y", "depends_on": ["c"]},
            {"id": "b", "tool": "x.y", "depends_on": ["a"]},
            {"id": "c", "tool": "x.y", "depends_on": ["b"]},
        ]
    )
    assert error.step_id in {"a", "b", "c"}
    assert "cycle" in error.message
    assert "'ok'" not in error.message


def test_cycle_error_names_a_cycle_member_not_a_step_waiting_on_it() -> None:
    """A step that only depends on a cycle is not in it: the error names a step of the cycle."""
    error = rejected(
        [
            {"id": "report", "tool": "x.y", "depends_on": ["a"]},
            {"id": "a", "tool": "x.y", "depends_on": ["b"]},
            {"id": "b", "tool": "x.y", "depends_on": ["a"]},
        ]
    )
    assert error.step_id in {"a", "b"}
    assert "cycle" in error.message


# --- ordering ------------------------------------------------------------------------------------


def test_order_is_kept_when_dependencies_come_first() -> None:
    """A plan already in dependency order runs in list order."""
    plan = parse_plan(
        [
            {"id": "a", "tool": "x.y"},
            {"id": "b", "tool": "x.y", "depends_on": ["a"]},
            {"id": "c", "tool": "x.y"},
        ]
    )
    assert ids(plan) == ["a", "b", "c"]


def test_step_listed_before_its_dependency_is_moved_after_it() -> None:
    """`a` depends on `b` but is listed first: `b` runs first, the rest keep their order."""
    plan = parse_plan(
        [
            {"id": "first", "tool": "x.y"},
            {"id": "a", "tool": "x.y", "depends_on": ["b"]},
            {"id": "b", "tool": "x.y"},
            {"id": "last", "tool": "x.y"},
        ]
    )
    assert ids(plan) == ["first", "b", "a", "last"]


def test_reordering_is_stable_for_independent_steps() -> None:
    """Only the steps that must move do; a chain listed backwards comes out forwards."""
    plan = parse_plan(
        [
            {"id": "c", "tool": "x.y", "depends_on": ["b"]},
            {"id": "x", "tool": "x.y"},
            {"id": "b", "tool": "x.y", "depends_on": ["a"]},
            {"id": "a", "tool": "x.y"},
            {"id": "y", "tool": "x.y"},
        ]
    )
    assert ids(plan) == ["x", "a", "b", "c", "y"]


# --- files ---------------------------------------------------------------------------------------


PLAN_DATA: dict[str, Any] = {
    "goal": "Follow up with Acme",
    "steps": [
        {"id": "send", "tool": "email.send", "action": "execute", "depends_on": ["lookup"]},
        {"id": "lookup", "tool": "crm.lookup_account", "args": {"account": "acme"}},
    ],
}


def test_from_file_reads_yaml(tmp_path: Path) -> None:
    """A YAML plan file loads with its goal, args, actions, domains and dependency order."""
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(PLAN_DATA), encoding="utf-8")
    plan = Plan.from_file(path)
    assert plan.goal == "Follow up with Acme"
    assert ids(plan) == ["lookup", "send"]
    assert plan.steps[0].args == {"account": "acme"}
    assert plan.steps[0].domain == "crm"
    assert plan.steps[1].action == "execute"


def test_from_file_reads_json(tmp_path: Path) -> None:
    """A JSON plan file (given as a `str` path) loads the same plan as the YAML one."""
    yaml_path, json_path = tmp_path / "plan.yaml", tmp_path / "plan.json"
    yaml_path.write_text(yaml.safe_dump(PLAN_DATA), encoding="utf-8")
    json_path.write_text(json.dumps(PLAN_DATA, indent=2), encoding="utf-8")
    assert Plan.from_file(str(json_path)) == Plan.from_file(yaml_path)


def test_from_file_accepts_a_list_of_steps(tmp_path: Path) -> None:
    """A file holding just a list of steps is a plan, as with `parse_plan`."""
    path = tmp_path / "steps.yaml"
    path.write_text(
        "- tool: crm.lookup\n- tool: email.draft\n  action: propose\n", encoding="utf-8"
    )
    plan = Plan.from_file(path)
    assert ids(plan) == ["step-1", "step-2"]
    assert plan.steps[1].action == "propose"


def test_from_file_missing_file_names_it(tmp_path: Path) -> None:
    """A path that does not exist fails with a `PlanValidationError` naming the file."""
    path = tmp_path / "nope.yaml"
    with pytest.raises(PlanValidationError) as info:
        Plan.from_file(path)
    assert str(path) in info.value.message
    assert "does not exist" in info.value.message


def test_from_file_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    """Broken YAML fails naming the file and the line of the problem."""
    path = tmp_path / "broken.yaml"
    path.write_text("goal: g\nsteps:\n  - tool: [crm.lookup\n", encoding="utf-8")
    with pytest.raises(PlanValidationError) as info:
        Plan.from_file(path)
    assert str(path) in info.value.message
    assert "not valid YAML" in info.value.message
    assert "line" in info.value.message


def test_from_file_not_a_mapping_names_file(tmp_path: Path) -> None:
    """A file holding a scalar is not a plan: the error names the file and wants a mapping."""
    path = tmp_path / "scalar.yaml"
    path.write_text("just some text\n", encoding="utf-8")
    with pytest.raises(PlanValidationError) as info:
        Plan.from_file(path)
    assert str(path) in info.value.message
    assert "mapping" in info.value.message


def test_from_file_invalid_plan_names_file_and_step(tmp_path: Path) -> None:
    """A well-formed file with a bad step names both the file and the step."""
    path = tmp_path / "plan.yaml"
    path.write_text(
        "steps:\n  - id: a\n    tool: x.y\n    depends_on: [ghost]\n",
        encoding="utf-8",
    )
    with pytest.raises(PlanValidationError) as info:
        Plan.from_file(path)
    assert str(path) in info.value.message
    assert "'ghost'" in info.value.message
    assert info.value.step_id == "a"


def reference_order(steps: list[dict[str, Any]]) -> list[str]:
    """The documented order, computed the plain way: again and again, place the first step in
    list order whose dependencies are all placed."""
    remaining, placed = list(steps), []
    while remaining:
        ready = next(s for s in remaining if set(s.get("depends_on", [])) <= set(placed))
        placed.append(ready["id"])
        remaining.remove(ready)
    return placed


def test_order_matches_the_documented_rule_on_random_plans() -> None:
    """On hundreds of random acyclic plans (dependencies listed before and after, repeated ids
    in `depends_on`, independent steps in between), the order is exactly the documented one."""
    rng = random.Random(20260105)
    for _ in range(300):
        size = rng.randint(1, 30)
        rank = list(range(size))
        rng.shuffle(rank)  # a hidden order that keeps the dependencies acyclic
        steps = []
        for n in range(size):
            earlier = [m for m in range(size) if rank[m] < rank[n]]
            deps = rng.sample(earlier, k=min(len(earlier), rng.randint(0, 3)))
            steps.append({"id": f"s{n}", "tool": "x.y", "depends_on": [f"s{m}" for m in deps * 2]})
        assert ids(parse_plan(steps)) == reference_order(steps)


def chain(size: int, *, reverse: bool) -> list[dict[str, Any]]:
    """`size` steps, each depending on the one before it, listed forwards or backwards."""
    steps = [
        {"id": f"s{n}", "tool": "x.y", "depends_on": [f"s{n - 1}"] if n else []}
        for n in range(size)
    ]
    return steps[::-1] if reverse else steps


def test_ordering_a_long_plan_listed_backwards_takes_linear_time() -> None:
    """10,000 steps each listed before the step it depends on: every step must move. Rescanning
    the steps left for each placement took about a minute; the order now takes milliseconds
    (the bound leaves room for a slow machine)."""
    steps = chain(10_000, reverse=True)
    started = time.perf_counter()
    plan = parse_plan(steps)
    elapsed = time.perf_counter() - started
    assert ids(plan) == [f"s{n}" for n in range(10_000)]
    assert elapsed < 5.0, f"{elapsed:.1f} s"


def test_a_cycle_at_the_end_of_a_long_plan_names_a_step_in_it() -> None:
    """Behind 9,000 steps listed backwards, a three-step cycle is still found, and named."""
    steps = [
        *chain(9_000, reverse=True),
        {"id": "a", "tool": "x.y", "depends_on": ["c", "s0"]},
        {"id": "b", "tool": "x.y", "depends_on": ["a"]},
        {"id": "c", "tool": "x.y", "depends_on": ["b"]},
        {"id": "after", "tool": "x.y", "depends_on": ["a"]},
    ]
    started = time.perf_counter()
    error = rejected(steps)
    assert time.perf_counter() - started < 5.0
    assert error.step_id in {"a", "b", "c"}
    assert "cycle" in error.message
    assert "'after'" not in error.message


# --- plain JSON and limits -----------------------------------------------------------------------


def test_limits_are_inclusive() -> None:
    """A plan exactly at every limit is accepted: `MAX_STEPS` steps, a name of `MAX_NAME_CHARS`,
    a string of `MAX_STRING_CHARS`, args nested `MAX_DEPTH` deep."""
    deep: Any = 1
    for _ in range(MAX_DEPTH):
        deep = [deep]
    steps: list[dict[str, Any]] = [{"tool": "x.y"} for _ in range(MAX_STEPS - 1)]
    steps.append(
        {
            "id": "i" * MAX_NAME_CHARS,
            "tool": "x.y",
            "args": {"body": "b" * MAX_STRING_CHARS, "deep": deep},
        }
    )
    plan = parse_plan(steps)
    assert len(plan.steps) == MAX_STEPS
    assert plan.steps[-1].args["body"] == "b" * MAX_STRING_CHARS


def test_one_level_deeper_than_the_limit_is_refused() -> None:
    """`MAX_DEPTH` + 1 nested lists below `args`: refused at the path to the deepest one."""
    deep: Any = 1
    for _ in range(MAX_DEPTH + 1):
        deep = [deep]
    error = rejected([{"id": "d", "tool": "x.y", "args": {"deep": deep}}])
    assert error.step_id == "d"
    assert "field 'args.deep" + ".0" * MAX_DEPTH + "'" in error.message
    assert f"more than {MAX_DEPTH} deep" in error.message


def test_a_step_object_changed_after_it_was_made_is_checked_in_the_plan() -> None:
    """`PlanStep` objects are not validated again when a plan holds them, but their args are a
    mutable dict: the plan checks them itself, naming the step and the path."""
    step = PlanStep(id="send", tool="email.send", args={"meta": {}})
    step.args["meta"]["when"] = datetime.now(timezone.utc)
    error = rejected({"steps": [{"tool": "crm.lookup"}, step]})
    assert error.step_id == "send"
    assert "field 'args.meta.when'" in error.message
    assert "ISO 8601" in error.message


def test_a_long_or_odd_key_is_shown_short_and_on_one_line() -> None:
    """An error path shows each key in at most 40 characters, unprintable ones as `?`."""
    key = "line\nbreak" + "k" * 100
    error = rejected([{"id": "s", "tool": "x.y", "args": {key: {"when": b"x"}}}])
    assert "\n" not in error.message
    assert "line?break" + "k" * 30 + "….when" in error.message


def test_a_plan_at_the_limits_validates_again_from_its_state() -> None:
    """What a plan keeps in graph state validates again as it is: every node that reads a step
    back validates it, and must never refuse what was admitted."""
    plan = parse_plan(
        [
            {"tool": "x.y", "metadata": {"domain": "d" * MAX_NAME_CHARS}},
            {"tool": "x.y", "args": {"n": 2**63 - 1, "f": -1e308, "body": "b" * MAX_STRING_CHARS}},
        ]
    )
    again = parse_plan(plan.to_input())
    assert again == plan
    assert Plan.from_state(plan.to_state()).steps == plan.steps
    # A run stored before steps were kept as JSON text reads back alike.
    assert Plan.from_state(plan.to_input()).steps == plan.steps
