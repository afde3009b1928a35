"""Warden's settings accessor: defaults, overrides, and unknown keys refused."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from core.conf import DEFAULTS, warden_settings


def test_defaults_apply_when_not_set():
    with override_settings(WARDEN={}):
        for name, value in DEFAULTS.items():
            assert getattr(warden_settings, name) == value


def test_overrides_are_read_at_each_access():
    with override_settings(WARDEN={"API_MAX_REQUEST_BYTES": 10}):
        assert warden_settings.API_MAX_REQUEST_BYTES == 10
        organization = warden_settings.ORGANIZATION_NAME
        assert organization == DEFAULTS["ORGANIZATION_NAME"]
    with override_settings(WARDEN={"API_MAX_REQUEST_BYTES": 20}):
        assert warden_settings.API_MAX_REQUEST_BYTES == 20


def test_unknown_key_is_refused_at_validation():
    with (
        override_settings(WARDEN={"NOPE": 1, "API_MAX_REQUEST_BYTES": 5}),
        pytest.raises(ImproperlyConfigured) as error,
    ):
        warden_settings.validate()
    message = str(error.value)
    assert "NOPE" in message
    assert "API_MAX_REQUEST_BYTES" in message  # the known keys are listed to help fix the typo


def test_known_keys_validate():
    with override_settings(WARDEN=dict(DEFAULTS)):
        warden_settings.validate()


def test_reading_an_unknown_setting_is_an_error():
    with pytest.raises(AttributeError, match="NOPE"):
        warden_settings.NOPE  # noqa: B018
