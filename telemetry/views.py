"""Telemetry's views: the audit trail page, and `/metrics` for Prometheus.

The trail page filters the trail, shows payloads (sensitive values redacted) and verifies
records. Verification runs in the reader's browser (static/telemetry/audit-verify.js): it
fetches a record's inclusion proof from the API and recomputes every hash with WebCrypto, so
the check does not rely on the server's word that the record is intact.

`/metrics` answers the holder of `WARDEN_METRICS_TOKEN` (a bearer token) or, while no token is
set, only clients on this machine. Its errors are the API's JSON documents, never a 500 page.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
from dataclasses import dataclass
from typing import Any

from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from prometheus_client import CONTENT_TYPE_LATEST

from audit.filtersets import AuditRecordFilterSet
from audit.models import AuditRecord, Seal
from audit.sensitive import redact
from core.api.errors import error_response
from core.conf import warden_settings
from telemetry import metrics as telemetry_metrics
from telemetry import selectors
from telemetry.forms import TrailFilterForm

logger = logging.getLogger(__name__)

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


# Headers a reverse proxy adds: a request that carries one did not come from this machine, whatever REMOTE_ADDR says.
PROXY_HEADERS = ("HTTP_FORWARDED", "HTTP_X_FORWARDED_FOR", "HTTP_X_REAL_IP")
METRICS_REALM = 'Bearer realm="warden-metrics"'


@csrf_exempt  # Prometheus sends a bearer token, never a cookie; other methods get a JSON 405, not a CSRF page
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """GET /metrics: every metric in Prometheus's text format, for the scraper allowed to read them."""
    refusal = _metrics_refusal(request)
    if refusal is not None:
        return refusal
    if request.method != "GET":
        response = error_response(
            "method_not_allowed", f"{request.method} is not allowed here: /metrics answers GET.", 405
        )
        response["Allow"] = "GET"
        return response
    try:
        body = telemetry_metrics.exposition()
    except Exception:  # a scrape must never be an HTML 500; say so in JSON and keep the traceback in the log
        logger.exception("Metrics: the exposition failed.")
        return error_response(
            "metrics_unavailable",
            "Warden could not gather its metrics; it has been logged. The next scrape retries.",
            503,
        )
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)


def _metrics_refusal(request: HttpRequest) -> JsonResponse | None:
    """Why this client may not read the metrics (a JSON error), or None when it may."""
    token: str = warden_settings.METRICS_TOKEN
    if not token:
        if _is_local_client(request):
            return None
        return error_response(
            "permission_denied",
            "Only clients on this machine may read /metrics while WARDEN_METRICS_TOKEN is not set; set it and "
            "send it as Authorization: Bearer <token>.",
            403,
        )
    presented = _bearer_token(request.META.get("HTTP_AUTHORIZATION", ""))
    if presented is None:
        response = error_response(
            "not_authenticated", "Send the metrics token as Authorization: Bearer <WARDEN_METRICS_TOKEN>.", 401
        )
    elif not hmac.compare_digest(presented.encode(), token.encode()):
        response = error_response("authentication_failed", "The metrics token is not valid.", 401)
    else:
        return None
    response["WWW-Authenticate"] = METRICS_REALM
    return response


def _bearer_token(header: str) -> str | None:
    scheme, _, credentials = header.strip().partition(" ")
    credentials = credentials.strip()
    return credentials if scheme.lower() == "bearer" and credentials else None


def _is_local_client(request: HttpRequest) -> bool:
    """A client on this machine that reached Warden directly: a loopback address and no proxy in between.

    A proxy on the same host makes every client look local by address; the headers it adds give it away.
    """
    if any(header in request.META for header in PROXY_HEADERS):
        return False
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 from a dual-stack socket
    return address.is_loopback
