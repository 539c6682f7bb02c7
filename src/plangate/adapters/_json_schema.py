"""A pydantic model standing for a tool whose arguments are described by a JSON Schema.

LangChain's own model for a JSON Schema `args_schema` accepts anything and describes itself
as `string | object | ToolCall`, so code that asks a tool for its input schema (plangate's
approvals: checking an `edit` decision's args, showing the schema to the approver) learns
nothing from it. A subclass of `JSONSchemaArguments` with its `operation` set instead checks
arguments with the tool's own JSON Schema check and publishes that schema unchanged.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any, ClassVar, Protocol

from pydantic import (
    BaseModel,
    ConfigDict,
    GetJsonSchemaHandler,
    ValidationError,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, InitErrorDetails, PydanticCustomError

__all__ = ("ArgumentsCheck", "JSONSchemaArguments", "schema_problems")


class ArgumentsCheck(Protocol):
    """What a tool knows of its arguments: their JSON Schema and how to check them."""

    @property
    def schema(self) -> dict[str, Any]: ...

    def problems(self, arguments: Any) -> list[tuple[str, str]]:
        """(dotted field, what is wrong with it) for each field the schema refuses in
        `arguments` (`schema_problems`); the field is `""` when the arguments as a whole are
        at fault."""
        ...


def schema_problems(errors: Iterable[Any]) -> list[tuple[str, str]]:
    """(dotted field, message) for each of `errors` (`jsonschema` validation errors), so that
    every bad field is named, not only the most telling one: a missing property is named at its
    own path, as is each property `additionalProperties: false` refuses."""
    found: dict[str, str] = {}
    for error in errors:
        path = [str(part) for part in error.absolute_path]
        instance = error.instance
        if error.validator == "required" and isinstance(instance, dict):
            for name in error.validator_value:
                if name not in instance:
                    found.setdefault(".".join([*path, str(name)]), "Field required")
        elif (
            error.validator == "additionalProperties"
            and isinstance(instance, dict)
            and "patternProperties" not in error.schema
        ):
            known = error.schema.get("properties", {})
            for name in instance:
                if name not in known:
                    found.setdefault(".".join([*path, str(name)]), "not a property it takes")
        else:
            found.setdefault(".".join(path), " ".join(str(error.message).split()))
    return list(found.items())


class JSONSchemaArguments(BaseModel):
    """A tool's arguments as a pydantic model, for code that asks a tool for one. The check is
    the tool's own JSON Schema check; subclass it with `operation` set."""

    # Which keys are allowed is the JSON Schema's to say (its `additionalProperties`), not
    # pydantic's: this model declares no fields of its own.
    model_config = ConfigDict(extra="allow")
    operation: ClassVar[ArgumentsCheck]

    @model_validator(mode="before")
    @classmethod
    def _check(cls, data: Any) -> Any:
        problems = cls.operation.problems(data)
        if problems:
            # Located at each field, so that whoever checks an edit with this model (plangate's
            # approvals) names those fields, not the arguments as a whole.
            raise ValidationError.from_exception_data(
                cls.__name__,
                [
                    InitErrorDetails(
                        type=PydanticCustomError("json_schema", "{reason}", {"reason": message}),
                        loc=(field,) if field else (),
                        input=data,
                    )
                    for field, message in problems
                ],
            )
        return data

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return copy.deepcopy(cls.operation.schema)
