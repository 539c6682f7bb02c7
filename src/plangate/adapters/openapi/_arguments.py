"""An operation's tool arguments: its path, query, header and cookie parameters and its JSON
request body, as one JSON Schema object."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from plangate.adapters.openapi._document import Reader, one_line
from plangate.adapters.openapi._security import Credential

Location = Literal["path", "query", "header", "cookie"]


def _is_json(media_type: str) -> bool:
    kind = media_type.split(";", 1)[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")


class Signature:
    """The arguments of one operation, worked out from its parameters and request body."""

    def __init__(self, reader: Reader, where: str) -> None:
        self.reader = reader
        self.where = where
        self.properties: dict[str, Any] = {}
        self.required: list[str] = []
        self.parameters: dict[str, Location] = {}
        self.body: Literal["none", "fields", "whole"] = "none"
        # Unknown arguments are refused: a misspelt one would otherwise be ignored unseen.
        self.additional: Any = False

    def add_parameters(
        self, raw_parameters: list[Any], credentials: tuple[Credential, ...] = ()
    ) -> None:
        """`credentials` fill some parameters (an `Authorization` header): those are no
        arguments, as the plan must not choose or see them."""
        filled = {
            (c.location, c.field_name.lower() if c.location == "header" else c.field_name)
            for c in credentials
        }
        declared: dict[tuple[str, Location], Mapping[str, Any]] = {}
        for raw in raw_parameters:
            parameter = self.reader.follow(raw, self.where)
            name, location = parameter.get("name"), parameter.get("in")
            if not isinstance(name, str) or location not in ("path", "query", "header", "cookie"):
                raise self.reader.fail(
                    self.where,
                    f"a parameter has no valid name and `in`: {one_line(str(parameter))}",
                    "each parameter needs a `name` and `in: path|query|header|cookie`",
                )
            declared[(name, location)] = parameter  # a later one (the operation's) wins
        for (name, location), parameter in declared.items():
            if location == "header" and name.lower() == "idempotency-key":
                continue  # plangate fills it in: the plan does not choose it
            if (location, name.lower() if location == "header" else name) in filled:
                continue
            if name in self.parameters:
                raise self.reader.fail(
                    self.where,
                    f"two parameters are named {name!r} ({self.parameters[name]}, {location})",
                    "plangate cannot tell them apart as tool arguments; rename one",
                )
            schema = parameter.get("schema")
            content = parameter.get("content")
            if schema is None and isinstance(content, Mapping) and content:
                schema = (next(iter(content.values())) or {}).get("schema")
            prop = self.reader.inline(schema or {}, self.where)
            if parameter.get("description") and "description" not in prop:
                prop = {**prop, "description": parameter["description"]}
            self.properties[name] = prop
            self.parameters[name] = location
            if location == "path" or parameter.get("required") is True:
                self.required.append(name)

    def add_body(self, request_body: Any) -> None:
        if not isinstance(request_body, Mapping):
            return
        content = request_body.get("content") or {}
        media = next((m for m in content if _is_json(m)), None)
        if media is None:
            raise self.reader.fail(
                self.where,
                f"its request body is {', '.join(content) or 'of no media type'}, not JSON",
                "plangate's OpenAPI tools send JSON bodies; leave this operation out",
            )
        schema = self.reader.inline((content[media] or {}).get("schema") or {}, self.where)
        required = request_body.get("required") is True
        fields = schema.get("properties")
        if (
            isinstance(fields, Mapping)
            and schema.get("type", "object") == "object"
            and not {"allOf", "anyOf", "oneOf", "not"} & set(schema)
            and not set(fields) & set(self.properties)
        ):
            self.body = "fields"
            self.properties.update(fields)
            if required:
                self.required.extend(schema.get("required") or [])
            if schema.get("additionalProperties") not in (None, False):
                self.additional = schema["additionalProperties"]
        elif "body" in self.properties:
            raise self.reader.fail(
                self.where,
                "a parameter is named 'body', as is the argument for its request body",
                "rename the parameter",
            )
        else:
            self.body = "whole"
            self.properties["body"] = schema
            if required:
                self.required.append("body")

    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "object",
            "properties": self.properties,
            "additionalProperties": self.additional,
        }
        if self.required:
            schema["required"] = list(dict.fromkeys(self.required))
        return schema
