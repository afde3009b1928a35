"""Celery tasks of the approval queue: notices, expiry (beat), webhook deliveries with retries."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from approvals import notifications, services, webhooks


@shared_task(name="approvals.notify_arrival", ignore_result=True)
def notify_arrival(approval_id: str) -> bool:
    """E-mail the approvers that an item arrived (once; the periodic task catches up if this never ran)."""
    return notifications.send_arrival(approval_id)


@shared_task(name="approvals.expire", ignore_result=True)
def expire() -> dict[str, int]:
    """Every few seconds: expire what is overdue, remind before it is, and catch up on missed notices."""
    return {
        "expired": services.expire_due(),
        "reminded": notifications.send_reminders(),
        "notified": notifications.send_missed_arrivals(),
    }


@shared_task(bind=True, name="approvals.deliver", ignore_result=True, max_retries=None, acks_late=True)
def deliver(self: Any, delivery_id: str) -> bool:
    """POST one webhook delivery; on failure, retry after an exponential, jittered delay."""
    result = webhooks.attempt(delivery_id)
    if not result.final and result.retry_in is not None:
        raise self.retry(countdown=result.retry_in)
    return result.delivered
