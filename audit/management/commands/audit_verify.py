"""manage.py audit_verify: recompute the whole trail; exit 1 and name the first mismatch if any."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.verification import verify_trail


class Command(BaseCommand):
    help = (
        "Recompute every record digest, Merkle leaf and root, block hash and chain link of the audit "
        "trail. Exits 1 and names the first record or block that does not match."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--show-late", type=int, default=5, help="how many late-sealed records to list")

    def handle(self, *args: Any, **options: Any) -> None:
        report = verify_trail()
        self.stdout.write(f"Blocks: {report.blocks}  sealed records: {report.records}  chain head: {report.head}")
        if report.unsealed_recent:
            self.stdout.write(f"Not sealed yet (within the sealing horizon): {report.unsealed_recent}")
        if report.late_total:
            self.stdout.write(
                f"Sealed late (their transaction committed after a later-numbered record was sealed; "
                f"each sealed once, in the next block): {report.late_total}"
            )
            for late in report.late[: options["show_late"]]:
                self.stdout.write(
                    f"  record {late.seq} sealed in block {late.block}; block {late.passed_by} had already "
                    f"sealed up to record {late.passed_seq}"
                )
        if report.ok:
            self.stdout.write(self.style.SUCCESS("OK: every block, record and chain link matches."))
            return
        first = report.problems[0]
        for problem in report.problems:
            self.stderr.write(f"MISMATCH {problem}")
        raise CommandError(f"Audit trail verification failed at {first.where}: {first.message}")
