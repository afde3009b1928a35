"""`WardenClient`: ask Warden before a tool runs, wait for a human when it escalates, report what the tool did.

Every request is retried on connection errors, timeouts, 5xx and 429 with exponential backoff
and full jitter; 4xx answers are never retried (the same request would get the same answer).
A decision request carries one idempotency key for all its attempts, so a retry after a lost
response returns the first decision instead of deciding twice. The current OpenTelemetry span,
when there is one, travels as W3C trace context so Warden's spans join the agent's trace.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import json
import logging
import random
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, ParamSpec, TypeVar, cast

import httpx

from warden_sdk.errors import ApprovalTimeout, ToolCallDenied, WardenError, WardenUnavailable
from warden_sdk.models import Decision, Result, Usage

__all__ = ["RetryPolicy", "WardenClient", "current_decision"]

logger = logging.getLogger("warden_sdk")

P = ParamSpec("P")
R = TypeVar("R")

ResultStatus = Literal["succeeded", "failed"]

#: Warden holds a long poll for at most this long (GET /tool-calls/<id>?wait=N).
MAX_WAIT_SECONDS = 30.0

_USER_AGENT = "warden-sdk/0.1.0"

_current_decision: contextvars.ContextVar[Decision | None] = contextvars.ContextVar(
    "warden_current_decision", default=None
)


def current_decision() -> Decision | None:
    """The allow decision a governed function is running under (None outside one, or when it failed open).

    Lets the function hand `decision_token` to the tool server without changing its signature.
    """
    return _current_decision.get()


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try before declaring Warden unavailable.

    Delays grow as `base_delay * 2**attempt`, capped at `max_delay`, and each sleep is drawn
    uniformly below that bound ("full jitter") so a fleet of agents does not retry in step.
    """

    attempts: int = 3
    base_delay: float = 0.2
    max_delay: float = 5.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to sleep after failed attempt number `attempt` (0-based); a server's Retry-After wins."""
        if retry_after is not None:
            return min(retry_after, self.max_delay)
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))  # noqa: S311  (jitter, not crypto)


class _Retry(Exception):
    """One attempt failed in a way worth retrying."""

    def __init__(self, reason: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.retry_after = retry_after


class WardenClient:
    """A connection to Warden for one agent (its API key).

    Methods come in pairs: `authorize` / `authorize_async` and so on. The synchronous ones share
    one connection pool; the asynchronous ones keep one pool per event loop, because an httpx
    async pool cannot outlive the loop it was made on. Use the client as a context manager, or
    call `close()` / `aclose()`, to release connections.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Accept": "application/json",
            "User-Agent": _USER_AGENT,
        }
        self._sync: httpx.Client | None = None
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )

    # Lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> WardenClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> WardenClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
        self.close()

    def close(self) -> None:
        """Close the synchronous connection pool."""
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    async def aclose(self) -> None:
        """Close the current event loop's connection pool."""
        pool = self._async.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            await pool.aclose()

    # The API, synchronously ----------------------------------------------------------------------

    def authorize(
        self,
        tool: str,
        arguments: Mapping[str, Any],
        context: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Decision:
        """Ask whether `tool` may run with `arguments`; deny and escalate are answers, not exceptions.

        `context` is Warden's optional call context (`purpose`, `session_id`, `on_behalf_of`).
        One idempotency key (a fresh UUID unless given) covers every retry of this call.
        """
        body = _decision_body(tool, arguments, context, idempotency_key)
        response = self._send("POST", "/api/v1/tool-calls", json_body=body)
        return Decision.from_document(response.json(), tool=tool)

    def get_call(self, call_id: str, *, wait: float = 0.0) -> Decision:
        """The call as it stands now; with `wait` (at most 30 s), hold until an escalation settles."""
        wait = min(max(wait, 0.0), MAX_WAIT_SECONDS)
        response = self._send("GET", f"/api/v1/tool-calls/{call_id}", params=_wait_params(wait), extra_timeout=wait)
        return Decision.from_document(response.json())

    def wait_for_approval(self, call_id: str, timeout: float) -> Decision:
        """Long-poll until a human settles escalated call `call_id`; `ApprovalTimeout` after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            decision = self.get_call(call_id, wait=max(remaining, 0.0))
            if not decision.escalated:
                return decision
            if deadline - time.monotonic() <= 0:
                raise ApprovalTimeout(call_id, timeout)

    def report_result(self, call_id: str, status: ResultStatus, output: Any = None, usage: Usage | None = None) -> None:
        """Tell Warden what an allowed tool did (once per call): `succeeded` or `failed`, its output and usage."""
        body = _result_body(status, output, usage)
        try:
            self._send("POST", f"/api/v1/tool-calls/{call_id}/result", json_body=body)
        except _ReportedBefore:
            return

    # The API, asynchronously ---------------------------------------------------------------------

    async def authorize_async(
        self,
        tool: str,
        arguments: Mapping[str, Any],
        context: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Decision:
        """`authorize` for asyncio."""
        body = _decision_body(tool, arguments, context, idempotency_key)
        response = await self._send_async("POST", "/api/v1/tool-calls", json_body=body)
        return Decision.from_document(response.json(), tool=tool)

    async def get_call_async(self, call_id: str, *, wait: float = 0.0) -> Decision:
        """`get_call` for asyncio."""
        wait = min(max(wait, 0.0), MAX_WAIT_SECONDS)
        response = await self._send_async(
            "GET", f"/api/v1/tool-calls/{call_id}", params=_wait_params(wait), extra_timeout=wait
        )
        return Decision.from_document(response.json())

    async def wait_for_approval_async(self, call_id: str, timeout: float) -> Decision:
        """`wait_for_approval` for asyncio."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            decision = await self.get_call_async(call_id, wait=max(deadline - loop.time(), 0.0))
            if not decision.escalated:
                return decision
            if deadline - loop.time() <= 0:
                raise ApprovalTimeout(call_id, timeout)

    async def report_result_async(
        self, call_id: str, status: ResultStatus, output: Any = None, usage: Usage | None = None
    ) -> None:
        """`report_result` for asyncio."""
        body = _result_body(status, output, usage)
        try:
            await self._send_async("POST", f"/api/v1/tool-calls/{call_id}/result", json_body=body)
        except _ReportedBefore:
            return

    # The decorator -------------------------------------------------------------------------------

    def governed(
        self,
        tool: str,
        *,
        context: Mapping[str, Any] | None = None,
        fail_open: bool = False,
        approval_timeout: float = 300.0,
        usage: Callable[[Any], Usage | None] | None = None,
    ) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Govern a function (or coroutine function) as Warden tool `tool`.

        Each call binds the function's arguments by name (defaults included); that dict is what
        Warden decides on, and the function then runs with exactly those keyword arguments. On
        allow the function runs and its result is reported (`usage(output)` or a returned
        `Result` supplies the usage); on escalate the call waits up to `approval_timeout` seconds
        for a human; on deny it raises `ToolCallDenied` and the function never runs. An exception
        from the function is reported as `failed` and re-raised.

        When Warden cannot be reached the call fails closed with `WardenUnavailable`. Only
        `fail_open=True`, meant for read-only tools, runs the function anyway, logging a warning
        that names the tool. An escalated call never fails open: it needed a human.
        """
        governance = _Governance(self, tool, dict(context) if context else None, fail_open, approval_timeout, usage)

        def decorate(function: Callable[P, R]) -> Callable[P, R]:
            signature = inspect.signature(function)
            if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in signature.parameters.values()):
                raise TypeError(
                    f"{function.__qualname__} takes *args; a governed function needs named arguments for Warden."
                )

            if inspect.iscoroutinefunction(function):
                coroutine = cast(Callable[..., Awaitable[Any]], function)

                @functools.wraps(function)
                async def run_async(*args: Any, **kwargs: Any) -> Any:
                    return await governance.run_async(coroutine, _named_arguments(signature, args, kwargs))

                return cast(Callable[P, R], run_async)

            @functools.wraps(function)
            def run(*args: Any, **kwargs: Any) -> Any:
                return governance.run(function, _named_arguments(signature, args, kwargs))

            return cast(Callable[P, R], run)

        return decorate

    # Transport -----------------------------------------------------------------------------------

    def _pool(self) -> httpx.Client:
        if self._sync is None:
            self._sync = httpx.Client(base_url=self.base_url, headers=self._headers, timeout=self.timeout)
        return self._sync

    def _async_pool(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        pool = self._async.get(loop)
        if pool is None:
            pool = self._async[loop] = httpx.AsyncClient(
                base_url=self.base_url, headers=self._headers, timeout=self.timeout
            )
        return pool

    def _send(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, str] | None = None,
        extra_timeout: float = 0.0,
    ) -> httpx.Response:
        """One request with retries: the successful response, or `WardenError` / `WardenUnavailable`."""
        for attempt in range(self.retry.attempts):
            try:
                response = self._pool().request(
                    method,
                    path,
                    json=json_body,
                    params=params,
                    headers=_trace_headers(),
                    timeout=self.timeout + extra_timeout,
                )
                return _checked(response, attempt)
            except (httpx.TransportError, _Retry) as error:
                failure = _as_retry(error)
                if attempt + 1 >= self.retry.attempts:
                    raise _unavailable(method, path, failure, self.retry.attempts) from error
                time.sleep(self.retry.delay(attempt, failure.retry_after))
        raise AssertionError("RetryPolicy.attempts must be at least 1")

    async def _send_async(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, str] | None = None,
        extra_timeout: float = 0.0,
    ) -> httpx.Response:
        """`_send` for asyncio."""
        for attempt in range(self.retry.attempts):
            try:
                response = await self._async_pool().request(
                    method,
                    path,
                    json=json_body,
                    params=params,
                    headers=_trace_headers(),
                    timeout=self.timeout + extra_timeout,
                )
                return _checked(response, attempt)
            except (httpx.TransportError, _Retry) as error:
                failure = _as_retry(error)
                if attempt + 1 >= self.retry.attempts:
                    raise _unavailable(method, path, failure, self.retry.attempts) from error
                await asyncio.sleep(self.retry.delay(attempt, failure.retry_after))
        raise AssertionError("RetryPolicy.attempts must be at least 1")


class _ReportedBefore(WardenError):
    """A retried result report found its earlier attempt recorded: the report landed, nothing to do."""


def _checked(response: httpx.Response, attempt: int) -> httpx.Response:
    """The response if it succeeded; `_Retry` for 5xx and 429; `WardenError` for every other error."""
    if response.is_success:
        return response
    if response.status_code >= 500 or response.status_code == 429:
        raise _Retry(
            f"HTTP {response.status_code}",
            status=response.status_code,
            retry_after=_retry_after(response.headers.get("Retry-After")),
        )
    try:
        document = response.json()
    except ValueError:
        document = {}
    if not isinstance(document, dict):
        document = {}
    error = WardenError(
        document.get("message") or f"Warden answered HTTP {response.status_code}.",
        code=document.get("code", "error"),
        status=response.status_code,
        detail=document.get("detail"),
    )
    # A result report whose response was lost is retried, and Warden then says it already has it.
    detail = error.detail if isinstance(error.detail, dict) else {}
    if attempt > 0 and response.status_code == 409 and "reported_at" in detail:
        raise _ReportedBefore(error.message, code=error.code, status=error.status, detail=error.detail)
    raise error


def _as_retry(error: Exception) -> _Retry:
    if isinstance(error, _Retry):
        return error
    return _Retry(f"{type(error).__name__}: {error}" if str(error) else type(error).__name__)


def _unavailable(method: str, path: str, failure: _Retry, attempts: int) -> WardenUnavailable:
    return WardenUnavailable(
        f"Warden did not answer {method} {path} after {attempts} attempt(s) (last: {failure}).",
        status=failure.status,
    )


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (HTTP dates are not worth parsing for a rate limit of seconds)."""
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


def _trace_headers() -> dict[str, str]:
    """`traceparent` (and `tracestate`) from the current OpenTelemetry context; nothing without opentelemetry."""
    try:
        from opentelemetry import propagate
    except ImportError:
        return {}
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def _wait_params(wait: float) -> dict[str, str] | None:
    return {"wait": f"{wait:.3f}"} if wait > 0 else None


def _decision_body(
    tool: str, arguments: Mapping[str, Any], context: Mapping[str, Any] | None, idempotency_key: str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "tool": tool,
        "arguments": dict(arguments),
        "idempotency_key": idempotency_key or uuid.uuid4().hex,
    }
    if context:
        body["context"] = dict(context)
    return body


def _result_body(status: ResultStatus, output: Any, usage: Usage | None) -> dict[str, Any]:
    body: dict[str, Any] = {"status": status, "output": _json_safe(output)}
    if usage:
        body["usage"] = dict(usage)
    return body


def _json_safe(value: Any) -> Any:
    """The value if JSON can carry it, else its `str()`: a result report must never fail on the output's type."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value


def _named_arguments(signature: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The call's arguments by name, defaults included; a `**kwargs` parameter's items are flattened in."""
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    named: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
            named.update(value)
        else:
            named[name] = value
    return named


@dataclass(frozen=True)
class _Governance:
    """What `governed` does around each call, once for threads and once for asyncio."""

    client: WardenClient
    tool: str
    context: dict[str, Any] | None
    fail_open: bool
    approval_timeout: float
    usage: Callable[[Any], Usage | None] | None

    def run(self, function: Callable[..., Any], arguments: dict[str, Any]) -> Any:
        decision = self._decide(arguments)
        if decision is None:
            return function(**arguments)
        token = _current_decision.set(decision)
        try:
            returned = function(**arguments)
        except Exception as error:
            failure = _failure(error)
            self._report(lambda: self.client.report_result(decision.id, "failed", failure))
            raise
        finally:
            _current_decision.reset(token)
        output, usage = self._output_and_usage(returned)
        self._report(lambda: self.client.report_result(decision.id, "succeeded", output, usage))
        return output

    async def run_async(self, function: Callable[..., Awaitable[Any]], arguments: dict[str, Any]) -> Any:
        decision = await self._decide_async(arguments)
        if decision is None:
            return await function(**arguments)
        token = _current_decision.set(decision)
        try:
            returned = await function(**arguments)
        except Exception as error:
            failure = _failure(error)
            await self._report_async(self.client.report_result_async(decision.id, "failed", failure))
            raise
        finally:
            _current_decision.reset(token)
        output, usage = self._output_and_usage(returned)
        await self._report_async(self.client.report_result_async(decision.id, "succeeded", output, usage))
        return output

    def _decide(self, arguments: dict[str, Any]) -> Decision | None:
        """The allow to run under; None to run ungoverned (failing open); raises for anything else."""
        try:
            decision = self.client.authorize(self.tool, arguments, self.context)
        except WardenUnavailable:
            if not self.fail_open:
                raise
            self._warn_failing_open()
            return None
        if decision.escalated:
            decision = self.client.wait_for_approval(decision.id, self.approval_timeout)
        if not decision.allowed:
            raise ToolCallDenied(decision)
        return decision

    async def _decide_async(self, arguments: dict[str, Any]) -> Decision | None:
        try:
            decision = await self.client.authorize_async(self.tool, arguments, self.context)
        except WardenUnavailable:
            if not self.fail_open:
                raise
            self._warn_failing_open()
            return None
        if decision.escalated:
            decision = await self.client.wait_for_approval_async(decision.id, self.approval_timeout)
        if not decision.allowed:
            raise ToolCallDenied(decision)
        return decision

    def _warn_failing_open(self) -> None:
        logger.warning(
            "Warden is unreachable; running %s without a decision because it is governed with fail_open=True.",
            self.tool,
        )

    def _output_and_usage(self, returned: Any) -> tuple[Any, Usage | None]:
        if isinstance(returned, Result):
            return returned.output, returned.usage
        return returned, self.usage(returned) if self.usage else None

    def _report(self, report: Callable[[], None]) -> None:
        """Report, but never let a lost report undo a tool that already ran: log it instead."""
        try:
            report()
        except WardenError:
            logger.exception("Could not report the result of %s to Warden; the tool already ran.", self.tool)

    async def _report_async(self, report: Awaitable[None]) -> None:
        try:
            await report
        except WardenError:
            logger.exception("Could not report the result of %s to Warden; the tool already ran.", self.tool)


def _failure(error: BaseException) -> dict[str, str]:
    return {"error": type(error).__name__, "message": str(error)}
