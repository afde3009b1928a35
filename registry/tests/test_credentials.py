"""Agent keys: format, storage (hash only), authentication, rotation, revocation."""

from __future__ import annotations

import datetime as dt
import hashlib
import re

import pytest
from django.db import connection
from django.utils import timezone

from core.errors import AuthenticationFailed, Conflict, InvalidInput
from core.testing import assert_change_record
from registry import keys, services
from registry.choices import AgentStatus, ChangeAction
from registry.models import ChangeRecord, Credential
from registry.tests.factories import AgentFactory

KEY_FORMAT = re.compile(r"^wdn_[a-z0-9]{12}_[A-Za-z0-9]{40}$")


# Key format (no database) ------------------------------------------------------------------


def test_generated_keys_have_the_documented_format():
    generated = [keys.generate_key() for _ in range(50)]
    for item in generated:
        assert KEY_FORMAT.match(item.key), item.key
        assert item.prefix == item.key[4:16]
        assert item.secret_hash == hashlib.sha256(item.key.encode()).hexdigest()
    assert len({item.key for item in generated}) == 50
    assert len({item.prefix for item in generated}) == 50


def test_hash_key_is_hex_sha256():
    assert keys.hash_key("wdn_abc") == hashlib.sha256(b"wdn_abc").hexdigest()
    assert len(keys.hash_key("x")) == 64


@pytest.mark.parametrize(
    "key",
    [
        "",
        "wdn_",
        "wdn_abcdefghijkl",
        "wdn_ABCDEFGHIJKL_" + "a" * 40,  # upper-case prefix
        "wdn_abcdefghijk_" + "a" * 40,  # 11-character prefix
        "wdn_abcdefghijkl_" + "a" * 39,  # short secret
        "wdn_abcdefghijkl_" + "a" * 41,  # long secret
        "wdn_abcdefghijkl_" + "a" * 39 + "-",
        "xyz_abcdefghijkl_" + "a" * 40,
        " wdn_abcdefghijkl_" + "a" * 40,
        "wdn_abcdefghijkl_" + "a" * 40 + "\n",
    ],
)
def test_parse_prefix_refuses_malformed_keys(key):
    assert keys.parse_prefix(key) is None


def test_parse_prefix_and_key_matches():
    item = keys.generate_key()
    assert keys.parse_prefix(item.key) == item.prefix
    assert keys.key_matches(item.key, item.secret_hash)
    assert not keys.key_matches(item.key[:-1] + ("A" if item.key[-1] != "A" else "B"), item.secret_hash)


# Issuing -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_issue_returns_the_key_once_and_stores_only_its_hash(actor):
    agent = AgentFactory(status=AgentStatus.ACTIVE)
    before = ChangeRecord.objects.count()

    issued = services.credential_issue(actor=actor, agent=agent, name=" production ")

    assert KEY_FORMAT.match(issued.key)
    credential = Credential.objects.get(pk=issued.credential.pk)
    assert credential.name == "production"
    assert credential.prefix == keys.parse_prefix(issued.key)
    assert credential.secret_hash == keys.hash_key(issued.key)
    assert credential.state() == "active"
    # The default lifetime applies when no expiry is given.
    expected = timezone.now() + dt.timedelta(days=90)
    assert abs(credential.expires_at - expected) < dt.timedelta(minutes=1)
    assert ChangeRecord.objects.count() == before + 1
    record = assert_change_record(credential, ChangeAction.CREDENTIAL_ISSUED, actor=actor)
    assert record.agent_id == agent.pk
    assert "secret_hash" not in record.after
    assert record.after["prefix"] == credential.prefix


@pytest.mark.django_db
def test_plaintext_key_is_nowhere_in_the_database(actor):
    agent = AgentFactory(status=AgentStatus.ACTIVE)
    issued = services.credential_issue(actor=actor, agent=agent, name="prod")
    rotated = services.credential_rotate(actor=actor, credential=issued.credential)
    services.credential_authenticate(rotated.key)
    secrets = {issued.key, issued.key.rsplit("_", 1)[1], rotated.key, rotated.key.rsplit("_", 1)[1]}

    scanned = 0
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608 - table names from introspection
            for row in cursor.fetchall():
                text = " ".join(str(value) for value in row)
                scanned += 1
                for secret in secrets:
                    assert secret not in text, f"key material found in table {table}"
    assert scanned > 0
    # The tables that hold key facts were among those scanned.
    assert {"registry_credential", "registry_changerecord"} <= set(connection.introspection.table_names())


@pytest.mark.django_db
def test_issue_refuses_a_past_expiry(actor):
    agent = AgentFactory()
    with pytest.raises(InvalidInput) as error:
        services.credential_issue(actor=actor, agent=agent, expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert "expires_at" in error.value.detail
    assert not Credential.objects.exists()


@pytest.mark.django_db
def test_issue_without_default_ttl_never_expires(actor, settings):
    settings.WARDEN = {"CREDENTIAL_DEFAULT_TTL_DAYS": 0}
    issued = services.credential_issue(actor=actor, agent=AgentFactory())
    assert issued.credential.expires_at is None


@pytest.mark.django_db
def test_issue_to_a_retired_agent_is_a_conflict(actor):
    with pytest.raises(Conflict):
        services.credential_issue(actor=actor, agent=AgentFactory(status=AgentStatus.RETIRED))


# Authentication ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_authenticate_accepts_the_key_and_notes_its_use(actor):
    agent = AgentFactory(status=AgentStatus.ACTIVE)
    issued = services.credential_issue(actor=actor, agent=agent)
    records = ChangeRecord.objects.count()

    credential = services.credential_authenticate(issued.key)

    assert credential.pk == issued.credential.pk
    assert credential.agent == agent
    assert Credential.objects.get(pk=credential.pk).last_used_at is not None
    # Usage is not a governed change: no record.
    assert ChangeRecord.objects.count() == records


def _reason(key: str) -> str:
    with pytest.raises(AuthenticationFailed) as error:
        services.credential_authenticate(key)
    assert error.value.status == 401
    return error.value.detail["reason"]


@pytest.mark.django_db
def test_authenticate_refuses_malformed_and_unknown_keys(actor):
    issued = services.credential_issue(actor=actor, agent=AgentFactory())
    assert _reason("") == "malformed"
    assert _reason("Bearer " + issued.key) == "malformed"
    assert _reason(issued.key + "x") == "malformed"
    assert _reason(keys.generate_key().key) == "unknown"
    # The right prefix with a wrong secret is as unknown as a made-up key.
    prefix, secret = issued.key[:17], issued.key[17:]
    assert _reason(prefix + secret[::-1]) == "unknown"


@pytest.mark.django_db
def test_authenticate_refuses_expired_keys(actor, monkeypatch):
    issued = services.credential_issue(
        actor=actor, agent=AgentFactory(), expires_at=timezone.now() + dt.timedelta(hours=1)
    )
    assert services.credential_authenticate(issued.key)
    later = timezone.now() + dt.timedelta(hours=1, seconds=1)
    monkeypatch.setattr(timezone, "now", lambda: later)
    assert _reason(issued.key) == "expired"


@pytest.mark.django_db
def test_authenticate_refuses_revoked_keys(actor):
    issued = services.credential_issue(actor=actor, agent=AgentFactory())
    services.credential_revoke(actor=actor, credential=issued.credential, reason="Leaked in a log.")
    assert _reason(issued.key) == "revoked"


# Rotation and revocation -------------------------------------------------------------------


@pytest.mark.django_db
def test_rotation_without_grace_stops_the_old_key_now(actor):
    agent = AgentFactory(status=AgentStatus.ACTIVE)
    old = services.credential_issue(actor=actor, agent=agent, name="prod")
    before = ChangeRecord.objects.count()

    new = services.credential_rotate(actor=actor, credential=old.credential)

    assert new.key != old.key
    assert new.credential.name == "prod"
    assert new.credential.replaces_id == old.credential.pk
    assert services.credential_authenticate(new.key).pk == new.credential.pk
    assert _reason(old.key) == "revoked"
    assert Credential.objects.get(pk=old.credential.pk).revoked_reason == "Rotated."
    assert ChangeRecord.objects.count() == before + 2
    rotated = assert_change_record(old.credential, ChangeAction.CREDENTIAL_ROTATED, actor=actor)
    assert new.credential.prefix in rotated.reason
    issued = assert_change_record(new.credential, ChangeAction.CREDENTIAL_ISSUED, actor=actor)
    assert old.credential.prefix in issued.reason


@pytest.mark.django_db
def test_rotation_with_grace_keeps_the_old_key_until_it_ends(actor, monkeypatch):
    old = services.credential_issue(actor=actor, agent=AgentFactory())
    new = services.credential_rotate(actor=actor, credential=old.credential, grace=dt.timedelta(minutes=10))

    assert services.credential_authenticate(old.key).pk == old.credential.pk
    assert services.credential_authenticate(new.key).pk == new.credential.pk
    stored = Credential.objects.get(pk=old.credential.pk)
    assert stored.revoked_at is None
    assert abs(stored.expires_at - (timezone.now() + dt.timedelta(minutes=10))) < dt.timedelta(minutes=1)

    later = timezone.now() + dt.timedelta(minutes=11)
    monkeypatch.setattr(timezone, "now", lambda: later)
    assert _reason(old.key) == "expired"
    assert services.credential_authenticate(new.key).pk == new.credential.pk


@pytest.mark.django_db
def test_grace_never_extends_a_key_that_expires_sooner(actor):
    soon = timezone.now() + dt.timedelta(minutes=5)
    old = services.credential_issue(actor=actor, agent=AgentFactory(), expires_at=soon)
    services.credential_rotate(actor=actor, credential=old.credential, grace=dt.timedelta(days=1))
    assert Credential.objects.get(pk=old.credential.pk).expires_at == soon


@pytest.mark.django_db
def test_rotating_a_revoked_or_already_rotated_key_is_a_conflict(actor):
    agent = AgentFactory()
    revoked = services.credential_issue(actor=actor, agent=agent)
    services.credential_revoke(actor=actor, credential=revoked.credential)
    with pytest.raises(Conflict):
        services.credential_rotate(actor=actor, credential=revoked.credential)

    graced = services.credential_issue(actor=actor, agent=agent)
    services.credential_rotate(actor=actor, credential=graced.credential, grace=dt.timedelta(hours=1))
    count = Credential.objects.count()
    with pytest.raises(Conflict):
        services.credential_rotate(actor=actor, credential=graced.credential)
    assert Credential.objects.count() == count


@pytest.mark.django_db
def test_revoke_records_once_and_is_idempotent(actor):
    issued = services.credential_issue(actor=actor, agent=AgentFactory())
    before = ChangeRecord.objects.count()
    services.credential_revoke(actor=actor, credential=issued.credential, reason=" Leaked. ")
    services.credential_revoke(actor=actor, credential=issued.credential, reason="Again.")
    assert ChangeRecord.objects.count() == before + 1
    record = assert_change_record(issued.credential, ChangeAction.CREDENTIAL_REVOKED, actor=actor)
    assert record.reason == "Leaked."
    assert record.before["revoked_at"] is None
    assert record.after["revoked_at"] is not None
    assert Credential.objects.get(pk=issued.credential.pk).revoked_reason == "Leaked."


@pytest.mark.django_db
def test_credential_state_and_str():
    now = timezone.now()
    assert Credential(prefix="abc").state(now) == "active"
    assert Credential(expires_at=now).state(now) == "expired"
    assert Credential(expires_at=now + dt.timedelta(seconds=1)).state(now) == "active"
    assert Credential(revoked_at=now, expires_at=now).state(now) == "revoked"
    assert "secret" not in str(Credential(prefix="abcdefghijkl", name="ci"))
    assert str(Credential(prefix="abcdefghijkl", name="ci")).startswith("wdn_abcdefghijkl_")
