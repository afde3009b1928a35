"""`manage.py guardian_train [FILE ...]`: train the classifier scorer and write its artifact.

Reads labelled JSON Lines (default: ../shared/eval/*.jsonl from the repository root), splits
them by source and category, fits one logistic regression per subject kind with numpy, writes
guardian/models/classifier.json and prints the validation figures per kind. Deterministic: the
same files and options rebuild a byte-identical artifact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from guardian.evaluation import DatasetError, Metrics, cell, table
from guardian.scorers import classifier


class Command(BaseCommand):
    help = "Train the guardian's classifier scorer on labelled JSON Lines and write guardian/models/classifier.json."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("files", nargs="*", help="labelled JSON Lines files (default: ../shared/eval/*.jsonl)")
        parser.add_argument("--output", type=Path, default=classifier.ARTIFACT_PATH, help="where to write the artifact")
        parser.add_argument("--seed", type=int, default=1729, help="the seed of the (only) random step")
        parser.add_argument("--dim-bits", type=int, default=18, help="hashed feature space: 2**bits columns")
        parser.add_argument("--l2", type=float, default=3e-4, help="L2 penalty on the weights")
        parser.add_argument("--max-iterations", type=int, default=300, help="L-BFGS iterations per fit")
        parser.add_argument("--target-fpr", type=float, default=0.02, help="out-of-fold FPR of the chosen threshold")
        parser.add_argument("--max-weights", type=int, default=40_000, help="weights kept per kind (largest first)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            from guardian.training.train import TrainConfig, default_files, train
        except ImportError as error:  # numpy is a development dependency
            raise CommandError(f"Training needs the development requirements ({error}).") from error
        files = [Path(name) for name in options["files"]] or default_files()
        if not files:
            raise CommandError("No labelled files given and none found in ../shared/eval/*.jsonl.")
        config = TrainConfig(
            files=tuple(files),
            output=options["output"],
            seed=options["seed"],
            dim_bits=options["dim_bits"],
            l2=options["l2"],
            max_iterations=options["max_iterations"],
            target_fpr=options["target_fpr"],
            max_weights=options["max_weights"],
        )
        try:
            result = train(config, log=self.stdout.write)
        except DatasetError as error:
            raise CommandError(str(error)) from error
        except ValueError as error:
            raise CommandError(f"Training failed: {error}") from error

        rows = []
        for report in result.kinds:
            for name, figures in (("out-of-fold (train)", report.out_of_fold), ("validation", report.validation)):
                rows.append([report.kind, name, *_cells(figures)])
        self.stdout.write("")
        self.stdout.write(
            table(
                ["kind", "split", "n_pos", "n_neg", "precision", "recall", "FPR", "AUC", "recall@1%", "recall@5%"],
                rows,
            )
        )
        self.stdout.write(
            f"\nWrote {result.output} ({result.size_bytes / 1024:.0f} KiB, sha256 {result.sha256[:16]}…) "
            f"in {result.seconds:.1f} s."
        )


def _cells(figures: Metrics | None) -> list[str]:
    if figures is None:
        return ["-"] * 8
    values = [
        figures.precision,
        figures.recall,
        figures.fpr,
        figures.auc,
        figures.recall_at_1fpr,
        figures.recall_at_5fpr,
    ]
    return [str(figures.n_pos), str(figures.n_neg), *(cell(value) for value in values)]
