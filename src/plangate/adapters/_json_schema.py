"""A pydantic model standing for a tool whose arguments are described by a JSON Schema.

LangChain's own model for a JSON Schema `args_schema` accepts anything and describes itself
as `string | object | ToolCall`, so code that asks a tool for its input schema (plangate's
approvals: checking an `edit` decision's args, showing the schema to the approver) learns
nothing from it. A subclass of `JSONSchemaArguments` with its `operation` set instead checks
arguments with the tool's own JSON Schema check and publishes that schema unchanged.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, GetJsonSchemaHandler, model_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

__all__ = ("ArgumentsCheck", "JSONSchemaArguments")


class ArgumentsCheck(Protocol):
    """What a tool knows of its arguments: their JSON Schema and how to check them."""

    @property
    def schema(self) -> dict[str, Any]: ...

    def problem(self, arguments: Any) -> tuple[str, str] | None:
        """(dotted field, what is wrong with it) for arguments the schema refuses; the field
        is `""` when the arguments as a whole are at fault."""
        ...


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
        problem = cls.operation.problem(data)
        if problem is not None:
            field, message = problem
            raise cls._refusal(data, field, message)
        return data

    @classmethod
    def _refusal(cls, data: Any, field: str, message: str) -> Exception:
        """The error raised for arguments the schema refuses."""
        return ValueError(f"{field}: {message}" if field else message)

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return copy.deepcopy(cls.operation.schema)
