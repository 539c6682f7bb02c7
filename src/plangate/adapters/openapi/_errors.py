"""The errors a call of an OpenAPI tool raises; plangate records its step as `error`."""

from __future__ import annotations

from plangate.errors import PlangateError
from plangate.nodes.tool_exec import InvalidArguments, ToolTimeout

__all__ = (
    "InvalidToolArguments",
    "OpenAPIToolError",
    "ToolConnectionError",
    "ToolHTTPError",
    "ToolHTTPTimeout",
)


class OpenAPIToolError(PlangateError):
    """A call of a tool generated from an OpenAPI document failed; its step ends `error`.

    Attributes:
        tool: The tool's name (`billing.create_refund`).
    """

    def __init__(self, message: str, *, tool: str, hint: str | None = None) -> None:
        self.tool = tool
        super().__init__(message, hint=hint)


class InvalidToolArguments(OpenAPIToolError, InvalidArguments):
    """The arguments do not match the operation's schema; no request was sent, and the step
    ends with `error_type: "invalid_arguments"`.

    Attributes:
        field: Dotted path of the offending argument (`amount`, `body.lines.0`), or `""` when
            the arguments as a whole are at fault (one is missing or unknown).
    """

    def __init__(self, message: str, *, tool: str, field: str) -> None:
        self.field = field
        super().__init__(message, tool=tool)


class ToolHTTPError(OpenAPIToolError):
    """The service answered with a 4xx or 5xx status.

    Attributes:
        status_code: The HTTP status; plangate retries 429 and 5xx.
        method: The request's method (`POST`).
        url: The request's URL, without its query string.
        body: The response's text, whole (any credential plangate sent in it hidden as `***`).
    """

    def __init__(
        self, message: str, *, tool: str, status_code: int, method: str, url: str, body: str
    ):
        self.status_code = status_code
        self.method = method
        self.url = url
        self.body = body
        super().__init__(message, tool=tool)


class ToolConnectionError(OpenAPIToolError, ConnectionError):
    """The service could not be reached or dropped the connection; plangate retries it.

    Attributes:
        url: The request's URL, without its query string.
    """

    def __init__(self, message: str, *, tool: str, url: str) -> None:
        self.url = url
        super().__init__(message, tool=tool, hint="is the service up? check base_url")


class ToolHTTPTimeout(OpenAPIToolError, ToolTimeout):
    """The service did not answer in time; the step ends with `error_type: "timeout"` and
    plangate retries it.

    Attributes:
        url: The request's URL, without its query string.
    """

    def __init__(self, message: str, *, tool: str, url: str) -> None:
        self.url = url
        super().__init__(message, tool=tool)
