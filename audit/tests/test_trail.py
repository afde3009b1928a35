"""Appending, sealing and verifying the trail, and what verification says after tampering.

Tampering is done the way an insider with database access would: raw SQL, with PostgreSQL's
append-only triggers switched off (`session_replication_role = replica`, a superuser's power).
"""

from __future__ import annotations

import datetime as dt
import json
import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, connections, transaction
from django.test import override_settings
from django.utils import timezone

from audit import services
from audit.models import AuditRecord, Block, Seal
from audit.sealing import seal_pending
from audit.verification import verify_trail
from core.actors import Actor

pytestmark = pytest.mark.django_db

ACTOR = Actor(kind="user", id="7", label="ada")
postgres_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL only")


def append(n: int, **extra) -> list[AuditRecord]:
    records = []
    for i in range(n):
        with transaction.atomic():
            records.append(
                services.append(
                    actor=ACTOR,
                    action="grant.added",
                    subject_type="grant",
                    subject_id=str(i),
                    payload={"i": i, "note": "ünïcode ✓", "amount": 1.5, "big": 2**60},
                    agent_id="agent-1",
                    tool="payments.transfer",
                    **extra,
                )
            )
    return records


def raw(sql: str, params: list | None = None) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = replica")
        try:
            cursor.execute(sql, params or [])
        finally:
            if connection.vendor == "postgresql":
                cursor.execute("SET session_replication_role = DEFAULT")


def verify_fails_at(where: str, words: str) -> None:
    with pytest.raises(CommandError) as failure:
        call_command("audit_verify", stdout=open("/dev/null", "w"), stderr=open("/dev/null", "w"))  # noqa: SIM115
    assert f"failed at {where}:" in str(failure.value), str(failure.value)
    assert words in str(failure.value), str(failure.value)


@pytest.fixture
def trail() -> list[AuditRecord]:
    """12 records in blocks of 5, 5 and 2, then 2 not sealed yet."""
    records = append(12)
    with override_settings(WARDEN={"AUDIT_SEAL_BATCH": 5}):
        assert seal_pending().blocks == [0, 1, 2]
    records += append(2)
    assert verify_trail().ok
    return records


def test_records_hold_canonical_payloads_and_their_digests(trail):
    record = trail[0]
    assert record.payload == '{"amount":1.5,"big":"1152921504606846976","i":0,"note":"ünïcode ✓"}'
    assert json.loads(record.payload)["big"] == str(2**60)  # beyond 2^53: kept exact, as a string


@pytest.mark.django_db(transaction=True)
def test_append_refuses_to_run_outside_a_transaction():
    with pytest.raises(RuntimeError, match="inside the transaction"):
        services.append(actor=ACTOR, action="x.y", subject_type="x", subject_id="1", payload={})


def test_blocks_chain_and_each_record_is_sealed_once(trail):
    blocks = list(Block.objects.order_by("height"))
    assert [block.size for block in blocks] == [5, 5, 2]
    assert blocks[0].previous_hash == "0" * 64
    assert [b.previous_hash for b in blocks[1:]] == [b.block_hash for b in blocks[:-1]]
    assert Seal.objects.count() == 12
    assert seal_pending().records == 2
    assert seal_pending().records == 0
    assert Seal.objects.count() == AuditRecord.objects.count() == 14
    report = verify_trail()
    assert (report.ok, report.blocks, report.records, report.unsealed_recent) == (True, 4, 14, 0)


def test_the_orm_refuses_to_update_or_delete(trail):
    record = trail[0]
    record.payload = "{}"
    for attempt in (record.save, record.delete, AuditRecord.objects.all().delete, Block.objects.all().delete):
        with pytest.raises(ValueError, match="append-only"):
            attempt()
    with pytest.raises(ValueError, match="append-only"):
        AuditRecord.objects.filter(pk=record.pk).update(payload="{}")


@postgres_only
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_auditrecord SET payload = '{}'",
        "DELETE FROM audit_auditrecord",
        "UPDATE audit_block SET merkle_root = 'x'",
        "DELETE FROM audit_seal",
    ],
)
def test_postgres_triggers_refuse_update_and_delete(trail, sql):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql)


@pytest.mark.parametrize(
    ("tamper", "where", "words"),
    [
        ("UPDATE audit_auditrecord SET payload = '{\"i\":99}' WHERE seq = %(s6)s", "record {s6}", "payload changed"),
        (
            "UPDATE audit_auditrecord SET payload = '{}', payload_digest = "
            "'44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a' WHERE seq = %(s6)s",
            "record {s6}",
            "a field was changed",
        ),
        ("UPDATE audit_auditrecord SET actor_label = 'mallory' WHERE seq = %(s2)s", "record {s2}", "field was changed"),
        ("UPDATE audit_auditrecord SET at = at - interval '1 hour' WHERE seq = %(s2)s", "record {s2}", "field"),
        ("DELETE FROM audit_auditrecord WHERE seq = %(s7)s", "record {s7}", "missing (deleted)"),
        ("DELETE FROM audit_seal WHERE record_id = %(s7)s", "block 1", "seals 4 records, its header says 5"),
        ("UPDATE audit_seal SET leaf_hash = repeat('0', 64) WHERE record_id = %(s3)s", "record {s3}", "sealed leaf"),
        ("UPDATE audit_block SET merkle_root = repeat('a', 64) WHERE height = 1", "block 1", "block field"),
        ("DELETE FROM audit_seal WHERE block_id = 1; DELETE FROM audit_block WHERE height = 1", "block 1", "missing"),
    ],
)
def test_tampering_is_named(trail, tamper, where, words):
    seqs = {f"s{i}": record.seq for i, record in enumerate(trail)}
    sql = tamper % seqs
    if connection.vendor == "sqlite":
        sql = sql.replace("at - interval '1 hour'", "'2020-01-01 00:00:00'").replace(
            "repeat('0', 64)", "'" + "0" * 64 + "'"
        )
        sql = sql.replace("repeat('a', 64)", "'" + "a" * 64 + "'")
    for statement in sql.split("; "):
        raw(statement)
    verify_fails_at(where.format(**seqs), words)


def test_reordering_records_is_named(trail):
    a, b = trail[1].seq, trail[2].seq
    for old, new in ((a, -1), (b, a), (-1, b)):
        raw("UPDATE audit_auditrecord SET seq = %s WHERE seq = %s", [new, old])
    verify_fails_at(f"record {a}", "does not match its sealed leaf")


def test_a_rewritten_block_breaks_the_link_from_the_next(trail):
    """Recomputing one block's hash after changing it still leaves the next block pointing at the old one."""
    from audit.sealing import block_hash

    block = Block.objects.get(height=1)
    header = {**block.header(), "merkle_root": "b" * 64}
    raw(
        "UPDATE audit_block SET merkle_root = %s, block_hash = %s WHERE height = 1",
        ["b" * 64, block_hash(header)],
    )
    report = verify_trail()
    assert [str(problem) for problem in report.problems][-1].startswith("block 2: does not link")
    verify_fails_at("block 1", "Merkle root")


def test_a_record_committed_late_is_sealed_once_in_a_later_block_and_reported(trail):
    """Sequence order is not commit order: simulate a transaction that took a number, then committed late."""
    seal_pending()
    late_seq = trail[-1].seq + 1
    newer = trail[-1].seq + 2
    now = timezone.now()
    for seq in (newer, late_seq):  # the later number commits first and gets sealed first
        with transaction.atomic():
            record = AuditRecord(
                seq=seq,
                **services.prepare(
                    actor=ACTOR, action="rule.changed", subject_type="rule", subject_id=str(seq), payload={}, at=now
                ).columns,
            )
            record.save(force_insert=True)
        seal_pending()
    seals = dict(Seal.objects.filter(record_id__in=[late_seq, newer]).values_list("record_id", "block_id"))
    assert seals[late_seq] == seals[newer] + 1
    report = verify_trail()
    assert report.ok
    assert report.late_total == 1
    assert (report.late[0].seq, report.late[0].passed_seq) == (late_seq, newer)
    out = call_command_output("audit_verify")
    assert "Sealed late" in out
    assert f"record {late_seq} sealed in block {seals[late_seq]}" in out


@pytest.mark.django_db(transaction=True)
@postgres_only
def test_a_real_late_commit_on_postgres_is_sealed_exactly_once():
    """Two real transactions: the earlier number commits after the later one was sealed."""
    took_number, release = threading.Event(), threading.Event()

    def slow_writer() -> None:
        try:
            with transaction.atomic():
                services.append(
                    actor=ACTOR, action="agent.updated", subject_type="agent", subject_id="slow", payload={}
                )
                took_number.set()
                release.wait(10)
        finally:
            connections.close_all()

    thread = threading.Thread(target=slow_writer)
    thread.start()
    assert took_number.wait(10)
    append(1)  # a later number, committed at once
    first = seal_pending()
    release.set()
    thread.join(10)
    second = seal_pending()
    slow = AuditRecord.objects.get(subject_id="slow")
    fast = AuditRecord.objects.exclude(subject_id="slow").get()
    assert slow.seq < fast.seq
    assert (first.records, second.records) == (1, 1)
    assert Seal.objects.get(record=slow).block_id == Seal.objects.get(record=fast).block_id + 1
    report = verify_trail()
    assert report.ok
    assert report.late_total == 1


def test_a_record_older_than_the_horizon_is_reported_and_sealed_on_request(trail):
    """A record below the highest sealed number, written long before the last seal: beyond the sealer's search."""
    seal_pending()
    top = trail[-1].seq
    old = timezone.now() - dt.timedelta(hours=2)
    for seq, at in ((top + 10, timezone.now()), (top + 5, old)):
        with transaction.atomic():
            record = AuditRecord(
                seq=seq,
                **services.prepare(
                    actor=ACTOR, action="agent.updated", subject_type="agent", subject_id=str(seq), payload={}, at=at
                ).columns,
            )
            record.save(force_insert=True)
        seal_pending()
    assert not Seal.objects.filter(record_id=top + 5).exists()
    verify_fails_at(f"record {top + 5}", "audit_seal --all")
    call_command("audit_seal", "--all", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert Seal.objects.filter(record_id=top + 5).exists()
    assert verify_trail().ok


def call_command_output(*args: str) -> str:
    import io

    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()
