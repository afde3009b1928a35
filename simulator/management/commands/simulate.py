"""`manage.py simulate`: the demo fleet at work against a running Warden, through the Python SDK."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from simulator.fleet import Event, Simulation, prepare_agents


class Command(BaseCommand):
    help = (
        "Drive the demo agents (alert triage, transaction analysis, case documentation, customer service) "
        "through the SDK against the Warden at --url, staging a prompt injection the guardian catches and a "
        "loop the loop guard stops. Needs the demo registry (warden_bootstrap --demo) in the same database."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--url", default="http://127.0.0.1:8000", help="Where Warden serves (default: %(default)s)."
        )
        parser.add_argument("--duration", type=float, help="Stop after this many seconds (default: run until stopped).")
        parser.add_argument("--rate", type=float, default=1.0, help="Calls per second, on average (default: 1).")
        parser.add_argument("--injection-after", type=float, default=40.0, help="Seconds before the injection.")
        parser.add_argument("--loop-after", type=float, default=70.0, help="Seconds before the looping agent.")
        parser.add_argument("--seed", type=int, help="Random seed, for a repeatable run.")
        parser.add_argument("--wait", type=float, default=60.0, help="Seconds to wait for the server to answer.")

    def handle(self, *args: Any, **options: Any) -> None:
        url = options["url"].rstrip("/")
        self._wait_for(url, options["wait"])
        try:
            keys = prepare_agents()
        except LookupError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"Simulating the demo fleet against {url} ({', '.join(sorted(keys))}). Ctrl-C stops it.")
        simulation = Simulation(
            url,
            keys,
            seed=options["seed"],
            injection_after=options["injection_after"],
            loop_after=options["loop_after"],
            emit=self._print,
        )
        try:
            events = simulation.run(duration=options["duration"], rate=options["rate"])
        except KeyboardInterrupt:
            events = simulation.events
        decided = [event for event in events if event.decision in ("allow", "deny", "escalate")]
        self.stdout.write(f"{len(decided)} decisions in this run.")

    def _print(self, event: Event) -> None:
        self.stdout.write(str(event))
        self.stdout.flush()

    def _wait_for(self, url: str, seconds: float) -> None:
        """The server may still be starting (make run starts everything at once)."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:  # noqa: S310  (our own URL)
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise CommandError(f"Warden did not answer at {url}/readyz within {seconds:.0f} s.")
            time.sleep(1)
