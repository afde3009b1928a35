"""Govern LangChain and LangGraph tools: every invocation asks Warden first and reports what the tool did.

    from warden_sdk.integrations.langchain import governed_tool

    tools = [governed_tool(transfer, client), governed_tool(search, client, fail_open=True)]

The wrapper is a `StructuredTool` with the original's name, description and argument schema, so
a model sees the same tool. A denial (or an approval that never came) raises `ToolException`
with Warden's reason codes; with `handle_tool_error=True`, the default here, the agent receives
that message as the tool's output and can change course. `WardenUnavailable` is not turned into
a `ToolException`: an unreachable control plane stops the agent rather than letting it improvise.
Needs the `langchain` extra (`pip install 'warden-sdk[langchain]'`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool, ToolException

from warden_sdk.client import WardenClient
from warden_sdk.errors import ApprovalTimeout, ToolCallDenied

__all__ = ["governed_tool"]


def governed_tool(
    tool: BaseTool,
    client: WardenClient,
    *,
    tool_name: str | None = None,
    context: Mapping[str, Any] | None = None,
    fail_open: bool = False,
    approval_timeout: float = 300.0,
    handle_tool_error: bool = True,
) -> StructuredTool:
    """`tool`, asking Warden before each run as tool `tool_name` (default: the LangChain tool's name).

    The arguments Warden decides on are the tool's validated input, by name. `fail_open` and
    `approval_timeout` mean what they mean for `WardenClient.governed`.
    """
    governed = client.governed(
        tool_name or tool.name, context=context, fail_open=fail_open, approval_timeout=approval_timeout
    )

    @governed
    def run(**arguments: Any) -> Any:
        return tool.invoke(arguments)

    @governed
    async def arun(**arguments: Any) -> Any:
        return await tool.ainvoke(arguments)

    def run_or_refuse(**arguments: Any) -> Any:
        try:
            return run(**arguments)
        except (ToolCallDenied, ApprovalTimeout) as error:
            raise ToolException(error.message) from error

    async def arun_or_refuse(**arguments: Any) -> Any:
        try:
            return await arun(**arguments)
        except (ToolCallDenied, ApprovalTimeout) as error:
            raise ToolException(error.message) from error

    return StructuredTool(
        name=tool.name,
        description=tool.description,
        args_schema=tool.args_schema if tool.args_schema is not None else tool.get_input_schema(),
        func=run_or_refuse,
        coroutine=arun_or_refuse,
        return_direct=tool.return_direct,
        handle_tool_error=handle_tool_error,
        metadata={**(tool.metadata or {}), "warden_tool": tool_name or tool.name},
        tags=tool.tags,
    )
