"""`manage.py guardian_train_slm [FILE ...]`: train Warden's guardian SLM and write its GGUF.

Reads labelled JSON Lines (default: ../shared/eval/*.jsonl), trains the small llama-architecture
model of `guardian.training.slm` with PyTorch on the CPU, calibrates a threshold per subject kind
on the validation split, writes guardian/models/warden-guardian.gguf and prints the figures it
reached. `make train-guardian` runs it; it takes about 20 minutes on 2 cores. torch is a
training dependency only (requirements-dev.txt): Warden runs the model through ctransformers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from guardian.evaluation import DatasetError, cell, default_files, table
from guardian.scorers import slm as slm_scorer

# Options that count something: each must be at least 1 when given.
COUNTS = ("epochs", "limit", "vocab_size", "embedding", "layers", "heads", "feed_forward", "context_length", "threads")


class Command(BaseCommand):
    help = "Train the guardian SLM on labelled JSON Lines and write guardian/models/warden-guardian.gguf."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("files", nargs="*", help="labelled JSON Lines files (default: ../shared/eval/*.jsonl)")
        parser.add_argument("--output", type=Path, help="where to write the GGUF (default: the shipped model's path)")
        parser.add_argument("--seed", type=int, default=1729)
        parser.add_argument("--epochs", type=int, help="passes over the training split")
        parser.add_argument("--limit", type=int, help="rows per file and split (a quick run on a sample)")
        parser.add_argument("--vocab-size", type=int, help="vocabulary pieces")
        parser.add_argument("--embedding", type=int, help="model width")
        parser.add_argument("--layers", type=int, help="transformer blocks")
        parser.add_argument("--heads", type=int, help="attention heads")
        parser.add_argument("--feed-forward", type=int, help="SwiGLU hidden width")
        parser.add_argument("--context-length", type=int, help="tokens the model reads (prompt and subject)")
        parser.add_argument("--threads", type=int, help="torch CPU threads (fixed for reproducibility)")
        parser.add_argument("--file-type", choices=("f32", "f16"), help="tensor type of the written matrices")
        parser.add_argument(
            "--prompt-format", choices=slm_scorer.COMPACT_FORMATS, help="the compact prompt the model learns to read"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            from guardian.training.slm import SLMConfig, train
        except ImportError as error:  # torch is a development dependency
            raise CommandError(f"Training the SLM needs the development requirements ({error}).") from error
        files = [Path(name) for name in options["files"]] or default_files()
        if not files:
            raise CommandError("No labelled files given and none found in ../shared/eval/*.jsonl.")
        named = (*COUNTS, "output", "file_type", "prompt_format")
        chosen = {key: options[key] for key in named if options.get(key) is not None}
        for key in COUNTS:
            if key in chosen and chosen[key] < 1:
                raise CommandError(f"--{key.replace('_', '-')} must be at least 1.")
        config = SLMConfig(files=tuple(files), seed=options["seed"], **chosen)
        try:
            result = train(config, progress=self.stdout.write)
        except DatasetError as error:
            raise CommandError(str(error)) from error
        except ValueError as error:
            raise CommandError(f"Training failed: {error}") from error

        rows = [
            [
                figures.kind,
                str(figures.train_pos),
                str(figures.train_neg),
                str(figures.validation_pos),
                str(figures.validation_neg),
                cell(figures.auc),
                cell(figures.recall_at_fpr),
                cell(figures.threshold, 4),
                cell(figures.recall_at_threshold),
                cell(figures.fpr_at_threshold),
            ]
            for figures in result.kinds
        ]
        self.stdout.write("")
        self.stdout.write(
            table(
                [
                    "kind",
                    "train_pos",
                    "train_neg",
                    "val_pos",
                    "val_neg",
                    "val AUC",
                    f"val recall@{config.target_fpr:.0%}",
                    "threshold",
                    "recall",
                    "FPR",
                ],
                rows,
            )
        )
        self.stdout.write(
            f"\nWrote {result.output} ({result.size_bytes / 1e6:.1f} MB, {result.parameters:,} parameters, "
            f"sha256 {result.sha256[:16]}…) in {result.seconds / 60:.1f} min."
        )
