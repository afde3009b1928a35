"""Warden's URLs plus two benchmark-only views: `POST /bench/baseline` and `POST /bench/tool-calls-unaudited`.

Benchmark-only: this URL conf is used by `benchmarks.settings` alone, never by Warden's own
settings, so neither view exists on a real server.

The baseline is a bare Django view on the same server, behind the same middleware: it parses
the JSON body and inserts one row of comparable width (a UUID id like a tool call's, the agent
id, the tool, the arguments as JSON, the creation time) into `bench_baseline`, with no
authentication, validation, policy or signing. The decision endpoint's throughput is compared
with it (`benchmarks/decisions.py`).

The unaudited decision view is `policy.api.views.decide_view` without the audit record: the
same authentication, parsing, errors and decision document, but `decide_call(..., audited=False)`
writes the tool call row alone. `benchmarks/audit.py` compares the two on one server to measure
what the audit trail costs the hot path.
"""

from __future__ import annotations

import json
import os
import uuid

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import URLPattern, URLResolver, include, path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from policy.api.views import decide_view

AGENT_ID = uuid.UUID(os.environ.get("WARDEN_BENCH_AGENT_ID") or "00000000-0000-0000-0000-000000000000")
_INSERT = {
    "postgresql": (
        "INSERT INTO bench_baseline (id, agent_id, tool, arguments, created_at) VALUES (%s, %s, %s, %s::jsonb, %s)"
    ),
    "sqlite": "INSERT INTO bench_baseline (id, agent_id, tool, arguments, created_at) VALUES (%s, %s, %s, %s, %s)",
}


@csrf_exempt
@require_POST
def baseline(request: HttpRequest) -> JsonResponse:
    body = json.loads(request.body)
    row_id = uuid.uuid4()
    sqlite = connection.vendor == "sqlite"
    with connection.cursor() as cursor:
        cursor.execute(
            _INSERT[connection.vendor],
            [
                row_id.hex if sqlite else row_id,
                AGENT_ID.hex if sqlite else AGENT_ID,
                body.get("tool", ""),
                json.dumps(body.get("arguments", {})),
                connection.ops.adapt_datetimefield_value(timezone.now()),
            ],
        )
    return JsonResponse({"recorded": str(row_id)})


@csrf_exempt  # like the real endpoint: agents authenticate with a bearer key, never a cookie
@require_POST
def decide_unaudited(request: HttpRequest) -> HttpResponse:
    """Benchmark-only: the decision endpoint itself, recording the decision without its audit record."""
    return decide_view(request, audited=False)


urlpatterns: list[URLPattern | URLResolver] = [
    path("bench/baseline", baseline, name="bench-baseline"),
    path("bench/tool-calls-unaudited", decide_unaudited, name="bench-tool-calls-unaudited"),
    path("", include("config.urls")),
]
