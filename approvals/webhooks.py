"""Webhooks: tell an agent, by an HMAC-signed POST, that its escalated call was settled.

An agent registers an endpoint (POST /api/v1/webhooks) and receives its signing secret once.
The secret is never stored: it is HMAC(SECRET_KEY, webhook id and nonce), recomputed to sign.
Each settled approval makes one delivery per active webhook of its agent, whose body is fixed
when it is made; every attempt signs that body with the attempt's time:

    Warden-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>

(the scheme Stripe and GitHub receivers already know). The body tells the outcome, not the
decision token: the agent fetches that with its own key (GET /api/v1/tool-calls/<id>).
Attempts are retried by Celery with exponential backoff and full jitter, each one recorded.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.client
import logging
import random
import secrets
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.db import transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac

import audit.services as audit
from approvals.choices import DeliveryState
from approvals.models import Approval, Delivery, DeliveryAttempt, Webhook
from core.actors import Actor
from core.canonical import canonical_json
from core.conf import warden_settings
from core.errors import Conflict, InvalidInput, NotFound

logger = logging.getLogger(__name__)

EVENT_SETTLED = "approval.settled"
MAX_WEBHOOKS_PER_AGENT = 5
_KEY_SALT = "warden.approvals.webhook"


def secret_of(webhook: Webhook) -> str:
    """The webhook's signing secret (derived, never stored)."""
    return "whsec_" + salted_hmac(_KEY_SALT, f"{webhook.pk}:{webhook.nonce}", algorithm="sha256").hexdigest()


def signature(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(secret: str, body: bytes, header: str, *, tolerance: int = 300, now: float | None = None) -> bool:
    """What a receiver does (also the reference for the SDK): check the MAC and the timestamp's freshness."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs((now or time.time()) - timestamp) > tolerance:
        return False
    expected = signature(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


# Registration --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Registered:
    webhook: Webhook
    secret: str


def check_url(url: str) -> str:
    """An http(s) URL whose host WARDEN_WEBHOOK_ALLOWED_HOSTS admits; 400 naming the problem otherwise."""
    url = (url or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise InvalidInput(
            "A webhook is an http or https URL.", detail={"url": ["Use http:// or https:// with a host."]}
        )
    if parts.username or parts.password:
        raise InvalidInput("No credentials in the URL.", detail={"url": ["Remove user:password@; Warden signs."]})
    if not host_allowed(parts.hostname):
        raise InvalidInput(
            f"Webhooks may not point at {parts.hostname}.",
            detail={"url": ["The host is not in WARDEN_WEBHOOK_ALLOWED_HOSTS; ask an administrator."]},
        )
    return url


def host_allowed(host: str) -> bool:
    host = host.lower().strip("[]")
    for pattern in warden_settings.WEBHOOK_ALLOWED_HOSTS:
        pattern = pattern.lower().strip().strip("[]")
        if pattern == "*" or host == pattern:
            return True
        if pattern.startswith(".") and (host == pattern[1:] or host.endswith(pattern)):
            return True
    return False


@transaction.atomic
def register(*, agent_id: str, url: str, actor: Actor) -> Registered:
    url = check_url(url)
    if Webhook.objects.filter(agent_id=agent_id, active=True).count() >= MAX_WEBHOOKS_PER_AGENT:
        raise Conflict(f"An agent may register at most {MAX_WEBHOOKS_PER_AGENT} webhooks; remove one first.")
    if Webhook.objects.filter(agent_id=agent_id, url=url, active=True).exists():
        raise Conflict("This URL is already registered; remove it to get a new secret.", detail={"url": url})
    webhook = Webhook.objects.create(agent_id=agent_id, url=url, nonce=secrets.token_hex(16))
    _record(actor, "webhook.registered", webhook, {"url": url})
    return Registered(webhook=webhook, secret=secret_of(webhook))


@transaction.atomic
def remove(*, webhook_id: Any, agent_id: str, actor: Actor) -> None:
    webhook = Webhook.objects.select_for_update().filter(pk=webhook_id, agent_id=agent_id, active=True).first()
    if webhook is None:
        raise NotFound("No active webhook of this agent has this id.")
    webhook.active, webhook.removed_at = False, timezone.now()
    webhook.save(update_fields=["active", "removed_at"])
    _record(actor, "webhook.removed", webhook, {"url": webhook.url})


def _record(actor: Actor, action: str, webhook: Webhook, payload: dict[str, Any]) -> None:
    audit.append(
        actor=actor,
        action=action,
        subject_type="webhook",
        subject_id=str(webhook.pk),
        agent_id=str(webhook.agent_id),
        payload={"webhook": str(webhook.pk), "agent": str(webhook.agent_id), **payload},
    )


# Deliveries ----------------------------------------------------------------------------------


def enqueue_settled(approval_id: str) -> list[str]:
    """Make one delivery per active webhook of the approval's agent; return their ids to send."""
    from approvals.services import summary

    approval = Approval.objects.select_related("tool_call").get(pk=approval_id)
    hooks = list(Webhook.objects.filter(agent_id=approval.agent_id, active=True))
    if not hooks:
        return []
    now = timezone.now()
    call = approval.tool_call
    body = canonical_json(
        {
            "event": EVENT_SETTLED,
            "approval": summary(approval),
            "tool_call": {"id": str(call.pk), "tool": call.tool, "decision": call.decision},
            "sent_at": now.isoformat().replace("+00:00", "Z"),
        }
    ).decode()
    with transaction.atomic():
        deliveries = [
            Delivery.objects.create(webhook=hook, approval=approval, event=EVENT_SETTLED, body=body, created_at=now)
            for hook in hooks
        ]
    return [str(delivery.pk) for delivery in deliveries]


def backoff(attempt: int) -> float:
    """Seconds before the next attempt after `attempt` failures: exponential, full jitter, capped."""
    ceiling = min(
        warden_settings.WEBHOOK_BACKOFF_MAX_SECONDS, warden_settings.WEBHOOK_BACKOFF_SECONDS * 2 ** (attempt - 1)
    )
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311  # jitter, not cryptography


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect is a failed delivery, never a POST to another host


_opener = urllib.request.build_opener(_NoRedirects)


@dataclass(frozen=True)
class AttemptResult:
    delivered: bool
    final: bool
    retry_in: float | None


def attempt(delivery_id: str) -> AttemptResult:
    """POST a delivery once and record the attempt; say whether to retry and when."""
    delivery = Delivery.objects.select_related("webhook").get(pk=delivery_id)
    if delivery.state != DeliveryState.PENDING:
        return AttemptResult(delivered=delivery.state == DeliveryState.DELIVERED, final=True, retry_in=None)
    webhook = delivery.webhook
    number = delivery.attempts + 1
    body = delivery.body.encode()
    status, error = None, ""
    started = time.perf_counter()
    at = timezone.now()
    if not webhook.active:
        error = "The webhook was removed."
    elif not host_allowed(urlsplit(webhook.url).hostname or ""):
        error = "The host is no longer in WARDEN_WEBHOOK_ALLOWED_HOSTS."
    else:
        request = urllib.request.Request(  # noqa: S310  # scheme checked at registration: http(s) only
            webhook.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": "Warden-Webhooks/1",
                "Warden-Event": delivery.event,
                "Warden-Delivery": str(delivery.pk),
                "Warden-Attempt": str(number),
                "Warden-Signature": signature(secret_of(webhook), body, int(time.time())),
            },
        )
        try:
            with _opener.open(request, timeout=warden_settings.WEBHOOK_TIMEOUT_SECONDS) as response:
                status = response.status
                response.read(1024)
        except urllib.error.HTTPError as failure:
            status = failure.code
        except (TimeoutError, urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as failure:
            error = f"{type(failure).__name__}: {getattr(failure, 'reason', failure)}"[:300]
    duration = int((time.perf_counter() - started) * 1000)
    delivered = status is not None and 200 <= status < 300
    if status is not None and not delivered:
        error = f"HTTP {status}"
    give_up = not delivered and (number >= warden_settings.WEBHOOK_MAX_ATTEMPTS or not webhook.active)
    retry_in = None if delivered or give_up else backoff(number)
    with transaction.atomic():
        DeliveryAttempt.objects.create(
            delivery=delivery,
            number=number,
            at=at,
            status_code=status,
            error=error,
            duration_ms=duration,
            next_attempt_at=at + dt.timedelta(seconds=retry_in) if retry_in is not None else None,
        )
        delivery.attempts = number
        fields = ["attempts"]
        if delivered or give_up:
            delivery.state = DeliveryState.DELIVERED if delivered else DeliveryState.FAILED
            delivery.delivered_at = timezone.now() if delivered else None
            fields += ["state", "delivered_at"]
            audit.append(
                actor=Actor(kind="system", id="approvals.deliver", label="approvals.deliver"),
                action="webhook.delivered" if delivered else "webhook.failed",
                subject_type="webhook",
                subject_id=str(webhook.pk),
                agent_id=str(webhook.agent_id),
                payload={
                    "delivery": str(delivery.pk),
                    "approval": str(delivery.approval_id),
                    "event": delivery.event,
                    "attempts": number,
                    "status_code": status,
                    "error": error,
                },
            )
        delivery.save(update_fields=fields)
    if not delivered:
        logger.info("Webhook delivery %s attempt %s failed (%s).", delivery.pk, number, error)
    return AttemptResult(delivered=delivered, final=delivered or give_up, retry_in=retry_in)
