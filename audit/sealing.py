"""Sealing: unsealed records, in sequence order, become the next block of the chain.

One sealer at a time (a PostgreSQL advisory lock; SQLite serialises writers itself), each block
in its own transaction: a sealer killed mid-block leaves nothing behind, and the next run
seals the same records again. Writers are never blocked: they only append records.

Sequence order is not commit order. A record whose transaction commits after a later-numbered
record was sealed is still unsealed, and the next block takes it: blocks list their records
explicitly (`Seal`), so a block may hold a record numbered below the previous block's last.
Verification reports such records as sealed late, with the block that passed them by.
Only records written within WARDEN_AUDIT_LATE_SECONDS of the last seal are looked for, so the
search stays small however long the trail grows; `audit_verify` reports any older record that
is still unsealed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass

from django.db import IntegrityError, connections, router, transaction
from django.db.models import Max, QuerySet
from django.utils import timezone

from audit import merkle
from audit.models import GENESIS, AuditRecord, Block, Seal, block_header
from core.canonical import canonical_json
from core.conf import warden_settings

log = logging.getLogger(__name__)

_LOCK_KEY = 0x57415244454E  # "WARDEN": pg_advisory_xact_lock key of the sealer


@dataclass(frozen=True)
class SealResult:
    blocks: list[int]
    records: int


def seal_pending(*, everything: bool = False) -> SealResult:
    """Seal what is pending when the pass starts, in blocks of at most WARDEN_AUDIT_SEAL_BATCH.

    Records written during the pass wait for the next one, so a pass ends however busy the
    writers are. `everything` also looks beyond the late-commit horizon (a full scan).
    """
    ceiling = AuditRecord.objects.aggregate(top=Max("seq"))["top"]
    heights: list[int] = []
    records, late = 0, True  # the first block of a pass also looks for late commits
    batch = warden_settings.AUDIT_SEAL_BATCH
    while ceiling is not None:
        sealed = seal_block(ceiling=ceiling, batch=batch, late=late, everything=everything)
        if sealed is None:
            break
        block, late_records = sealed
        heights.append(block.height)
        records += block.size
        late = late_records == block.size  # a block full of late records: there may be more
        if block.size < batch:
            break
    return SealResult(heights, records)


def seal_block(*, ceiling: int, batch: int, late: bool = True, everything: bool = False) -> tuple[Block, int] | None:
    """Seal the next unsealed records numbered up to `ceiling` into one block (and say how many were late).

    The candidates are read and hashed before the write transaction (on SQLite the write lock
    is held only to append); inside it, the chain head is checked again, and another sealer
    having appended meanwhile makes this attempt start over.
    """
    connection = connections[router.db_for_write(Block)]
    for _attempt in range(5):
        previous = Block.objects.order_by("-height").first()
        records, late_records = _candidates(previous, ceiling=ceiling, batch=batch, late=late, everything=everything)
        if not records:
            return None
        leaves = [merkle.leaf_hash(record.entry()) for record in records]
        try:
            with transaction.atomic(using=connection.alias):
                if connection.vendor == "postgresql":
                    with connection.cursor() as cursor:
                        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
                head = Block.objects.order_by("-height").values_list("block_hash", flat=True).first()
                if head != (previous.block_hash if previous else None):
                    continue  # another sealer appended a block meanwhile: look again
                return _append_block(previous, records, leaves), late_records
        except IntegrityError:
            log.info("Another sealer sealed these records first; looking again.")
    return None


def _candidates(
    previous: Block | None, *, ceiling: int, batch: int, late: bool, everything: bool
) -> tuple[list[AuditRecord], int]:
    """The next records to seal, in sequence order, and how many of them committed late.

    Every record numbered above the highest sealed one is unsealed: those are read by primary
    key range. Below it, only records that committed late can be unsealed; they are looked for
    within the horizon (an index range on `at`), once per pass.
    """
    # The leaf covers the payload through its digest: the payload itself need not be read.
    records = AuditRecord.objects.defer("payload").order_by("seq")
    if everything or previous is None:
        return list(records.filter(seal__isnull=True, seq__lte=ceiling)[:batch]), 0
    high_water = Seal.objects.aggregate(top=Max("record_id"))["top"] or 0
    stragglers = (
        list(unsealed(previous).filter(seq__lte=high_water).defer("payload").order_by("seq")[:batch]) if late else []
    )
    fresh = list(records.filter(seq__gt=high_water, seq__lte=ceiling)[: batch - len(stragglers)])
    return stragglers + fresh, len(stragglers)


def unsealed(previous: Block | None) -> QuerySet[AuditRecord]:
    """Records without a seal, written since the horizon before `previous` was sealed (all if None)."""
    pending = AuditRecord.objects.filter(seal__isnull=True)
    if previous is not None:
        horizon = previous.sealed_at - dt.timedelta(seconds=warden_settings.AUDIT_LATE_SECONDS)
        pending = pending.filter(at__gte=horizon)
    return pending


def _append_block(previous: Block | None, records: list[AuditRecord], leaves: list[bytes]) -> Block:
    height = 0 if previous is None else previous.height + 1
    header = block_header(
        height=height,
        sealed_at=timezone.now(),
        size=len(records),
        first_seq=records[0].seq,
        last_seq=records[-1].seq,
        merkle_root=merkle.root(leaves).hex(),
        previous_hash=GENESIS if previous is None else previous.block_hash,
    )
    block = Block(
        height=height,
        sealed_at=_parse(header["sealed_at"]),
        size=header["size"],
        first_seq=header["first_seq"],
        last_seq=header["last_seq"],
        merkle_root=header["merkle_root"],
        previous_hash=header["previous_hash"],
        block_hash=block_hash(header),
    )
    block.save(force_insert=True)
    Seal.objects.bulk_create(
        [
            Seal(record_id=record.seq, block=block, leaf_index=index, leaf_hash=leaf.hex())
            for index, (record, leaf) in enumerate(zip(records, leaves, strict=True))
        ]
    )
    return block


def block_hash(header: dict) -> str:
    return hashlib.sha256(canonical_json(header)).hexdigest()


def _parse(stamp: str) -> dt.datetime:
    """The sealing time exactly as hashed (microseconds, UTC)."""
    return dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


def pending_count() -> int:
    """How many records wait for the sealer, without an anti-join over the whole trail.

    Records above the highest sealed number (a primary-key range), plus those below it that
    committed late and are still within the horizon the sealer searches.
    """
    high_water = Seal.objects.aggregate(top=Max("record_id"))["top"] or 0
    above = AuditRecord.objects.filter(seq__gt=high_water).count()
    previous = Block.objects.order_by("-height").first()
    if previous is None:
        return above
    return above + unsealed(previous).filter(seq__lte=high_water).count()
