"""Approval requests and the human decisions that answer them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.tools import BaseTool
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from plangate._files import dotted, refused_decision
from plangate._names import same_person_key
from plangate.adapters._json_schema import JSONSchemaArguments
from plangate.errors import InvalidDecision, PlanValidationError
from plangate.hitl import from_langchain, is_langchain
from plangate.identity._identity import identity_from, is_verified, same_person, unverified
from plangate.plan import (
    MAX_NAME_CHARS,
    MAX_PLAN_SIZE,
    MAX_STRING_CHARS,
    MAX_TEXT_CHARS,
    PlanStep,
    parse_plan,
    plain_json_size,
)
from plangate.tracing import REDACTION_MARKER

if TYPE_CHECKING:
    from plangate.actions import StepPolicy
    from plangate.identity._gate import DecisionGate

__all__ = (
    "Decision",
    "approval_digest",
    "approvals_problem",
    "args_problem",
    "consequence_of",
    "parse_decision",
    "response_schema",
    "same_person_key",
)

DECISIONS = ("approve", "edit", "reject", "respond")


class Decision(BaseModel):
    """A human's answer to an approval request; resume with `Command(resume=Decision(...))`.

    Attributes:
        decision: `approve`, `edit` (run with new `args`), `reject` (with a `reason`), or
            `respond` (answer with `message` in the tool's place; the tool does not run).
        args: The replacement arguments; required for `edit`, not allowed otherwise. Plain
            JSON within a plan's limits, as a step's args (`plangate.plan.plain_json_size`).
        message: The answer given instead of the tool's output; required for `respond`. At
            most `MAX_STRING_CHARS` (1,000,000) characters.
        reason: Why; recorded in the approval record and the trace. At most `MAX_TEXT_CHARS`
            (10,000) characters.
        approver: Who decided; recorded in the approval record as given. A blank name (only
            whitespace, control or format characters) is no name: the decision is anonymous.
            At most `MAX_NAME_CHARS` (256) characters, as are `request_id` and `digest`.
        request_id: The `request_id` of the request decided. Given, the decision answers that
            request only: if it is no longer pending, the decision is refused
            (`StaleDecision`). Left out, the decision answers whatever request is pending.
        digest: The `digest` of the request decided (tool, args, action, risk, profile).
            Given and not the pending request's, the decision is refused (`InvalidDecision`):
            it was about something else.
        identity: Who decided, as a door that authenticated them says (`plangate.identity.
            Identity`); it counts only with a `proof` the graph checks, else the decision is
            the `approver` it names, `unverified`.
        proof: The door's proof (`plangate.identity.DecisionSigner`) that `identity` made
            this decision on this request.

    Examples:
        >>> Decision(decision="edit", args={"to": "ana@example.com"}, approver="lee").decision
        'edit'
    """

    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "edit", "reject", "respond"]
    # validate_default: the checks below must also run when the field is left out, so that a
    # missing `args` or `message` is reported at its own location.
    args: dict[str, Any] | None = Field(default=None, validate_default=True)
    message: str | None = Field(default=None, validate_default=True, max_length=MAX_STRING_CHARS)
    reason: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    approver: str | None = Field(default=None, max_length=MAX_NAME_CHARS)
    request_id: str | None = Field(default=None, max_length=MAX_NAME_CHARS)
    digest: str | None = Field(default=None, max_length=MAX_NAME_CHARS)
    identity: dict[str, Any] | None = None
    proof: str | None = Field(default=None, max_length=MAX_NAME_CHARS)

    @field_validator("identity")
    @classmethod
    def _an_identity(cls, identity: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if identity is None else dict(identity_from(identity, where="identity"))

    @field_validator("args")
    @classmethod
    def _args_only_for_edit(
        cls, args: dict[str, Any] | None, info: ValidationInfo
    ) -> dict[str, Any] | None:
        decision = info.data.get("decision")
        if decision == "edit" and args is None:
            raise ValueError("an 'edit' decision needs 'args', the step's new arguments")
        if decision not in (None, "edit") and args is not None:
            raise ValueError(f"'args' is only for 'edit' decisions, not {decision!r}")
        # The edited args go into the run's checkpoints and on to the tool, as a plan's do: the
        # same rules apply, and an error names the path to the offending value.
        if args is not None and plain_json_size(args) > MAX_PLAN_SIZE:
            raise PydanticCustomError(
                "args_too_large",
                "{problem}",
                {
                    "problem": f"the args' size is over the limit of {MAX_PLAN_SIZE:,} (their "
                    "strings' lengths plus one for every other value): pass large content by "
                    "reference"
                },
            )
        return args

    @field_validator("approver")
    @classmethod
    def _blank_is_anonymous(cls, approver: str | None) -> str | None:
        # A name nobody can read must not pass for one: four eyes would count it as a person.
        return approver if same_person_key(approver) is not None else None

    @field_validator("message")
    @classmethod
    def _message_for_respond(cls, message: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("decision") == "respond" and not message:
            raise ValueError("a 'respond' decision needs 'message', the answer to give")
        return message


_HINT = (
    "send {'decision': 'approve'|'edit'|'reject'|'respond', ...}, or LangChain's HITL form "
    "{'decisions': [{'type': 'approve'}]} or its per-call form {'type': 'approve'}"
)


def parse_decision(
    value: Any,
    *,
    tool: BaseTool | None = None,
    request: Mapping[str, Any] | None = None,
    approver: str | None = None,
    gate: DecisionGate | None = None,
) -> Decision:
    """Validate a resume value (dict or `Decision`, or LangChain's HITL form
    `{"decisions": [...]}` or per-call form `{"type": ...}`, whose approver is `approver`) as
    the answer to `request`.

    Given a `gate` (the graph's: its profile and signing key), who decided is settled there
    (`DecisionGate.settle`: verified by a proof, or the typed name, `unverified`) and judged by
    the profile's rules before four eyes counts them.

    An `edit` is checked against the tool's argument schema (unknown keys included) and must
    not carry a redaction marker (`[REDACTED_EMAIL]`, ...) into the call that the request's own
    args did not hold there; a `digest` given must be the request's.

    Raises:
        InvalidDecision: The value is not a valid decision; the message names the field.
    """
    if is_langchain(value):
        if request is None:
            field = "decisions" if "decisions" in value else "type"
            raise InvalidDecision(
                f"invalid decision: {field}: a decision in LangChain's form answers a request, "
                "and none was given",
                field=field,
            )
        value = from_langchain(value, request, approver)
    if isinstance(value, Decision):
        decision = value
    elif isinstance(value, Mapping):
        try:
            decision = Decision.model_validate(dict(value))
        except ValidationError as exc:
            raise refused_decision(exc, default="decision", hint=_HINT) from None
    else:
        raise InvalidDecision(
            "invalid decision: expected a mapping or plangate.Decision, "
            f"got {type(value).__name__}",
            field="decision",
            hint=_HINT,
        )
    if request is not None and decision.digest not in (None, request.get("digest")):
        raise InvalidDecision(
            "invalid decision: digest: it is not the digest of the pending request, so the "
            "decision was about something else",
            field="digest",
            hint="read the pending request again and decide on what it shows",
        )
    if request is not None and request.get("type") == "plan_review":
        _check_review_decision(decision)
    if request is not None and gate is not None:
        decision = gate.settle(decision, request)
    refused = (
        approvals_problem(
            request, decision, verified_only=gate is not None and gate.signer is not None
        )
        if request is not None
        else None
    )
    if refused is not None:
        raise InvalidDecision(
            f"invalid decision: approver: {refused}",
            field="approver",
            hint="a second person decides with their own name",
        )
    if decision.decision == "edit":
        args = decision.args or {}
        if request is not None:
            _refuse_new_markers(args, request.get("args") or {})
        if tool is not None:
            problem = args_problem(tool, args)
            if problem is not None:
                field, message = problem
                raise InvalidDecision(
                    f"invalid edit for tool {tool.name!r}: {field}: {message}",
                    field=field,
                    hint=InvalidDecision.EDIT_HINT,
                )
    return decision


def _check_review_decision(decision: Decision) -> None:
    """A plan review takes `approve`, `reject`, or `edit` with a new plan that is valid."""
    if decision.decision == "respond":
        raise InvalidDecision(
            "invalid decision: decision: a plan review takes 'approve', 'edit' or 'reject'",
            field="decision",
            hint="edit sends a new plan in 'args'",
        )
    if decision.decision == "edit":
        try:
            parse_plan(decision.args)
        except PlanValidationError as exc:
            raise InvalidDecision(
                f"invalid decision: args: the new plan is not valid: {exc.message}",
                field="args",
                hint="send the whole new plan, {goal, steps}, as 'args'",
            ) from None


def approvals_problem(
    request: Mapping[str, Any], decision: Decision, *, verified_only: bool = False
) -> str | None:
    """Why `decision` cannot count towards a request that needs several approvals (profile
    `approvals_required`), or `None`: each `approve` or `edit` must come from a person who has
    not approved it yet. People are compared by every key they have, as a person reads them
    (`plangate.identity.same_person`): their subject, name and email, so `Lee`, `lee ` and
    `l\u0435e` (a Cyrillic e) are `lee` again, and one person through two doors is one. With
    `verified_only` (the project knows identities), only verified people count. A `reject` (or
    `respond`) needs no second person: it runs nothing."""
    needed = request.get("approvals_required", 1)
    if needed <= 1 or decision.decision not in ("approve", "edit"):
        return None
    identity = decision.identity or unverified(decision.approver)
    if same_person_key(decision.approver) is None and not is_verified(identity):
        return (
            f"this request needs {needed} approvals from different people: "
            "name the approver ('approver')"
        )
    if verified_only and not is_verified(identity):
        return (
            f"this request needs {needed} approvals from different verified people, and "
            f"{decision.approver!r} is unverified: decide through a door that knows you"
        )
    for given in request.get("approvals_so_far") or ():
        earlier = given.get("identity") or unverified(given["approver"])
        if same_person(earlier, identity):
            who = repr(decision.approver)
            if given["approver"] != decision.approver:
                who += f" reads as {given['approver']!r}, who"
            return f"{who} has approved this request already; it needs {needed} different approvers"
    return None


def _refuse_new_markers(edited: Mapping[str, Any], original: Any) -> None:
    """An edit must not send a redaction marker to the tool unless the original value at that
    place held it too: a marker there means the approver edited a redacted copy."""
    for path, text in _strings(edited, "args"):
        markers = set(REDACTION_MARKER.findall(text))
        if markers and not markers <= set(REDACTION_MARKER.findall(_at(original, path[5:]))):
            raise InvalidDecision(
                f"invalid decision: {path}: holds a redaction marker "
                f"({sorted(markers)[0]}); send the real value",
                field=path,
                hint="approval requests carry the real args: edit those, not a redacted copy",
            )


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """(dotted path, text) of every string in `value`, keys included."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(str(key), f"{path}.{key}")
            yield from _strings(item, f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}.{index}")


def _at(value: Any, path: str) -> str:
    """The text at dotted `path` in `value` (keys count as text at their own path), or ''."""
    for part in path.split(".") if path else ():
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, Mapping) and part in map(str, value):
            return part  # the key itself
        elif isinstance(value, (list, tuple)) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return ""
    return value if isinstance(value, str) else json.dumps(value, default=str)


def args_problem(
    tool: BaseTool, args: Mapping[str, Any], *, unknown_yet: Collection[str] = ()
) -> tuple[str, str] | None:
    """What `tool`'s argument schema refuses in `args`, or `None` when it takes them: (the
    first bad field, a message naming it and every other bad field after it), so that
    `f"{field}: {message}"` reads `args.mode: ...; args.path: ...`. An argument the schema
    does not name is refused whatever the schema says of extra ones: a key the tool would drop
    or pass on unseen is not what the approver approved.

    `unknown_yet` names arg paths whose values come from another step's output
    (`plangate.references.references_in`: `ticket_id`, `filter.id`, `lines[0].sku`): what the
    schema says at such a path, inside it or around it is left to the run, when the value is
    known, whatever the tool's schema is (a model's or a JSON Schema's)."""
    schema = tool.get_input_schema()
    names = _argument_names(tool, schema)
    # A misspelled key also makes the real field missing: the key actually typed comes first.
    found = {
        f"args.{key}": f"{tool.name} takes no argument {key!r} "
        f"({', '.join(names) or 'no arguments'})"
        for key in args
        if names is not None and key not in names
    }
    pending = [_segments(path) for path in unknown_yet]
    try:
        schema.model_validate(dict(args))  # type: ignore[union-attr]
    except ValidationError as exc:
        for error in exc.errors():
            field = dotted(tuple(error["loc"]))
            at = _segments(field)
            # A check at a referenced path, inside it, or on a value holding it, judged a
            # placeholder: the referenced value alone can tell.
            if any(at[: len(p)] == p or p[: len(at)] == at for p in pending):
                continue
            found.setdefault(f"args.{field}" if field else "args", error["msg"])
    if not found:
        return None
    (field, message), *others = found.items()
    return field, "; ".join([message, *(f"{other}: {text}" for other, text in others)])


def _segments(path: str) -> tuple[str, ...]:
    """An arg path's keys and list indices (`a.b[0]` and `a.b.0` alike: `('a', 'b', '0')`)."""
    return tuple(part for part in path.replace("[", ".").replace("]", "").split(".") if part)


def _argument_names(tool: BaseTool, schema: Any) -> list[str] | None:
    """The arguments a tool's input schema names: a pydantic model's fields (by alias where it
    has one), a JSON Schema's `properties` (an MCP or OpenAPI tool's, or a tool's own JSON
    Schema `args_schema`, which LangChain stands in for with a model naming nothing); `None`
    when it names none (a JSON Schema without `properties`: it takes any arguments)."""
    if isinstance(schema, type) and issubclass(schema, JSONSchemaArguments):
        json_schema: Any = schema.operation.schema
    elif getattr(schema, "__pydantic_root_model__", False):
        json_schema = tool.args_schema if isinstance(tool.args_schema, dict) else {}
    else:
        json_schema = None
    if json_schema is not None:
        properties = json_schema.get("properties")
        return list(properties) if isinstance(properties, dict) else None
    fields = getattr(schema, "model_fields", None)
    if fields is None:
        return None
    return [info.alias or name for name, info in fields.items()]


def approval_digest(
    tool: str,
    args: Mapping[str, Any],
    action: str,
    risk: str,
    profile_fingerprint: str,
    *,
    declaration: str = "",
) -> str:
    """SHA-256 over what a person approves: the tool, the canonical JSON of its args, the
    effective action and risk, the profile's fingerprint and, given, the digest of what the tool
    declares (`plangate.actions.declaration_digest`): a tool redeclared after the decision (a
    new release with other arguments) is not the one approved. A decision is bound to it."""
    canonical = json.dumps(
        [tool, args, action, risk, profile_fingerprint, *([declaration] if declaration else [])],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=repr,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def response_schema(tool: BaseTool | None) -> dict[str, Any]:
    """JSON schema of a decision, with the tool's argument schema under `args` for edits."""
    schema = Decision.model_json_schema()
    schema["description"] = (
        "A decision on the approval request: approve, edit (with args), reject (with a reason), "
        "or respond (with a message given in the tool's place)."
    )
    if tool is not None:
        args_schema = tool.get_input_schema().model_json_schema()  # type: ignore[union-attr]
        args_schema.pop("title", None)
        # `#/$defs/...` references resolve against the document's root: nested under
        # `properties.args`, the tool's definitions must move up to the decision's root.
        if "$defs" in args_schema:
            schema["$defs"] = {**schema.get("$defs", {}), **args_schema.pop("$defs")}
        schema["properties"]["args"] = {
            "anyOf": [args_schema, {"type": "null"}],
            "description": "New arguments for the step (edit only).",
        }
    return schema


def consequence_of(step: PlanStep, policy: StepPolicy, args: dict[str, Any]) -> str:
    """One sentence a human reads before approving: what happens, to whom (from `args`, the
    call's resolved args), and whether it can be undone (from the effective action and the
    trusted irreversibility, not the plan)."""
    if step.description:
        what, to_whom = step.description.rstrip("."), ""
    else:
        target = _target(args)
        what, to_whom = f"call {step.tool}", f" with {target}" if target else ""
    if policy.action == "read":
        effect = "It only reads data; nothing is changed."
    elif policy.action == "propose":
        effect = "It prepares a draft for review; nothing is sent or changed yet."
    elif policy.irreversible:
        effect = "It changes the world and cannot be undone."
    else:
        effect = "It changes the world; undoing it needs a follow-up action."
    return (
        f"If approved, plangate will {what[0].lower() + what[1:]}{to_whom} "
        f"({policy.risk} risk). {effect}"
    )


def _target(args: Mapping[str, Any]) -> str | None:
    for key in ("to", "recipient", "email", "account_id", "account", "customer", "opportunity_id"):
        if args.get(key):
            return f"{key} {args[key]}"
    return None
