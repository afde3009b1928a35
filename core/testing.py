"""Reusable test helpers: the API error document, the change records every write leaves, and the
programs some tests run (skipped where missing, required in CI).

Imported by every app's tests. Models of higher layers are looked up through the app
registry, so `core` keeps importing nothing above it.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

import pytest
from django.apps import apps
from django.db import models

from core.actors import Actor

ERROR_KEYS = {"code", "message", "detail"}


def require_command(name: str, *, package: str) -> str:
    """The path of a program a test needs; skip without it, but fail in CI (CI=true), which installs it."""
    path = shutil.which(name)
    if path is not None:
        return path
    reason = f"{name} is not installed (Debian package {package})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {reason}; .ci/run installs it.")
    pytest.skip(reason)


def response_json(response: Any) -> Any:
    """The decoded JSON body of a Django or DRF test response."""
    content_type = str(response.get("Content-Type", ""))
    assert content_type.startswith("application/json"), (
        f"expected JSON, got {content_type!r}: {response.content[:200]!r}"
    )
    return json.loads(response.content)


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """Assert an API error: the HTTP status, JSON body of exactly {code, message, detail}, and the code.

    Returns the body, so a test can go on to check `detail`.
    """
    assert response.status_code == status, f"expected {status}, got {response.status_code}: {response.content[:500]!r}"
    body = response_json(response)
    assert isinstance(body, dict), body
    assert set(body) == ERROR_KEYS, f"error keys {sorted(body)} != {sorted(ERROR_KEYS)}"
    assert body["code"] == code, f"expected code {code!r}, got {body['code']!r}: {body}"
    assert isinstance(body["message"], str)
    assert body["message"].strip(), "an error message must say what went wrong"
    assert isinstance(body["detail"], dict | list), body["detail"]
    return body


def _subject_filter(subject: models.Model) -> dict[str, Any]:
    return {"subject_type": subject._meta.model_name, "subject_id": str(subject.pk)}


def change_records(subject: models.Model, action: str | None = None) -> Any:
    """The registry change records whose subject is `subject` (an agent, role, grant or key), oldest first."""
    record_model = apps.get_model("registry", "ChangeRecord")
    records = record_model.objects.filter(**_subject_filter(subject))
    if action is not None:
        records = records.filter(action=action)
    return records.order_by("at", "id")


def assert_change_record(subject: models.Model, action: str, *, actor: Actor | None = None, count: int = 1) -> Any:
    """Assert that `subject` has exactly `count` change records of `action`, each by `actor`.

    Returns the single record when `count` is 1, else the list of records (oldest first).
    """
    records = list(change_records(subject, action))
    assert len(records) == count, (
        f"expected {count} {action!r} record(s) for {subject._meta.model_name} {subject.pk}, "
        f"found {len(records)}: {[(r.action, r.actor_label) for r in change_records(subject)]}"
    )
    if actor is not None:
        for record in records:
            assert (record.actor_kind, record.actor_id, record.actor_label) == (actor.kind, actor.id, actor.label), (
                f"record by {record.actor_kind}:{record.actor_id} ({record.actor_label}), expected {actor}"
            )
    return records[0] if count == 1 else records
