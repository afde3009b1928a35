"""manage.py audit_export: JSON Lines of sealed records with their blocks and inclusion proofs."""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from audit.models import AuditRecord, Block, Seal
from audit.proofs import block_document, block_tree, proof_document


def moment(text: str) -> dt.datetime:
    """An ISO 8601 date or date-time; naive values are in the server's time zone."""
    value = parse_datetime(text)
    if value is None and (day := parse_date(text)) is not None:
        value = dt.datetime.combine(day, dt.time.min)
    if value is None:
        raise CommandError(f"Not an ISO 8601 date or date-time: {text!r}")
    return timezone.make_aware(value) if timezone.is_naive(value) else value


class Command(BaseCommand):
    help = (
        "Write the sealed audit records made in [--since, --until) as JSON Lines: each block "
        '({"type": "block"}) followed by its records with their inclusion proofs ({"type": "record"}), '
        "then a summary line. Each line verifies on its own (see docs/audit-proofs.md)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", type=moment, help="first instant included (ISO 8601)")
        parser.add_argument("--until", type=moment, help="first instant excluded (ISO 8601)")
        parser.add_argument("--output", "-o", help="file to write (default: standard output)")

    def handle(self, *args: Any, **options: Any) -> None:
        records = AuditRecord.objects.all()
        if options["since"]:
            records = records.filter(at__gte=options["since"])
        if options["until"]:
            records = records.filter(at__lt=options["until"])
        out = open(options["output"], "w", encoding="utf-8") if options["output"] else sys.stdout  # noqa: SIM115
        try:
            counts = self._export(records, out)
        finally:
            if out is not sys.stdout:
                out.close()
        self.stderr.write(
            f"Exported {counts['records']} sealed record(s) in {counts['blocks']} block(s); "
            f"{counts['unsealed']} record(s) in the range are not sealed yet and were left out."
        )

    def _export(self, records: Any, out: Any) -> dict[str, Any]:
        heights = Seal.objects.filter(record__in=records.values("seq")).values_list("block_id", flat=True).distinct()
        exported = blocks = 0
        head = None
        for block in Block.objects.filter(height__in=heights).order_by("height").iterator(chunk_size=100):
            blocks += 1
            head = block.block_hash
            out.write(json.dumps({"type": "block", "height": block.height, **block_document(block)}) + "\n")
            tree = block_tree(block)
            in_block = records.filter(seal__block=block).select_related("seal__block").order_by("seq")
            for record in in_block.iterator(chunk_size=1000):
                out.write(json.dumps({"type": "record", **proof_document(record, tree)}, ensure_ascii=False) + "\n")
                exported += 1
        unsealed = records.filter(seal__isnull=True).count()
        summary = {"type": "summary", "records": exported, "blocks": blocks, "last_block_hash": head}
        out.write(json.dumps({**summary, "unsealed_left_out": unsealed}) + "\n")
        return {"records": exported, "blocks": blocks, "unsealed": unsealed}
