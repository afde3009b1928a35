# ruff: noqa: T201, S603  (a command-line tool: it prints, and runs psql to create and drop its database)
"""Benchmark the fleet dashboards at scale: server time to render each page over 1,000,000 tool calls.

    .venv/bin/python benchmarks/dashboards.py [--quick] [--calls N] [--runs N]

On a fresh PostgreSQL database of its own (postgres://postgres@127.0.0.1:5432, dropped afterwards
whatever happens), migrated, with the benchmark fleet seeded through the services (`seed.py`:
50 agents in 4 roles, 10 tools with contracts, grants, rules), a guardian and a staff user in
`viewers`:

1. Inserts N tool calls (default 1,000,000; `--quick`: 100,000) spread evenly over the last 7 days
   in one SQL statement per 100,000 rows (generate_series, no ORM): ~85% allow, ~10% deny (no_grant
   on tools the agent holds no grant for; limit_exceeded, schema_violation, loop_detected,
   rate_limited, rule_denied on its own tools), ~5% escalate (settled allow/deny when older than an
   hour); decision latency log-normal around 4 ms with a slow 1%; ~70% of allowed calls report a
   result (5% failed, 30% with a cost, 1% breaking the output contract). Then N/50 guardian
   assessments of reported results, ~5% flagged. No audit records (the pages don't read them, but
   for the call page's list). ANALYZE.
2. Backfills the rollups (`telemetry.rollups.roll_up(since=<first call>)`) and times it (one-off,
   informational).
3. Contrast: plain `SELECT decision, count(*) ... GROUP BY decision` scans of the tool-call table
   over 24 h and 7 d, and `rollups.aggregate` (what a page would compute without rollups) over 1 h.
4. Renders every page with Django's test client, logged in as the viewer (the same middleware,
   session, templates and static manifest as `make run`, settings `benchmarks.settings`), one
   warm-up and `--runs` timed renders each (default 20), interleaved in blocks so background load
   weighs on all alike: the overview (1 h default, 24 h, 7 d, and its htmx fragment), the feed
   (default, filtered by agent, tool, outcome, reason, and its htmx poll after a cursor), an agent
   page, the sprawl report, a call page; and two baselines through the same stack: `/readyz`
   (a bare view, one query) and the admin index (a logged-in template page). One more render of
   each counts its queries and their database time (CaptureQueriesContext).
5. "Live": inserts 3,000 calls in the last minute, after the rollups' `rolled_through` (so the
   pages aggregate them from the tool-call table) and renders the overview and the feed again.

Prints a table, notes, and as the last line one JSON object: `overview_ms_1m` and `feed_ms_1m` (p50
server time of the default overview and feed; target < 300 ms each) and the other figures. The
`_1m` keys name the full run's scale; `calls` says how many calls this run used. Exit status 1
when a part failed (a page did not answer 200, the database could not be set up).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import fleet  # noqa: E402
from benchmarks.decisions import (  # noqa: E402
    PG_ADMIN,
    Backend,
    Failure,
    note_machine_load,
    number,
    percentile,
    print_summary,
    table,
)

FULL_CALLS = 1_000_000
QUICK_CALLS = 100_000
BATCH = 100_000  # rows per INSERT ... SELECT statement
DAYS = 7
LIVE_CALLS = 3_000
TARGET_MS = 300.0
RUNS = 20
BLOCKS = 4  # the timed renders of every page are spread over this many interleaved blocks
SCANS = 5  # timed runs of each raw-table scan
BUSY_AGENT = fleet.BENCH_AGENT  # the agent page and the agent filter show the busiest agent
COMMON_TOOL = "crm.lookup"
RARE_TOOL = "files.delete"
FEED_FILTERS = ("feed_agent", "feed_tool", "feed_rare_tool", "feed_deny", "feed_escalate", "feed_loop")

# Why calls are denied or escalated: (code, cumulative share) within each outcome.
DENY_CODES = (
    ("no_grant", 0.30),
    ("limit_exceeded", 0.50),
    ("schema_violation", 0.70),
    ("loop_detected", 0.82),
    ("rate_limited", 0.94),
    ("rule_denied", 1.0),
)
ESCALATE_CODES = (("rule_escalated", 0.8), ("guardian_escalated", 1.0))


# -- the database -------------------------------------------------------------------------------


@contextlib.contextmanager
def database() -> Iterator[Backend]:
    """A fresh PostgreSQL database and a temporary var/ for this run; both removed on the way out.

    No Redis: the pages don't use it, and other benchmarks flush theirs (db 15) on their own.
    """
    var_dir = Path(tempfile.mkdtemp(prefix="warden-bench-dashboards-"))
    (var_dir / "static").mkdir()
    name = f"warden_bench_dash_{os.getpid()}"
    created = False
    try:
        subprocess.run([*PG_ADMIN, "-c", f"CREATE DATABASE {name}"], check=True, capture_output=True)
        created = True
        yield Backend("pg", var_dir, f"postgres://postgres@127.0.0.1:5432/{name}", redis_url="", pg_database=name)
    finally:
        if created:
            with contextlib.suppress(Exception):
                from django.db import connections

                connections.close_all()
            dropped = subprocess.run(
                [*PG_ADMIN, "-c", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], capture_output=True, text=True
            )
            if dropped.returncode != 0:
                print(f"  ! could not drop database {name}: {dropped.stderr.strip()}", flush=True)
            else:
                print(f"\nDropped database {name}.", flush=True)
        shutil.rmtree(var_dir, ignore_errors=True)


def setup_django(db: Backend) -> None:
    """Point this process at the benchmark database (settings `benchmarks.settings`) and start Django."""
    os.environ.update(db.env({"ALLOWED_HOSTS": "testserver,127.0.0.1,localhost"}))
    import django

    django.setup()


def collect_static() -> None:
    """collectstatic into the run's STATIC_ROOT: the manifest the templates' {% static %} reads, as in `make run`."""
    from django.core.management import call_command

    call_command("collectstatic", interactive=False, verbosity=0, stdout=io.StringIO())


def sql(statement: str, params: dict[str, Any] | list[Any] | None = None) -> list[tuple[Any, ...]]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return list(cursor.fetchall()) if cursor.description else []


# -- the fleet ---------------------------------------------------------------------------------


@dataclass
class Fleet:
    viewer: Any
    agents: dict[str, Any]  # slug -> id
    granted: list[tuple[Any, str]]  # (agent id, tool) pairs the agents use, repeated by weight
    ungranted: list[tuple[Any, str]]  # (agent id, tool) pairs the agents hold no grant for
    seeded: dict[str, Any] = field(default_factory=dict)


def build_fleet() -> Fleet:
    """The benchmark fleet through the services (seed.py), a guardian, and a viewer to render the pages."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from benchmarks.seed import seed
    from core.actors import Actor
    from core.groups import VIEWERS
    from guardian import services as guardian_services
    from guardian.models import GUARDIAN_ROLE, Guardian
    from registry import services
    from registry.models import Agent

    seeded = seed()
    actor = Actor.system("bench")
    owner = get_user_model().objects.get(username="bench-owner")
    role = services.role_create(actor=actor, slug=GUARDIAN_ROLE, name="Guardian")
    watcher = services.agent_create(
        actor=actor, slug="sentinel", name="Sentinel", owner=owner, role=role, model_name="bench-guardian"
    )
    watcher = services.agent_transition(actor=actor, agent=watcher, to="active")
    guardian = Guardian(agent=watcher, scorers={"content": 1.0})
    guardian.full_clean()
    guardian.save()
    guardian_services.record_configuration(guardian, actor=actor, created=True)

    viewer = get_user_model().objects.create_user("bench-viewer", "bench-viewer@example.com", is_staff=True)
    viewer.groups.add(Group.objects.get(name=VIEWERS))

    ids = dict(Agent.objects.values_list("slug", "pk"))
    tools = [spec.name for spec in fleet.TOOLS]
    holds: dict[str, set[str]] = {spec.slug: set() for spec in fleet.agents()}
    by_role: dict[str, list[str]] = {}
    for spec in fleet.agents():
        by_role.setdefault(spec.role, []).append(spec.slug)
    for grant in fleet.grants():
        for slug in [grant.agent] if grant.agent else by_role.get(str(grant.role), []):
            holds[slug].add(grant.tool)
    granted: list[tuple[Any, str]] = []
    ungranted: list[tuple[Any, str]] = []
    for index, spec in enumerate(fleet.agents()):
        # Some agents are much busier than others: the bench agent most, then every fifth one.
        weight = 8 if spec.slug == BUSY_AGENT else 1 + (index % 5 == 0) * 3 + index % 3
        for tool in sorted(holds[spec.slug]):
            granted.extend([(ids[spec.slug], tool)] * weight)
        # An agent asks for tools it holds no grant for now and then: the same one or two, over and over.
        others = [tool for tool in tools if tool not in holds[spec.slug]]
        ungranted.extend((ids[spec.slug], tool) for tool in others[index % 3 : index % 3 + 1 + index % 2])
    return Fleet(viewer=viewer, agents=ids, granted=granted, ungranted=ungranted, seeded=seeded)


# -- tool calls ----------------------------------------------------------------------------------

# One batch of calls: rows lo..hi of `total`, spread evenly up to `until`, one every `step` seconds.
# Row g is made at until - (total - g + jitter) * step, so the table's physical order follows time,
# as it does when calls arrive one by one.
INSERT_CALLS = """
WITH base AS (
    SELECT g,
           %(until)s::timestamptz - make_interval(secs => (%(total)s - g + random()) * %(step)s) AS t,
           random() AS u_outcome, random() AS u_reason, random() AS u_pair, random() AS u_settle,
           random() AS u_result, random() AS u_status, random() AS u_cost, random() AS u_drift,
           random() AS u_slow, random() AS u_wait,
           sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()) AS z
    FROM generate_series(%(lo)s::int, %(hi)s::int) AS g
), outcome AS (
    SELECT b.*,
           CASE WHEN u_outcome < 0.85 THEN 'allow' WHEN u_outcome < 0.95 THEN 'deny' ELSE 'escalate' END AS engine
    FROM base b
), coded AS (
    SELECT o.*,
           CASE engine
               WHEN 'deny' THEN CASE {deny_cases} END
               WHEN 'escalate' THEN CASE {escalate_cases} END
           END AS code
    FROM outcome o
), paired AS (
    SELECT c.*,
           CASE WHEN code = 'no_grant' THEN %(granted)s + floor(u_pair * %(ungranted)s)::int
                ELSE floor(u_pair * %(granted)s)::int END AS pair,
           CASE WHEN engine <> 'escalate' THEN engine
                WHEN t > %(until)s::timestamptz - interval '1 hour' THEN 'escalate'
                WHEN u_settle < 0.7 THEN 'allow' ELSE 'deny' END AS in_force
    FROM coded c
), settled AS (
    SELECT p.*,
           CASE WHEN engine = 'escalate' AND in_force <> 'escalate'
                THEN LEAST(t + make_interval(secs => 30 + u_wait * 1800), %(until)s::timestamptz) END AS settled_at
    FROM paired p
), reported AS (
    SELECT s.*,
           CASE WHEN in_force = 'allow' AND u_result < 0.7
                THEN LEAST(COALESCE(settled_at, t) + make_interval(secs => 0.05 + u_wait * 3), %(until)s::timestamptz)
           END AS result_at
    FROM settled s
)
INSERT INTO policy_toolcall (
    id, created_at, updated_at, agent_id, credential_prefix, tool, arguments, arguments_digest, context,
    idempotency_key, decision, escalated, settled_at, reasons, shadow, contract_version, policy_version,
    latency_us, token_expires_at, result_status, output, usage, cost, contract_drift, drift, result_reported_at
)
SELECT gen_random_uuid(),
       r.t,
       GREATEST(r.t, COALESCE(r.settled_at, r.t), COALESCE(r.result_at, r.t)),
       p.agent_id,
       p.prefix,
       p.tool,
       jsonb_build_object('request', r.g, 'query', 'benchmark call ' || r.g, 'limit', 1 + r.g %% 50),
       md5(r.g::text) || md5((r.g::bigint * 7919)::text),
       jsonb_build_object('session_id', 'bench-' || (r.g / 40), 'purpose', 'Benchmark traffic'),
       NULL,
       r.in_force,
       r.engine = 'escalate',
       r.settled_at,
       CASE WHEN r.code IS NULL THEN '[]'::jsonb
            ELSE jsonb_build_array(jsonb_build_object('code', r.code, 'message', %(messages)s::jsonb ->> r.code)) END,
       '[]'::jsonb,
       1,
       %(policy_version)s,
       GREATEST(150, exp(ln(4000) + 0.45 * r.z) * CASE WHEN r.u_slow < 0.01 THEN 8 ELSE 1 END)::int,
       CASE WHEN r.in_force = 'allow' THEN COALESCE(r.settled_at, r.t) + interval '5 minutes' END,
       CASE WHEN r.result_at IS NULL THEN NULL WHEN r.u_status < 0.05 THEN 'failed' ELSE 'succeeded' END,
       CASE WHEN r.result_at IS NULL THEN NULL
            ELSE jsonb_build_object('status', 'ok', 'items', r.g %% 17, 'summary', 'result of call ' || r.g) END,
       CASE WHEN r.result_at IS NULL THEN NULL
            ELSE jsonb_build_object('input_tokens', 200 + r.g %% 800, 'output_tokens', 20 + r.g %% 300) END,
       CASE WHEN r.result_at IS NOT NULL AND r.u_cost < 0.3 THEN round((r.u_cost * 0.15)::numeric, 6) END,
       r.result_at IS NOT NULL AND r.u_drift < 0.01,
       CASE WHEN r.result_at IS NOT NULL AND r.u_drift < 0.01
            THEN '[{{"pointer": "/items", "message": "is not of type integer"}}]'::jsonb ELSE '[]'::jsonb END,
       r.result_at
FROM reported r
JOIN bench_pairs p ON p.n = r.pair
"""


def _cases(codes: tuple[tuple[str, float], ...]) -> str:
    return " ".join(f"WHEN u_reason < {share} THEN '{code}'" for code, share in codes[:-1]) + f" ELSE '{codes[-1][0]}'"


INSERT_CALLS_SQL = INSERT_CALLS.format(deny_cases=_cases(DENY_CODES), escalate_cases=_cases(ESCALATE_CODES))


def create_pairs(data: Fleet) -> None:
    """`bench_pairs`: row n is an (agent, tool) the generator picks; the granted ones first."""
    sql(
        "CREATE TABLE bench_pairs (n integer PRIMARY KEY, agent_id uuid NOT NULL, tool varchar(128) NOT NULL, "
        "prefix varchar(12) NOT NULL)"
    )
    from django.db import connection

    rows = [
        (index, agent_id, tool, f"bk{str(agent_id).replace('-', '')[:8]}")
        for index, (agent_id, tool) in enumerate([*data.granted, *data.ungranted])
    ]
    with connection.cursor() as cursor:
        cursor.executemany("INSERT INTO bench_pairs VALUES (%s, %s, %s, %s)", rows)
    sql("ANALYZE bench_pairs")


def insert_calls(data: Fleet, total: int, until: dt.datetime, seconds: float, *, progress: bool = False) -> float:
    """Insert `total` calls spread over the `seconds` before `until`; the time it took."""
    from policy.engine.reasons import CODE_DESCRIPTIONS

    messages = json.dumps({str(code): text for code, text in CODE_DESCRIPTIONS.items()})
    policy_version = int(sql("SELECT coalesce(max(value), 1) FROM core_revision WHERE name = 'policy'")[0][0])
    started = time.perf_counter()
    for lo in range(1, total + 1, BATCH):
        hi = min(lo + BATCH - 1, total)
        sql(
            INSERT_CALLS_SQL,
            {
                "lo": lo,
                "hi": hi,
                "total": total,
                "until": until,
                "step": seconds / total,
                "granted": len(data.granted),
                "ungranted": len(data.ungranted),
                "messages": messages,
                "policy_version": policy_version,
            },
        )
        if progress:
            print(f"  inserted {hi:,} of {total:,} calls ({time.perf_counter() - started:.1f} s)", flush=True)
    return time.perf_counter() - started


def insert_assessments(count: int, until: dt.datetime) -> int:
    """Guardian assessments of `count` reported results picked at random; ~5% flag (or escalate) the call."""
    sql(
        """
        INSERT INTO guardian_assessment (guardian_id, tool_call_id, agent_id, tool, stage, subject, value, action,
                                         reasons, disagreement, created_at)
        SELECT (SELECT id FROM guardian_guardian LIMIT 1), c.id, c.agent_id, c.tool, 'result', 'tool_output',
               c.value,
               CASE WHEN c.value >= 0.7 THEN 'escalate' WHEN c.value >= 0.5 THEN 'flag' ELSE 'none' END,
               CASE WHEN c.value >= 0.5
                    THEN jsonb_build_array(jsonb_build_object('code', 'instruction_override',
                                           'message', 'The output tells the agent to ignore its instructions.'))
                    ELSE '[]'::jsonb END,
               false,
               LEAST(c.result_reported_at + interval '400 milliseconds', %(until)s::timestamptz)
        FROM (SELECT id, agent_id, tool, result_reported_at,
                     CASE WHEN random() < 0.05 THEN 0.5 + random() * 0.35 ELSE random() * 0.4 END AS value
              FROM policy_toolcall WHERE result_reported_at IS NOT NULL ORDER BY random() LIMIT %(count)s) c
        """,
        {"count": count, "until": until},
    )
    return int(sql("SELECT count(*) FROM guardian_assessment")[0][0])


# -- timing --------------------------------------------------------------------------------------


@dataclass
class Page:
    key: str
    label: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    samples_ms: list[float] = field(default_factory=list)
    queries: int = 0
    sql_ms: float = 0.0
    slowest_ms: float = 0.0
    slowest_sql: str = ""
    size_kb: float = 0.0
    rows: int | None = None  # feed rows on the page, where it is a feed

    @property
    def p50(self) -> float:
        return percentile(self.samples_ms, 50)

    @property
    def p95(self) -> float:
        return percentile(self.samples_ms, 95)

    @property
    def worst(self) -> float:
        return max(self.samples_ms)


def render(client: Any, page: Page) -> tuple[float, bytes]:
    started = time.perf_counter()
    response = client.get(page.url, **page.headers)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise Failure(f"{page.label}: GET {page.url} answered {response.status_code}: {response.content[:300]!r}")
    return elapsed, response.content


def measure(client: Any, pages: list[Page], runs: int) -> None:
    """A warm-up render of each page, then `runs` timed renders each in interleaved blocks; then one counted."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for page in pages:
        render(client, page)
    gc.collect()
    blocks = max(1, min(BLOCKS, runs))
    for block in range(blocks):
        share = runs // blocks + (1 if block < runs % blocks else 0)
        for page in pages:
            for _ in range(share):
                page.samples_ms.append(render(client, page)[0])
    for page in pages:
        with CaptureQueriesContext(connection) as captured:
            _, content = render(client, page)
        times = [(float(query["time"]) * 1000, query["sql"]) for query in captured.captured_queries]
        page.queries = len(times)
        page.sql_ms = sum(ms for ms, _ in times)
        page.slowest_ms, page.slowest_sql = max(times, default=(0.0, ""))
        page.size_kb = len(content) / 1024
        if page.key.startswith("feed"):
            page.rows = content.count(b"<tr") - content.count(b"<thead")


def time_sql(statement: str, runs: int = SCANS) -> float:
    """p50 ms of `statement` over `runs` runs after one warm-up."""
    sql(statement)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        sql(statement)
        samples.append((time.perf_counter() - started) * 1000)
    return percentile(samples, 50)


def explain(statement: str) -> list[str]:
    return [row[0] for row in sql(f"EXPLAIN (ANALYZE, BUFFERS) {statement}")]


# -- the run -------------------------------------------------------------------------------------


def pages_for(data: Fleet, cursor: str, call_id: Any) -> list[Page]:
    from urllib.parse import quote

    htmx = {"HTTP_HX_REQUEST": "true"}
    return [
        Page("baseline_bare", "baseline: /readyz (bare view)", "/readyz"),
        Page("baseline", "baseline: admin index", "/admin/"),
        Page("overview", "overview (1h, default)", "/fleet/"),
        Page("overview_24h", "overview ?window=24h", "/fleet/?window=24h"),
        Page("overview_7d", "overview ?window=7d", "/fleet/?window=7d"),
        Page("overview_live", "overview htmx fragment (1h)", "/fleet/", htmx),
        Page("feed", "feed (default)", "/fleet/feed/"),
        Page("feed_agent", f"feed ?agent={BUSY_AGENT}", f"/fleet/feed/?agent={BUSY_AGENT}"),
        Page("feed_tool", f"feed ?tool={COMMON_TOOL}", f"/fleet/feed/?tool={COMMON_TOOL}"),
        Page("feed_rare_tool", f"feed ?tool={RARE_TOOL}", f"/fleet/feed/?tool={RARE_TOOL}"),
        Page("feed_deny", "feed ?outcome=deny", "/fleet/feed/?outcome=deny"),
        Page("feed_escalate", "feed ?outcome=escalate", "/fleet/feed/?outcome=escalate"),
        Page("feed_loop", "feed ?reason=loop_detected", "/fleet/feed/?reason=loop_detected"),
        Page("feed_live", "feed htmx poll (after cursor)", f"/fleet/feed/?after={quote(cursor)}", htmx),
        Page("agent", f"agent page ({BUSY_AGENT}, 1h)", f"/fleet/agents/{BUSY_AGENT}/"),
        Page("agent_7d", f"agent page ({BUSY_AGENT}) ?window=7d", f"/fleet/agents/{BUSY_AGENT}/?window=7d"),
        Page("sprawl", "sprawl report", "/fleet/sprawl/"),
        Page("call", "call page", f"/fleet/calls/{call_id}/"),
    ]


def page_rows(pages: list[Page], phase: str) -> list[list[str]]:
    return [
        [
            phase,
            page.label,
            number(page.p50, 1),
            number(page.p95, 1),
            number(page.worst, 1),
            str(page.queries),
            number(page.sql_ms, 1),
            number(page.slowest_ms, 1),
            number(page.size_kb, 0),
            "" if page.rows is None else str(page.rows),
        ]
        for page in pages
    ]


def run(calls: int, runs: int, results: dict[str, Any], notes: list[str]) -> None:
    with database() as db:
        print(f"\n== Setup: {db.database_url} ==", flush=True)
        setup_django(db)
        from django.core.management import call_command
        from django.test import Client
        from django.utils import timezone

        from telemetry import fleet, rollups
        from telemetry.forms import FeedFilterForm
        from telemetry.models import AgentToolUse, ReasonRollup, Rollup

        started = time.perf_counter()
        call_command("migrate", interactive=False, verbosity=0)
        data = build_fleet()
        create_pairs(data)
        print(
            f"migrated, seeded {data.seeded['agents']} agents + a guardian, "
            f"{data.seeded['tools']} tools, {data.seeded['rules']} rules; {len(data.granted)} weighted granted "
            f"(agent, tool) pairs, {len(data.ungranted)} ungranted ({time.perf_counter() - started:.1f} s)",
            flush=True,
        )

        print(f"\n== Inserting {calls:,} tool calls over the last {DAYS} days ==", flush=True)
        until = timezone.now()
        results["insert_s"] = round(insert_calls(data, calls, until, DAYS * 86400.0, progress=True), 2)
        started = time.perf_counter()
        assessments = insert_assessments(max(1, calls // 50), until)
        sql("ANALYZE policy_toolcall")
        sql("ANALYZE guardian_assessment")
        results["assessments"] = assessments
        mix = dict(
            sql(
                "SELECT CASE WHEN escalated THEN 'escalate' ELSE decision END, count(*) FROM policy_toolcall GROUP BY 1"
            )
        )
        reported, costed, drifted = sql(
            "SELECT count(result_reported_at), count(cost), count(*) FILTER (WHERE contract_drift) FROM policy_toolcall"
        )[0]
        size = sql("SELECT pg_size_pretty(pg_total_relation_size('policy_toolcall'))")[0][0]
        print(
            f"engine outcomes {mix}; {reported:,} results ({costed:,} with a cost, {drifted:,} drifted); "
            f"{assessments:,} assessments; policy_toolcall {size} with indexes "
            f"(assessments + ANALYZE {time.perf_counter() - started:.1f} s)",
            flush=True,
        )
        results["table_size"] = size

        print("\n== Rollup backfill: roll_up(since=<first call>) ==", flush=True)
        first = sql("SELECT min(created_at) FROM policy_toolcall")[0][0]
        started = time.perf_counter()
        passed = rollups.roll_up(since=first)
        results["rollup_backfill_s"] = round(time.perf_counter() - started, 2)
        sql("ANALYZE telemetry_rollup")
        sql("ANALYZE telemetry_reasonrollup")
        counts = {
            "minute": Rollup.objects.filter(span=60).count(),
            "hour": Rollup.objects.filter(span=3600).count(),
            "reason": ReasonRollup.objects.count(),
            "tool_use": AgentToolUse.objects.count(),
        }
        results["rollup_rows"] = counts
        print(
            f"{results['rollup_backfill_s']} s: {passed.minutes if passed else 0:,} minute rows, "
            f"{passed.hours if passed else 0:,} hour rows written; in the tables: {counts}",
            flush=True,
        )

        started = time.perf_counter()
        passed = rollups.roll_up()
        results["rollup_pass_s"] = round(time.perf_counter() - started, 3)
        print(
            f"a regular pass after it (what Celery beat runs every few seconds): {results['rollup_pass_s']} s, "
            f"{passed.minutes if passed else 0:,} minute rows, {passed.hours if passed else 0:,} hour rows",
            flush=True,
        )
        window_rows = {}
        for key in ("1h", "24h", "7d"):
            window = fleet.WINDOWS[key]
            start = rollups.floor(timezone.now(), window.span) - window.length + dt.timedelta(seconds=window.span)
            window_rows[key] = Rollup.objects.filter(span=window.span, start__gte=start).count()
        results["window_rollup_rows"] = window_rows
        print(f"rollup rows each overview window reads: {window_rows}", flush=True)

        print(f"\n== Raw scans of the tool-call table (p50 of {SCANS}) ==", flush=True)
        scan = (
            "SELECT decision, count(*) FROM policy_toolcall WHERE created_at > now() - interval '{}' GROUP BY decision"
        )
        results["raw_scan_1h_ms"] = round(time_sql(scan.format("1 hour")), 1)
        results["raw_scan_24h_ms"] = round(time_sql(scan.format("24 hours")), 1)
        results["raw_scan_7d_ms"] = round(time_sql(scan.format("7 days")), 1)
        samples = []
        for _ in range(3):
            now = timezone.now()
            began = time.perf_counter()
            rollups.aggregate(now - dt.timedelta(hours=1), now)
            samples.append((time.perf_counter() - began) * 1000)
        results["raw_aggregate_1h_ms"] = round(percentile(samples, 50), 1)
        print(
            table(
                ["read of the tool-call table", "p50 ms"],
                [
                    ["count by decision, last 1 h", number(results["raw_scan_1h_ms"], 1)],
                    ["count by decision, last 24 h", number(results["raw_scan_24h_ms"], 1)],
                    ["count by decision, last 7 d", number(results["raw_scan_7d_ms"], 1)],
                    [
                        "rollups.aggregate, last 1 h (what a page would do without rollups)",
                        number(results["raw_aggregate_1h_ms"], 1),
                    ],
                ],
            ),
            flush=True,
        )

        collect_static()  # now, just before the pages, so the manifest matches the templates they render
        client = Client()
        client.force_login(data.viewer)
        newest = sql("SELECT created_at, id FROM policy_toolcall ORDER BY created_at DESC, id DESC OFFSET 10 LIMIT 1")[
            0
        ]
        cursor = FeedFilterForm.cursor_value(newest[0], str(newest[1]))
        call_id = sql(
            "SELECT tool_call_id FROM guardian_assessment WHERE action <> 'none' ORDER BY created_at DESC LIMIT 1"
        )[0][0]
        print(f"\n== Pages: {runs} timed renders each (after 1 warm-up), in {BLOCKS} interleaved blocks ==", flush=True)
        pages = pages_for(data, cursor, call_id)
        measure(client, pages, runs)
        rows = page_rows(pages, "rolled up")

        through = rollups.rolled_through()
        now = timezone.now()
        spread = min(60.0, (now - through).total_seconds() - 1) if through else 60.0
        print(
            f"\n== Live: {LIVE_CALLS:,} calls in the last {spread:.0f} s, after rolled_through ({through:%H:%M:%S}) ==",
            flush=True,
        )
        insert_calls(data, LIVE_CALLS, now, spread)
        sql("ANALYZE policy_toolcall")
        live = [
            Page("live_overview", "overview (1h) + live tail", "/fleet/"),
            Page(
                "live_overview_fragment", "overview htmx fragment + live tail", "/fleet/", {"HTTP_HX_REQUEST": "true"}
            ),
            Page("live_feed", "feed (default)", "/fleet/feed/"),
            Page("live_agent", f"agent page ({BUSY_AGENT}) + live tail", f"/fleet/agents/{BUSY_AGENT}/"),
        ]
        measure(client, live, runs)
        rows += page_rows(live, f"+{LIVE_CALLS} live")
        started = time.perf_counter()
        rollups.roll_up()
        results["rollup_pass_live_s"] = round(time.perf_counter() - started, 3)
        print(
            table(
                ["phase", "page", "p50 ms", "p95 ms", "max ms", "queries", "sql ms", "slowest q ms", "KB", "rows"],
                rows,
            ),
            flush=True,
        )
        by_key = {page.key: page for page in [*pages, *live]}
        results["overview_ms_1m"] = round(by_key["overview"].p50, 1)
        results["overview_p95_ms_1m"] = round(by_key["overview"].p95, 1)
        results["feed_ms_1m"] = round(by_key["feed"].p50, 1)
        results["feed_p95_ms_1m"] = round(by_key["feed"].p95, 1)
        results["overview_24h_ms_1m"] = round(by_key["overview_24h"].p50, 1)
        results["overview_7d_ms_1m"] = round(by_key["overview_7d"].p50, 1)
        results["overview_fragment_ms_1m"] = round(by_key["overview_live"].p50, 1)
        worst_filter = max((by_key[key] for key in FEED_FILTERS), key=lambda page: page.p50)
        results["feed_filtered_max_ms_1m"] = round(worst_filter.p50, 1)
        results["feed_filtered_max_is"] = worst_filter.label
        results["feed_fragment_ms_1m"] = round(by_key["feed_live"].p50, 1)
        results["agent_ms_1m"] = round(by_key["agent"].p50, 1)
        results["agent_7d_ms_1m"] = round(by_key["agent_7d"].p50, 1)
        results["sprawl_ms_1m"] = round(by_key["sprawl"].p50, 1)
        results["call_ms_1m"] = round(by_key["call"].p50, 1)
        results["overview_live_tail_ms_1m"] = round(by_key["live_overview"].p50, 1)
        results["overview_live_tail_p95_ms_1m"] = round(by_key["live_overview"].p95, 1)
        results["feed_live_tail_ms_1m"] = round(by_key["live_feed"].p50, 1)
        results["agent_live_tail_ms_1m"] = round(by_key["live_agent"].p50, 1)
        results["baseline_ms"] = round(by_key["baseline"].p50, 1)
        results["baseline_bare_ms"] = round(by_key["baseline_bare"].p50, 1)
        results["queries"] = {page.key: page.queries for page in [*pages, *live]}
        notes.append(
            f"a regular rollup pass took {results['rollup_pass_s']} s, and {results['rollup_pass_live_s']} s "
            f"with the {LIVE_CALLS:,} live calls to fold in; overview windows read {window_rows} rollup rows"
        )
        slow = [page for page in [*pages, *live] if page.p50 >= TARGET_MS]
        for page in slow:
            python_ms = page.p50 - page.sql_ms
            notes.append(
                f"{page.label}: p50 {page.p50:.0f} ms >= {TARGET_MS:.0f} ms; {page.queries} queries, "
                f"{page.sql_ms:.0f} ms in the database (slowest {page.slowest_ms:.0f} ms), about {python_ms:.0f} ms "
                f"in Python; slowest query: {page.slowest_sql[:300]}"
            )
        notes.append(
            f"server time = Django test client round trip (middleware, session, view, template, static manifest) "
            f"as the viewer; PostgreSQL {sql('SHOW server_version')[0][0]}, shared_buffers "
            f"{sql('SHOW shared_buffers')[0][0]}"
        )
        notes.append(
            f"rows: {calls:,} calls evenly over {DAYS} days (~{calls / (DAYS * 1440):.0f} a minute), "
            f"{len(data.agents)} agents; the 1 h window holds ~{calls / (DAYS * 24):,.0f} calls"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=None, help=f"tool calls to insert (default {FULL_CALLS:,})")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_CALLS:,} calls, for a fast run")
    parser.add_argument("--runs", type=int, default=RUNS, help=f"timed renders of each page (default {RUNS})")
    options = parser.parse_args(argv)
    calls = options.calls or (QUICK_CALLS if options.quick else FULL_CALLS)
    # A SIGTERM unwinds like Ctrl-C, so the database and the temp files are still removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    results: dict[str, Any] = {"calls": calls}
    notes: list[str] = []
    failures: list[str] = []
    print(f"Warden dashboards benchmark: {calls:,} tool calls, Python {sys.version.split()[0]}")
    note_machine_load(results, notes)
    started = time.perf_counter()
    try:
        run(calls, max(1, options.runs), results, notes)
    except Exception as error:  # report it; the database is dropped on the way out
        failures.append(f"{type(error).__name__}: {error}")
        print(f"FAILED: {traceback.format_exc()}", flush=True)
    results["total_s"] = round(time.perf_counter() - started, 1)

    def target(key: str, text: str = f"< {TARGET_MS:.0f}") -> list[str]:
        value = results.get(key)
        return [key, number(value, 1), text, "n/a" if value is None else ("yes" if value < TARGET_MS else "NO")]

    def figure(key: str, digits: int = 1) -> list[str]:
        return [key, number(results.get(key), digits), "", ""]

    summary = [
        target("overview_ms_1m"),
        target("feed_ms_1m"),
        figure("overview_p95_ms_1m"),
        figure("feed_p95_ms_1m"),
        figure("overview_24h_ms_1m"),
        figure("overview_7d_ms_1m"),
        figure("feed_filtered_max_ms_1m"),
        figure("agent_ms_1m"),
        figure("sprawl_ms_1m"),
        figure("call_ms_1m"),
        figure("overview_live_tail_ms_1m"),
        figure("baseline_ms"),
        figure("raw_scan_24h_ms"),
        figure("raw_scan_7d_ms"),
        figure("rollup_backfill_s", 2),
        figure("rollup_pass_s", 3),
    ]
    return print_summary(summary, notes, failures, results)


if __name__ == "__main__":
    sys.exit(main())
