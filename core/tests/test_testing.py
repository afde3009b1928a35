"""The shared test helpers fail when they should, so tests built on them can fail.

`assert_change_record` needs registry models; its own test is in registry/tests.
"""

from __future__ import annotations

import pytest
from django.http import HttpResponse, JsonResponse

from core.testing import assert_error


def _json(body, status):
    return JsonResponse(body, status=status, safe=False)


def test_assert_error_accepts_the_error_document():
    body = assert_error(_json({"code": "invalid", "message": "Fix it.", "detail": {"a": ["b"]}}, 400), 400, "invalid")
    assert body["detail"] == {"a": ["b"]}


@pytest.mark.parametrize(
    ("response", "status", "code"),
    [
        (_json({"code": "invalid", "message": "m", "detail": {}}, 400), 409, "invalid"),  # wrong status
        (_json({"code": "invalid", "message": "m", "detail": {}}, 400), 400, "conflict"),  # wrong code
        (_json({"code": "invalid", "message": "m"}, 400), 400, "invalid"),  # missing detail
        (_json({"code": "invalid", "message": "m", "detail": {}, "extra": 1}, 400), 400, "invalid"),
        (_json({"code": "invalid", "message": "", "detail": {}}, 400), 400, "invalid"),  # empty message
        (_json({"detail": "Not found."}, 404), 404, "not_found"),  # DRF's own shape
        (HttpResponse("<h1>Not Found</h1>", status=404), 404, "not_found"),  # HTML
        (_json(["invalid"], 400), 400, "invalid"),
    ],
)
def test_assert_error_refuses_other_shapes(response, status, code):
    with pytest.raises(AssertionError):
        assert_error(response, status, code)
