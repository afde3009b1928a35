# ruff: noqa: T201  (a command-line tool: it prints)
"""Benchmark the guardian's scorers on the labelled evaluation set: detection, false positives, latency.

    .venv/bin/python benchmarks/guardian.py [FILE ...] [--split all|validation|train] [--limit N]
                                            [--scorers content,classifier,ensemble] [--quick]

Runs what `manage.py guardian_eval` runs (`guardian.evaluation.evaluate`) on
../shared/eval/*.jsonl (or the files given), with settings `benchmarks.settings`: every available
scorer plus the ensemble (a noisy-OR of the fast scorers), one subject at a time in this
process, each scorer warmed up on one subject of each kind first. `--split validation` keeps
only the rows the classifier was not trained on. Prints a table per file and kind and pooled per
kind, a summary against the targets (tool outputs: recall >= 0.90 at 5% FPR; tool calls:
>= 0.80; fast scorers: p99 < 5 ms per item), notes, and as the last line one JSON object:
the primary scorer's figures keyed `<file stem>/<kind>` and `all/<kind>`, plus `fast_p99_ms`
(the highest p99 of any fast scorer on any file and kind). Exit status 1 when the
evaluation could not run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.decisions import note_machine_load, number, print_summary  # noqa: E402

TARGETS = {"all/tool_output": 0.90, "all/tool_call": 0.80}  # recall at 5% FPR
TARGET_FAST_P99_MS = 5.0
QUICK_LIMIT = 400


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("files", nargs="*", help="labelled JSON Lines files (default: ../shared/eval/*.jsonl)")
    parser.add_argument("--split", choices=["all", "validation", "train"], default="all")
    parser.add_argument("--limit", type=int, default=None, help="at most N rows per file, evenly spaced")
    parser.add_argument("--scorers", default="", help="comma-separated scorers (default: all available + ensemble)")
    parser.add_argument("--primary", default=None, help="the scorer in the JSON line (default: the ensemble)")
    parser.add_argument("--quick", action="store_true", help=f"at most {QUICK_LIMIT} rows per file")
    options = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    import django

    django.setup()
    from guardian.evaluation import DatasetError, EvaluationError, default_files, evaluate

    files = options.files or [str(path) for path in default_files()]
    limit = options.limit or (QUICK_LIMIT if options.quick else None)
    names = [name.strip() for name in options.scorers.split(",") if name.strip()] or None
    notes: list[str] = []
    machine: dict[str, Any] = {}
    print(f"Warden guardian benchmark, Python {sys.version.split()[0]}")
    note_machine_load(machine, notes)
    started = time.perf_counter()
    try:
        report = evaluate(
            files, scorers=names, primary=options.primary, split=options.split, limit=limit, progress=print
        )
    except (DatasetError, EvaluationError) as error:
        print(f"The evaluation could not run: {error}")
        return 1
    elapsed = time.perf_counter() - started
    for line in report.lines:
        print(line)

    results: dict[str, Any] = dict(report.summary)
    fast_p99 = report.fast_p99_ms()
    results["fast_p99_ms"] = None if fast_p99 is None else round(fast_p99, 4)
    notes.extend(report.notes)
    notes.append(f"scored in {elapsed:.1f} s on {machine.get('cpus')} CPUs (one process, one subject at a time)")

    summary: list[list[Any]] = []
    for key, target in TARGETS.items():
        recall = (results.get(key) or {}).get("recall_at_5fpr")
        met = "" if recall is None else ("yes" if recall >= target else "no")
        summary.append([f"{key} recall@5%FPR ({report.primary})", number(recall, 3), f">= {target:.2f}", met])
    summary.append(
        [
            f"fast_p99_ms (max over {', '.join(report.fast_scorers)})",
            number(fast_p99, 3),
            f"< {TARGET_FAST_P99_MS:g}",
            "" if fast_p99 is None else ("yes" if fast_p99 < TARGET_FAST_P99_MS else "no"),
        ]
    )
    return print_summary(summary, notes, [], results)


if __name__ == "__main__":
    sys.exit(main())
