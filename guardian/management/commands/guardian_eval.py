"""`manage.py guardian_eval [FILE ...]`: measure the guardian's scorers on labelled JSON Lines.

Prints a table per file and kind and pooled per kind over all the files (rows: scorers;
columns: n_pos, n_neg, precision, recall, F1, FPR at each scorer's own threshold, ROC AUC,
recall at 1% and 5% FPR, p50 and p99 latency), the SLM's throughput when it ran, notes, and as
its last line one JSON object keyed `<file stem>/<kind>` and `all/<kind>` with the primary
scorer's figures. See `guardian.evaluation` for the definitions.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from guardian.evaluation import ENSEMBLE, SPLITS, DatasetError, EvaluationError, Report, default_files, evaluate


class Command(BaseCommand):
    help = (
        "Score labelled JSON Lines (shared/eval schema) with the guardian's scorers and print precision, recall, "
        "FPR, AUC, recall at 1%/5% FPR and latency per file and kind; the last line is JSON."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("files", nargs="*", help="labelled JSON Lines files (default: ../shared/eval/*.jsonl)")
        parser.add_argument(
            "--scorers",
            default="",
            help="comma-separated scorer names and/or 'ensemble' (default: every available scorer plus 'ensemble'; "
            "the ensemble always combines every available fast scorer)",
        )
        parser.add_argument(
            "--primary",
            default=None,
            help=f"the scorer whose figures go into the JSON line (default: {ENSEMBLE}, or the first of --scorers "
            f"when {ENSEMBLE} is not among them)",
        )
        parser.add_argument(
            "--split",
            choices=SPLITS,
            default="all",
            help="'validation': only the rows the classifier was not trained on (its artifact records the split)",
        )
        parser.add_argument("--limit", type=int, default=None, help="at most N rows per file, evenly spaced")

    def handle(self, *args: Any, **options: Any) -> None:
        names = [name.strip() for name in options["scorers"].split(",") if name.strip()] or None
        if options["limit"] is not None and options["limit"] < 1:
            raise CommandError("--limit must be at least 1.")
        try:
            report = evaluate(
                options["files"] or default_files(),
                scorers=names,
                primary=options["primary"],
                split=options["split"],
                limit=options["limit"],
                progress=self.stdout.write,
            )
        except (DatasetError, EvaluationError) as error:
            raise CommandError(str(error)) from error
        self.write_report(report)

    def write_report(self, report: Report) -> None:
        for line in report.lines:
            self.stdout.write(line)
        if report.notes:
            self.stdout.write("\nNotes:")
            for note in report.notes:
                self.stdout.write(f"  - {note}")
        self.stdout.write(json.dumps(report.summary, sort_keys=False))
