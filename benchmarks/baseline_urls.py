"""Warden's URLs plus `POST /bench/baseline`: the price of merely recording a call.

The baseline is a bare Django view on the same server, behind the same middleware: it parses
the JSON body and inserts one row of comparable width (a UUID id like a tool call's, the agent
id, the tool, the arguments as JSON, the creation time) into `bench_baseline`, with no
authentication, validation, policy or signing. The decision endpoint's throughput is compared
with it.
"""

from __future__ import annotations

import json
import os
import uuid

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.urls import URLPattern, URLResolver, include, path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

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


urlpatterns: list[URLPattern | URLResolver] = [
    path("bench/baseline", baseline, name="bench-baseline"),
    path("", include("config.urls")),
]
