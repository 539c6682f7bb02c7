"""An MCP tool's input schema and annotations, as a LangChain tool carries them (part of the
adapters: MCP servers).

A tool's `get_input_schema()` is a pydantic model standing for its MCP `inputSchema`: its
`model_json_schema()` is that schema, and `model_validate` checks arguments against it, so that
approval requests show it and an `edit` decision's args are checked with it. Its annotations go
in its `metadata`, where `plangate.actions` reads them as the tool's trusted action.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from jsonschema import validators  # type: ignore[import-untyped]
from jsonschema.exceptions import best_match  # type: ignore[import-untyped]
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import StructuredTool
from mcp.types import Tool
from pydantic import BaseModel
from referencing import Registry

from plangate.adapters._json_schema import JSONSchemaArguments, schema_problems

__all__ = ("InputCheck", "MCPArguments", "MCPTool", "metadata")


@dataclass(frozen=True, slots=True)
class InputCheck:
    """An MCP tool's `inputSchema` and the JSON Schema validator checking arguments with it."""

    schema: dict[str, Any]
    validator: Any

    @classmethod
    def of(cls, tool: Tool) -> InputCheck:
        schema = tool.inputSchema
        validator_class = validators.validator_for(schema)
        # An empty registry, as the MCP client uses: a `$ref` never fetches anything remote.
        return cls(schema, validator_class(schema, registry=Registry()))

    def error(self, arguments: Any) -> Any:
        """The most telling `jsonschema` error about `arguments`, or `None`."""
        return best_match(self.validator.iter_errors(arguments))

    def problems(self, arguments: Any) -> list[tuple[str, str]]:
        return schema_problems(self.validator.iter_errors(arguments))


class MCPArguments(JSONSchemaArguments):
    """An MCP tool's arguments as a pydantic model (subclassed per tool with `operation`)."""

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        # The schema as the server sent it. Pydantic's generator would take its `$ref`s (FastMCP
        # puts argument models in `$defs`) for references of its own, and fail on them.
        return copy.deepcopy(cls.operation.schema)


class MCPTool(StructuredTool):
    """A StructuredTool whose input schema is the MCP tool's own."""

    arguments_model: type[BaseModel]

    def get_input_schema(self, config: RunnableConfig | None = None) -> type[BaseModel]:
        # LangChain's own model for a JSON Schema `args_schema` accepts anything.
        return self.arguments_model


def metadata(tool: Tool) -> dict[str, Any] | None:
    """The tool's annotations and `_meta`, shaped as langchain-mcp-adapters shapes them, where
    `plangate.actions` reads the annotations as the tool's trusted action."""
    annotations = tool.annotations.model_dump() if tool.annotations is not None else {}
    meta = {"_meta": tool.meta} if tool.meta is not None else {}
    return {**annotations, **meta} or None
