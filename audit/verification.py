"""Verification: recompute every digest, leaf, Merkle root, block hash and chain link.

`verify_trail()` walks the chain from block 0 and reports, in order, everything that does not
match what was sealed, naming the record or block; it also reports records sealed late (their
transaction committed after a later-numbered record was sealed: expected, and accounted for)
and records still unsealed beyond the sealer's horizon. `manage.py audit_verify` prints it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from audit import merkle
from audit.models import GENESIS, AuditRecord, Block, Seal
from audit.sealing import block_hash
from core.conf import warden_settings

MAX_PROBLEMS = 100


@dataclass(frozen=True)
class Problem:
    kind: str  # record, block, chain, unsealed
    where: str  # "record 42", "block 7"
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(frozen=True)
class LateSeal:
    seq: int
    block: int
    passed_by: int  # the block that had already sealed a higher sequence number
    passed_seq: int


@dataclass
class Report:
    blocks: int = 0
    records: int = 0
    problems: list[Problem] = field(default_factory=list)
    late: list[LateSeal] = field(default_factory=list)
    late_total: int = 0
    unsealed_recent: int = 0
    head: str = GENESIS

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, kind: str, where: str, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(kind, where, message))


def verify_trail() -> Report:
    report = Report()
    expected_height, previous_hash, highest_seq, highest_block = 0, GENESIS, 0, -1
    last_sealed_at: dt.datetime | None = None
    for block in _blocks():
        report.blocks += 1
        where = f"block {block.height}"
        if block.height != expected_height:
            report.add("chain", f"block {expected_height}", f"missing: block {block.height} follows it")
        if block.previous_hash != previous_hash:
            report.add(
                "chain",
                where,
                "does not link to the block before it "
                f"(previous_hash {block.previous_hash[:16]}…, expected {previous_hash[:16]}…)",
            )
        if block_hash(block.header()) != block.block_hash:
            report.add("block", where, "its header does not match its block hash (a block field was changed)")
        _check_block(block, report)
        if block.first_seq < highest_seq:
            _note_late(block, highest_seq, highest_block, report)
        if block.last_seq > highest_seq:
            highest_seq, highest_block = block.last_seq, block.height
        expected_height, previous_hash = block.height + 1, block.block_hash
        last_sealed_at = block.sealed_at
    report.head = previous_hash
    _check_unsealed(report, last_sealed_at)
    return report


def _blocks(chunk: int = 500) -> Iterator[Block]:
    after = -1
    while True:
        blocks = list(Block.objects.filter(height__gt=after).order_by("height")[:chunk])
        if not blocks:
            return
        yield from blocks
        after = blocks[-1].height


def _check_block(block: Block, report: Report) -> None:
    where = f"block {block.height}"
    seals = list(Seal.objects.filter(block=block).order_by("leaf_index"))
    records = AuditRecord.objects.in_bulk([seal.record_id for seal in seals])
    report.records += len(records)
    if [seal.leaf_index for seal in seals] != list(range(len(seals))) or len(seals) != block.size:
        report.add("block", where, f"seals {len(seals)} records, its header says {block.size}")
    previous_seq = None
    for seal in seals:
        record = records.get(seal.record_id)
        if record is None:
            report.add("record", f"record {seal.record_id}", f"sealed in {where} but missing (deleted)")
            continue
        if previous_seq is not None and record.seq <= previous_seq:
            report.add("block", where, f"records out of sequence order at leaf {seal.leaf_index}")
        previous_seq = record.seq
        if hashlib.sha256(record.payload.encode("utf-8")).hexdigest() != record.payload_digest:
            report.add("record", f"record {record.seq}", "payload does not match its digest (payload changed)")
        if merkle.leaf_hash(record.entry()).hex() != seal.leaf_hash:
            report.add(
                "record", f"record {record.seq}", f"does not match its sealed leaf in {where} (a field was changed)"
            )
    root = merkle.root([bytes.fromhex(seal.leaf_hash) for seal in seals]).hex() if seals else None
    if root != block.merkle_root:
        report.add("block", where, "its Merkle root does not match its sealed leaves (a seal was changed)")
    if (
        seals
        and (records_seq := sorted(records))
        and (records_seq[0], records_seq[-1])
        != (
            block.first_seq,
            block.last_seq,
        )
    ):
        report.add("block", where, "its first/last sequence numbers do not match its records")


def _note_late(block: Block, highest_seq: int, highest_block: int, report: Report) -> None:
    late = Seal.objects.filter(block=block, record_id__lt=highest_seq).order_by("record_id")
    for seal in late.values_list("record_id", flat=True).iterator():
        report.late_total += 1
        if len(report.late) < MAX_PROBLEMS:
            report.late.append(LateSeal(seal, block.height, highest_block, highest_seq))


def _check_unsealed(report: Report, last_sealed_at: dt.datetime | None) -> None:
    unsealed = AuditRecord.objects.filter(seal__isnull=True)
    if last_sealed_at is None:
        report.unsealed_recent = unsealed.count()
        return
    horizon = last_sealed_at - dt.timedelta(seconds=warden_settings.AUDIT_LATE_SECONDS)
    report.unsealed_recent = unsealed.filter(at__gte=horizon).count()
    for seq in unsealed.filter(at__lt=horizon).order_by("seq").values_list("seq", flat=True)[:MAX_PROBLEMS]:
        report.add(
            "unsealed",
            f"record {seq}",
            "is older than the sealing horizon and in no block (committed very late, or its seal was "
            "deleted); `manage.py audit_seal --all` seals it",
        )
