"""Celery tasks owned by the audit trail."""

from __future__ import annotations

from celery import shared_task

from audit.sealing import seal_pending


@shared_task(name="audit.seal", ignore_result=True)
def seal() -> dict[str, int]:
    """Seal every unsealed record (beat runs this every WARDEN_AUDIT_SEAL_SECONDS)."""
    result = seal_pending()
    return {"blocks": len(result.blocks), "records": result.records}
