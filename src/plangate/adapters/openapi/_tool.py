"""The LangChain tool for one operation, calling it natively in `invoke` (`httpx.Client`) and
`ainvoke` (`httpx.AsyncClient`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel

from plangate.actions import METADATA_KEY
from plangate.adapters._json_schema import JSONSchemaArguments
from plangate.adapters.openapi._document import tls
from plangate.adapters.openapi._operation import Operation


class _OpenAPITool(StructuredTool):
    """A StructuredTool whose arguments travel as one dict, with a real arguments model."""

    arguments_model: type[BaseModel]

    def get_input_schema(self, config: RunnableConfig | None = None) -> type[BaseModel]:
        # LangChain's own model for a JSON Schema `args_schema` accepts anything.
        return self.arguments_model

    def _to_args_and_kwargs(
        self, tool_input: str | dict[str, Any], tool_call_id: str | None
    ) -> tuple[tuple[str, ...], dict[str, Any]]:
        # A service's argument names may be anything, `config` and `run_manager` included,
        # which LangChain would mix up with the keyword arguments it passes itself.
        args, kwargs = super()._to_args_and_kwargs(tool_input, tool_call_id)
        return args, {"arguments": kwargs}


def operation_tool(
    operation: Operation,
    *,
    headers: Mapping[str, str],
    timeout: float | None,
    client: httpx.Client | None,
    aclient: httpx.AsyncClient | None,
) -> BaseTool:
    """The tool calling `operation`, with `client`/`aclient` if given, else a client per call."""

    def prepare(arguments: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        operation.check(arguments)
        return operation.request(arguments, config, headers)

    def call(arguments: dict[str, Any], config: RunnableConfig) -> Any:
        request = prepare(arguments, config)
        with operation.reaching(request["url"]):
            if client is not None:
                response = client.request(**request)
            else:
                with httpx.Client(timeout=timeout, verify=tls()) as own:
                    response = own.request(**request)
        return operation.output(response)

    async def acall(arguments: dict[str, Any], config: RunnableConfig) -> Any:
        request = prepare(arguments, config)
        with operation.reaching(request["url"]):
            if aclient is not None:
                response = await aclient.request(**request)
            else:
                # A client per call: an AsyncClient's connections belong to the event loop
                # that opened them, and each `asyncio.run` brings a new one.
                async with httpx.AsyncClient(timeout=timeout, verify=tls()) as own:
                    response = await own.request(**request)
        return operation.output(response)

    arguments_model = type(
        f"{operation.tool}_arguments",
        (JSONSchemaArguments,),
        {"operation": operation, "__module__": __name__},
    )
    return _OpenAPITool(
        name=operation.tool,
        description=operation.description,
        args_schema=operation.schema,
        func=call,
        coroutine=acall,
        arguments_model=arguments_model,
        metadata={
            METADATA_KEY: {
                "action": operation.action,
                "irreversible": operation.irreversible,
                "source": "openapi",
            }
        },
    )
