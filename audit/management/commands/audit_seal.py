"""manage.py audit_seal: seal unsealed audit records now, without waiting for Celery beat."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from audit.sealing import seal_pending


class Command(BaseCommand):
    help = "Seal every unsealed audit record into new blocks now."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--all",
            action="store_true",
            help="also look beyond the late-commit horizon (scans the whole trail)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        result = seal_pending(everything=options["all"])
        if result.blocks:
            heights = f"{result.blocks[0]}" if len(result.blocks) == 1 else f"{result.blocks[0]}-{result.blocks[-1]}"
            self.stdout.write(f"Sealed {result.records} record(s) into block(s) {heights}.")
        else:
            self.stdout.write("Nothing to seal.")
