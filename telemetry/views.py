"""The audit trail page: filter the trail, read payloads (sensitive values redacted), verify records.

Verification runs in the reader's browser (static/telemetry/audit-verify.js): it fetches a
record's inclusion proof from the API and recomputes every hash with WebCrypto, so the check
does not rely on the server's word that the record is intact.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from audit.filtersets import AuditRecordFilterSet
from audit.models import AuditRecord, Seal
from audit.sensitive import redact
from telemetry import selectors
from telemetry.forms import TrailFilterForm

PAGE_SIZE = 50
VIEW_TRAIL = "audit.view_auditrecord"


@dataclass(frozen=True)
class TrailRow:
    """One record as the page shows it."""

    record: AuditRecord
    agent_slug: str
    payload: str | None  # pretty JSON with sensitive values redacted; None when it is not JSON
    seal: Seal | None


def may_read_trail(user: Any) -> bool:
    """Active staff holding `audit.view_auditrecord` (auditors, Warden admins): the API's rule too."""
    return bool(user.is_active and user.is_staff and user.has_perm(VIEW_TRAIL))


def pretty_payload(record: AuditRecord) -> str | None:
    """The payload indented for reading, every masked value shown as the sensitive marker."""
    try:
        document = json.loads(record.payload)
    except ValueError:
        return None
    return json.dumps(redact(document), indent=2, ensure_ascii=False)


def _seal_of(record: AuditRecord) -> Seal | None:
    try:
        return record.seal
    except Seal.DoesNotExist:
        return None


def trail_rows(records: list[AuditRecord]) -> list[TrailRow]:
    """Rows for one page of records; agent slugs come from one query for the whole page."""
    slugs = selectors.agent_slugs(record.agent_id for record in records if record.agent_id)
    return [
        TrailRow(
            record=record,
            agent_slug=slugs.get(record.agent_id, ""),
            payload=pretty_payload(record),
            seal=_seal_of(record),
        )
        for record in records
    ]


@login_required
def audit_trail(request: HttpRequest) -> HttpResponse:
    """GET /audit/: the trail newest first, filtered and paginated, with totals and the chain head."""
    if not may_read_trail(request.user):
        raise PermissionDenied("Reading the audit trail needs the audit.view_auditrecord permission (auditors).")
    form = TrailFilterForm(request.GET)
    records = selectors.audit_record_list()
    if form.is_valid():
        records = AuditRecordFilterSet(form.filterset_data(), queryset=records).qs
        if form.cleaned_data.get("seq") is not None:
            records = records.filter(seq=form.cleaned_data["seq"])
    else:
        records = records.none()  # an agent that does not exist, an inverted window: show nothing, say why
    page = Paginator(records, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        **admin.site.each_context(request),
        "title": "Audit trail",
        "is_nav_sidebar_enabled": False,  # the table needs the width
        "time_zone": timezone.get_current_timezone_name(),
        "summary": selectors.trail_summary(),
        "form": form,
        "is_filtered": form.is_valid() and form.is_filtered(),
        "page": page,
        "rows": trail_rows(list(page.object_list)),
    }
    return TemplateResponse(request, "telemetry/audit_trail.html", context)
