"""WardenClient against a scripted server: retries, idempotency keys, trace context, fail closed, the decorator."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from sdk_fake_warden import FakeWarden, Reply, decision

from warden_sdk import (
    ApprovalTimeout,
    Result,
    RetryPolicy,
    ToolCallDenied,
    WardenClient,
    WardenError,
    WardenUnavailable,
    current_decision,
)

FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)


@pytest.fixture
def client(warden: FakeWarden) -> Iterator[WardenClient]:
    with WardenClient(warden.url, "agent-key", timeout=2.0, retry=FAST) as client:
        yield client


def closed_port_url() -> str:
    """A URL nothing listens on: bind a port, then release it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# Requests, retries and idempotency -----------------------------------------------------------------


def test_authorize_sends_the_call_with_the_agent_key_and_reads_the_decision(
    warden: FakeWarden, client: WardenClient
) -> None:
    warden.script(Reply(body=decision("deny", reasons=[{"code": "constraint_violation", "message": "Too much."}])))

    answer = client.authorize("payments.transfer", {"amount": 9000}, {"purpose": "Invoice"})

    assert answer.denied
    assert answer.reason_codes == ("constraint_violation",)
    request = warden.received[0]
    assert (request.method, request.path) == ("POST", "/api/v1/tool-calls")
    assert request.headers["Authorization"] == "Bearer agent-key"
    assert request.body["tool"] == "payments.transfer"
    assert request.body["arguments"] == {"amount": 9000}
    assert request.body["context"] == {"purpose": "Invoice"}
    assert request.body["idempotency_key"]


def test_a_503_is_retried_with_the_same_idempotency_key(warden: FakeWarden, client: WardenClient) -> None:
    warden.script(Reply(503, {"code": "unavailable"}), Reply(body=decision("allow")))

    assert client.authorize("payments.transfer", {"amount": 10}).allowed

    keys = [request.body["idempotency_key"] for request in warden.received]
    assert len(keys) == 2
    assert keys[0] == keys[1]


def test_a_timeout_is_retried_with_the_same_idempotency_key(warden: FakeWarden) -> None:
    warden.script(Reply(body=decision("allow"), delay=1.0), Reply(body=decision("allow")))
    with WardenClient(warden.url, "agent-key", timeout=0.2, retry=FAST) as client:
        assert client.authorize("payments.transfer", {"amount": 10}).allowed

    assert next(r.body["idempotency_key"] for r in warden.received) == warden.received[1].body["idempotency_key"]


def test_separate_calls_get_separate_idempotency_keys(warden: FakeWarden, client: WardenClient) -> None:
    warden.script(Reply(body=decision()), Reply(body=decision()))
    client.authorize("payments.transfer", {"amount": 10})
    client.authorize("payments.transfer", {"amount": 10})
    assert warden.received[0].body["idempotency_key"] != warden.received[1].body["idempotency_key"]


def test_a_429_is_retried_after_the_servers_retry_after(warden: FakeWarden, client: WardenClient) -> None:
    warden.script(Reply(429, {"code": "rate_limited"}, headers={"Retry-After": "0"}), Reply(body=decision()))
    assert client.authorize("payments.transfer", {}).allowed
    assert len(warden.received) == 2


def test_a_4xx_is_never_retried_and_keeps_wardens_error_fields(warden: FakeWarden, client: WardenClient) -> None:
    warden.script(Reply(400, {"code": "invalid_input", "message": "tool is required.", "detail": {"tool": ["?"]}}))

    with pytest.raises(WardenError) as raised:
        client.authorize("", {})

    assert (raised.value.code, raised.value.status, raised.value.message) == ("invalid_input", 400, "tool is required.")
    assert raised.value.detail == {"tool": ["?"]}
    assert not isinstance(raised.value, WardenUnavailable)
    assert len(warden.received) == 1


def test_persistent_5xx_is_unavailable_after_every_attempt(warden: FakeWarden, client: WardenClient) -> None:
    warden.script(*[Reply(502, {}) for _ in range(3)])
    with pytest.raises(WardenUnavailable, match="after 3 attempt"):
        client.authorize("payments.transfer", {})
    assert len(warden.received) == 3


def test_backoff_grows_exponentially_with_full_jitter_and_a_cap() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=4.0)
    delays = [[policy.delay(attempt) for _ in range(200)] for attempt in range(4)]
    assert all(
        0 <= delay <= bound for delay_list, bound in zip(delays, [1, 2, 4, 4], strict=False) for delay in delay_list
    )
    assert max(delays[2]) > 2  # grown past the first attempts' bound
    assert len(set(delays[0])) > 100  # jittered, not in step
    assert policy.delay(0, retry_after=3.0) == 3.0
    assert policy.delay(0, retry_after=60.0) == 4.0


def test_a_retried_result_report_that_had_landed_is_not_an_error(warden: FakeWarden, client: WardenClient) -> None:
    already = {"code": "conflict", "message": "Already reported.", "detail": {"reported_at": "2026-01-01T00:00:00Z"}}
    warden.script(Reply(503, {}), Reply(409, already))

    client.report_result("call-1", "succeeded", {"ok": True}, {"input_tokens": 3})

    assert warden.received[0].path == "/api/v1/tool-calls/call-1/result"
    assert warden.received[0].body == {"status": "succeeded", "output": {"ok": True}, "usage": {"input_tokens": 3}}


def test_a_first_result_report_refused_as_duplicate_is_an_error(warden: FakeWarden, client: WardenClient) -> None:
    warden.script(Reply(409, {"code": "conflict", "message": "Already reported.", "detail": {"reported_at": "x"}}))
    with pytest.raises(WardenError, match="Already reported"):
        client.report_result("call-1", "succeeded")


def test_wait_for_approval_long_polls_until_the_call_settles(warden: FakeWarden, client: WardenClient) -> None:
    warden.script(Reply(body=decision("escalate")), Reply(body=decision("allow")))

    assert client.wait_for_approval("call-1", timeout=5).allowed

    assert warden.received[0].path.startswith("/api/v1/tool-calls/call-1?wait=")
    assert float(warden.received[0].path.split("wait=")[1]) <= 5


def test_wait_for_approval_gives_up_at_its_timeout(warden: FakeWarden, client: WardenClient) -> None:
    warden.script(*[Reply(body=decision("escalate"), delay=0.1) for _ in range(5)])
    with pytest.raises(ApprovalTimeout, match="call-1"):
        client.wait_for_approval("call-1", timeout=0.15)


# Trace context ---------------------------------------------------------------------------------------


def test_the_current_span_travels_as_w3c_traceparent(warden: FakeWarden, client: WardenClient) -> None:
    warden.script(Reply(body=decision()), Reply(body=decision()))
    tracer = TracerProvider().get_tracer("agent")

    with tracer.start_as_current_span("agent step") as span:
        client.authorize("payments.transfer", {})
    client.authorize("payments.transfer", {})

    context = span.get_span_context()
    version, trace_id, span_id, _flags = warden.received[0].headers["traceparent"].split("-")
    assert (version, trace_id, span_id) == ("00", f"{context.trace_id:032x}", f"{context.span_id:016x}")
    assert "traceparent" not in warden.received[1].headers


# The decorator ---------------------------------------------------------------------------------------


def test_an_allowed_function_runs_with_its_arguments_by_name_and_its_result_is_reported(
    warden: FakeWarden, client: WardenClient
) -> None:
    warden.script(Reply(body=decision("allow")), Reply(body={}))
    seen: dict[str, Any] = {}

    @client.governed("payments.transfer", usage=lambda output: {"cost": 0.5})
    def transfer(account: str, amount: int, currency: str = "EUR") -> dict[str, Any]:
        seen["token"] = (current := current_decision()) and current.decision_token
        return {"transfer_id": f"t-{account}-{amount}{currency}"}

    assert transfer("DE89", amount=10) == {"transfer_id": "t-DE89-10EUR"}

    assert warden.received[0].body["arguments"] == {"account": "DE89", "amount": 10, "currency": "EUR"}
    assert seen["token"] == "token"
    assert current_decision() is None
    assert warden.received[1].body == {
        "status": "succeeded",
        "output": {"transfer_id": "t-DE89-10EUR"},
        "usage": {"cost": 0.5},
    }


def test_a_denied_function_does_not_run_and_raises_the_reason_codes(warden: FakeWarden, client: WardenClient) -> None:
    warden.script(Reply(body=decision("deny", reasons=[{"code": "no_grant", "message": "No grant."}])))
    runs: list[int] = []

    @client.governed("payments.transfer")
    def transfer(amount: int) -> None:
        runs.append(amount)

    with pytest.raises(ToolCallDenied) as raised:
        transfer(amount=10)

    assert runs == []
    assert raised.value.reason_codes == ("no_grant",)
    assert raised.value.decision.id == "call-1"
    assert "No grant." in str(raised.value)
    assert len(warden.received) == 1  # nothing reported: the tool did not run


def test_a_failing_function_is_reported_failed_and_the_error_re_raised(
    warden: FakeWarden, client: WardenClient
) -> None:
    warden.script(Reply(body=decision("allow")), Reply(body={}))

    @client.governed("payments.transfer")
    def transfer(amount: int) -> None:
        raise ValueError("bank said no")

    with pytest.raises(ValueError, match="bank said no"):
        transfer(amount=10)

    assert warden.received[1].body == {
        "status": "failed",
        "output": {"error": "ValueError", "message": "bank said no"},
    }


def test_an_async_function_returning_a_result_reports_its_usage(warden: FakeWarden, client: WardenClient) -> None:
    warden.script(Reply(body=decision("escalate")), Reply(body=decision("allow")), Reply(body={}))

    @client.governed("payments.transfer", approval_timeout=5)
    async def transfer(amount: int) -> Result:
        await asyncio.sleep(0)
        return Result(output={"booked": amount}, usage={"input_tokens": 7, "output_tokens": 2})

    async def main() -> Any:
        try:
            return await transfer(amount=10)
        finally:
            await client.aclose()

    assert asyncio.run(main()) == {"booked": 10}
    assert [r.method for r in warden.received] == ["POST", "GET", "POST"]
    assert warden.received[2].body["usage"] == {"input_tokens": 7, "output_tokens": 2}


def test_an_output_json_cannot_carry_is_reported_as_text(warden: FakeWarden, client: WardenClient) -> None:
    warden.script(Reply(body=decision("allow")), Reply(body={}))

    @client.governed("files.read")
    def read(path: str) -> object:
        return {1, 2}

    assert read(path="alerts.csv") == {1, 2}
    assert warden.received[1].body["output"] == "{1, 2}"


def test_functions_taking_star_args_cannot_be_governed(client: WardenClient) -> None:
    with pytest.raises(TypeError, match="named arguments"):

        @client.governed("payments.transfer")
        def transfer(*amounts: int) -> None: ...


# Fail closed, fail open ------------------------------------------------------------------------------


def test_an_unreachable_warden_fails_closed() -> None:
    runs: list[int] = []
    with WardenClient(closed_port_url(), "agent-key", timeout=0.5, retry=FAST) as client:

        @client.governed("payments.transfer")
        def transfer(amount: int) -> None:
            runs.append(amount)

        with pytest.raises(WardenUnavailable, match="after 3 attempt"):
            transfer(amount=10)

    assert runs == []


def test_an_unreachable_warden_fails_closed_for_async_functions() -> None:
    runs: list[int] = []
    client = WardenClient(closed_port_url(), "agent-key", timeout=0.5, retry=FAST)

    @client.governed("payments.transfer")
    async def transfer(amount: int) -> None:
        runs.append(amount)

    with pytest.raises(WardenUnavailable):
        asyncio.run(transfer(amount=10))
    assert runs == []


def test_a_read_only_tool_may_fail_open_explicitly_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    with WardenClient(closed_port_url(), "agent-key", timeout=0.5, retry=FAST) as client:

        @client.governed("aml.alerts.read", fail_open=True)
        def read_alerts(case: str) -> list[str]:
            return [f"alert for {case}"]

        with caplog.at_level(logging.WARNING, logger="warden_sdk"):
            assert read_alerts(case="c-1") == ["alert for c-1"]

    assert any(r.levelno == logging.WARNING and "aml.alerts.read" in r.getMessage() for r in caplog.records)


def test_fail_open_does_not_cover_a_refusal(warden: FakeWarden, client: WardenClient) -> None:
    warden.script(Reply(401, {"code": "authentication_failed", "message": "Unknown key."}))

    @client.governed("aml.alerts.read", fail_open=True)
    def read_alerts() -> list[str]:
        raise AssertionError("must not run")

    with pytest.raises(WardenError, match="Unknown key"):
        read_alerts()
