"""The OpenAPI document and its Swagger UI: valid, complete about errors, and served without a CDN.

Clients and the SDK are generated from /api/schema/, and the fuzzing tests trust it, so it must
be a valid OpenAPI 3 document that tells the truth about every error an operation can answer.
"""

from __future__ import annotations

import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import schemathesis
from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.management import call_command
from drf_spectacular.drainage import reset_generator_stats
from drf_spectacular.validation import validate_schema

ERROR_REF = "#/components/schemas/Error"
ERROR_STATUSES = ("400", "401", "403", "404")
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
CDN_HOSTS = re.compile(r"unpkg\.com|jsdelivr|cdnjs|googleapis|cloudflare|bootstrapcdn", re.IGNORECASE)


@pytest.fixture
def staff_client(client: Any, django_user_model: Any) -> Any:
    """A logged-in superuser, so these tests hold whatever the schema's serve permissions become."""
    client.force_login(django_user_model.objects.create_superuser("schema-reader", "schema@example.com", "x"))
    return client


@pytest.fixture
def document(staff_client: Any) -> dict[str, Any]:
    """The schema as served, in JSON."""
    response = staff_client.get("/api/schema/?format=json")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi+json")
    return json.loads(response.content)


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


@pytest.mark.django_db
def test_schema_is_a_valid_openapi_3_document(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "Warden API"
    # Two independent validators: drf-spectacular's JSON Schema of OpenAPI, and Schemathesis's loader.
    validate_schema(document)
    schemathesis.openapi.from_dict(document).validate()


@pytest.mark.django_db
def test_accept_header_negotiates_the_same_json_document(staff_client: Any, document: dict[str, Any]) -> None:
    response = staff_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    assert json.loads(response.content) == document


@pytest.mark.django_db
def test_every_v1_operation_documents_the_error_document(document: dict[str, Any]) -> None:
    operations = [entry for entry in _operations(document) if entry[1].startswith("/api/v1/")]
    assert len(operations) >= 20, "the registry API should be in the schema"
    missing = [
        f"{method} {path}: {status}"
        for method, path, operation in operations
        for status in ERROR_STATUSES
        if operation["responses"].get(status, {}).get("content", {}).get("application/json", {}).get("schema")
        != {"$ref": ERROR_REF}
    ]
    assert not missing, "operations without the Error response:\n" + "\n".join(missing)


@pytest.mark.django_db
def test_error_component_is_code_message_detail(document: dict[str, Any]) -> None:
    error = document["components"]["schemas"]["Error"]
    assert error["type"] == "object"
    assert set(error["properties"]) == {"code", "message", "detail"}
    assert set(error["required"]) == {"code", "message", "detail"}
    assert error["properties"]["code"]["type"] == "string"
    assert error["properties"]["message"]["type"] == "string"


@pytest.mark.django_db
def test_every_v1_operation_requires_authentication(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["basicAuth"] == {"type": "http", "scheme": "basic"}
    anonymous = [
        f"{method} {path}"
        for method, path, operation in _operations(document)
        if path.startswith("/api/v1/") and (not operation.get("security") or {} in operation["security"])
    ]
    assert not anonymous


class _AssetCollector(HTMLParser):
    """Collects every URL the page loads by itself (scripts, stylesheets, icons, images)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag in {"script", "img", "iframe"} and values.get("src"):
            self.urls.append(str(values["src"]))
        if tag == "link" and values.get("href"):
            self.urls.append(str(values["href"]))


@pytest.mark.django_db
def test_swagger_ui_renders_from_local_static_files_only(staff_client: Any) -> None:
    response = staff_client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="swagger-ui"' in html
    assert "/api/schema/" in html
    assert not CDN_HOSTS.search(html), "the docs page must not load anything from a CDN"

    collector = _AssetCollector()
    collector.feed(html)
    assert any(url.endswith("swagger-ui-bundle.js") for url in collector.urls)
    for url in collector.urls:
        parts = urlsplit(url)
        assert not parts.scheme, f"{url} is not served by Warden"
        assert not parts.netloc, f"{url} is not served by Warden"
        assert parts.path.startswith(settings.STATIC_URL), f"{url} is not a static file"
        relative = parts.path.removeprefix(settings.STATIC_URL)
        assert finders.find(relative), f"{relative} is referenced but not among the static files"


def test_spectacular_validates_without_warnings(tmp_path: Path) -> None:
    reset_generator_stats()  # warnings are counted process-wide; count only this run's
    output = tmp_path / "openapi.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(output), stderr=io.StringIO())
    assert output.read_text().startswith("openapi: 3.")
