"""governed_tool with real langchain-core tools (no model): allowed, denied, async, schema kept."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from langchain_core.tools import StructuredTool, ToolException, tool
from sdk_fake_warden import FakeWarden, Reply, decision

from warden_sdk import RetryPolicy, WardenClient, WardenUnavailable
from warden_sdk.integrations.langchain import governed_tool


@tool
def transfer(account: str, amount: int) -> str:
    """Transfer `amount` EUR to `account`."""
    return f"booked {amount} to {account}"


async def _lookup(case: str) -> str:
    return f"alerts of {case}"


lookup = StructuredTool.from_function(coroutine=_lookup, name="lookup", description="Read a case's alerts.")


@pytest.fixture
def client(warden: FakeWarden) -> Iterator[WardenClient]:
    with WardenClient(warden.url, "agent-key", retry=RetryPolicy(attempts=1)) as client:
        yield client


def test_the_wrapper_looks_like_the_tool_to_a_model(client: WardenClient) -> None:
    wrapped = governed_tool(transfer, client)
    assert (wrapped.name, wrapped.description) == (transfer.name, transfer.description)
    assert wrapped.tool_call_schema.model_json_schema() == transfer.tool_call_schema.model_json_schema()


def test_an_allowed_invocation_runs_the_tool_and_reports_it(warden: FakeWarden, client: WardenClient) -> None:
    warden.script(Reply(body=decision("allow")), Reply(body={}))

    wrapped = governed_tool(transfer, client, tool_name="payments.transfer", context={"purpose": "Invoice 118"})

    assert wrapped.invoke({"account": "DE89", "amount": 20}) == "booked 20 to DE89"
    ask, report = warden.received
    assert ask.body["tool"] == "payments.transfer"
    assert ask.body["arguments"] == {"account": "DE89", "amount": 20}
    assert ask.body["context"] == {"purpose": "Invoice 118"}
    assert report.body == {"status": "succeeded", "output": "booked 20 to DE89"}


def test_a_denial_reaches_the_agent_as_the_tools_answer(warden: FakeWarden, client: WardenClient) -> None:
    reasons = [{"code": "constraint_violation", "message": "amount is over 5000."}]
    warden.script(Reply(body=decision("deny", reasons=reasons)))

    answer = governed_tool(transfer, client).invoke({"account": "DE89", "amount": 9000})

    assert "constraint_violation" in answer
    assert "amount is over 5000." in answer
    assert len(warden.received) == 1


def test_a_denial_raises_tool_exception_when_errors_are_not_handled(warden: FakeWarden, client: WardenClient) -> None:
    warden.script(Reply(body=decision("deny", reasons=[{"code": "no_grant", "message": "No grant."}])))
    with pytest.raises(ToolException, match="no_grant"):
        governed_tool(transfer, client, handle_tool_error=False).invoke({"account": "DE89", "amount": 1})


def test_an_unreachable_warden_stops_the_agent(client: WardenClient) -> None:
    closed = WardenClient("http://127.0.0.1:9", "agent-key", timeout=0.5, retry=RetryPolicy(attempts=1))
    with pytest.raises(WardenUnavailable):
        governed_tool(transfer, closed).invoke({"account": "DE89", "amount": 1})


def test_an_async_tool_is_governed_on_ainvoke(warden: FakeWarden, client: WardenClient) -> None:
    warden.script(Reply(body=decision("allow")), Reply(body={}))
    wrapped = governed_tool(lookup, client, tool_name="aml.alerts.read")

    async def main() -> str:
        try:
            return str(await wrapped.ainvoke({"case": "c-7"}))
        finally:
            await client.aclose()

    assert asyncio.run(main()) == "alerts of c-7"
    assert warden.received[0].body["arguments"] == {"case": "c-7"}
