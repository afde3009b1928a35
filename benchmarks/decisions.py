# ruff: noqa: T201, S603  (a command-line tool: it prints, and it starts gunicorn, wrk and psql)
"""Benchmark Warden's decision path: the engine alone, JSON Schema validation, and HTTP under load.

    .venv/bin/python benchmarks/decisions.py [--quick] [--skip-http] [--duration SECONDS]

1. Engine only (no Django): `decide(snapshot, request)` for a valid payment by an agent that
   holds the grant, under a fleet of 50 agents, 4 roles, 10 tools with active contracts, role
   and own grants with constraints and rate limits, and 6 CEL rules (see `fleet.py`); next to
   it, the raw `jsonschema` and `jsonschema_rs` validators on the same arguments.
2. HTTP: gunicorn (2 sync workers, `config.wsgi`, settings `benchmarks.settings`) on SQLite and
   on PostgreSQL (+ Redis counters), loaded by wrk with 16 connections: the decision endpoint
   `POST /api/v1/tool-calls`, interleaved with the baseline `POST /bench/baseline` (a bare view
   that parses the JSON and inserts one row, see `baseline_urls.py`) on the same server.
   Each run is checked afterwards: the rows written to policy_toolcall must match wrk's count.

Prints tables, then one JSON object as the last line. Exit status 1 when a part failed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import json
import math
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import fleet  # noqa: E402
from policy.tests.builders import PAYMENT_SCHEMA  # noqa: E402

BIN = Path(sys.executable).parent
PSQL = ["psql", "-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-qAt", "-v", "ON_ERROR_STOP=1"]
PG_ADMIN = [*PSQL, "-d", "postgres"]
REDIS_URL = "redis://127.0.0.1:6379/15"
LOOP_MAX_REPEATS = "100000000"
DECISION_PATH = "/api/v1/tool-calls"
BASELINE_PATH = "/bench/baseline"
CONNECTIONS = 16

KEYS = (
    "engine_p50_us",
    "engine_p99_us",
    "validate_p50_us",
    "validate_rs_p50_us",
    "http_rps_c16_pg",
    "http_p99_ms_c16_pg",
    "http_rps_c16_sqlite",
    "http_p99_ms_c16_sqlite",
    "baseline_rps_c16_pg",
)


# -- timing helpers ----------------------------------------------------------------------------


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of unsorted samples."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def time_calls(fn: Callable[[], object], iterations: int) -> list[float]:
    """Microseconds per call of `fn`, one perf_counter_ns pair per call."""
    clock = time.perf_counter_ns
    samples = [0] * iterations
    for index in range(iterations):
        started = clock()
        fn()
        samples[index] = clock() - started
    return [sample / 1000 for sample in samples]


def time_interleaved(
    calls: dict[str, tuple[Callable[[], object], int]], warmup: int, blocks: int = 20
) -> dict[str, list[float]]:
    """Time each call its number of times, in interleaved blocks after `warmup` calls of each.

    Interleaving spreads background noise (other processes, CPU frequency) evenly over the
    calls being compared, so their ratio holds even when the machine is not quiet.
    """
    for fn, _ in calls.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    gc.collect()
    for _ in range(blocks):
        for name, (fn, iterations) in calls.items():
            samples[name].extend(time_calls(fn, max(1, iterations // blocks)))
    return samples


@dataclass
class Timing:
    name: str
    samples_us: list[float]

    @property
    def p50(self) -> float:
        return percentile(self.samples_us, 50)

    @property
    def p99(self) -> float:
        return percentile(self.samples_us, 99)

    @property
    def mean(self) -> float:
        return sum(self.samples_us) / len(self.samples_us)


# -- 1. engine only ------------------------------------------------------------------------------


def build_snapshot() -> Any:
    """The benchmark fleet as an engine snapshot, built by hand (no Django)."""
    from policy.engine import AgentView, Constraint, ContractView, GrantView, Snapshot, ToolView
    from policy.engine.rules import CompiledRule
    from policy.engine.validation import CompiledSchema

    agent_specs = fleet.agents()
    agents = [
        AgentView(
            id=f"agent-{spec.slug}",
            slug=spec.slug,
            name=spec.slug.title(),
            status="active",
            role=spec.role,
            risk_tier=spec.risk_tier,
            team=spec.team,
        )
        for spec in agent_specs
    ]
    members: dict[str, list[str]] = {}
    for spec in agent_specs:
        members.setdefault(spec.role, []).append(f"agent-{spec.slug}")
    grants: list[tuple[str, Any]] = []
    for index, grant in enumerate(fleet.grants()):
        view = GrantView(
            id=f"grant-{index}",
            tool=grant.tool,
            source="agent" if grant.agent else "role",
            constraints=tuple(Constraint.build(key, value) for key, value in sorted(grant.constraints.items())),
            rate_limit_per_minute=grant.rate_limit_per_minute,
        )
        holders = [f"agent-{grant.agent}"] if grant.agent else members.get(str(grant.role), [])
        grants.extend((holder, view) for holder in holders)
    tools = [ToolView(spec.name, spec.side_effect, spec.default_risk) for spec in fleet.TOOLS]
    contracts = [
        ContractView(
            id=f"contract-{spec.name}",
            tool=spec.name,
            version=1,
            status="active",
            input=CompiledSchema(spec.schema),
            output=CompiledSchema({}),
        )
        for spec in fleet.TOOLS
    ]
    rules = [
        CompiledRule.build(
            id=f"rule-{rule.name}",
            name=rule.name,
            expression=rule.expression,
            effect=rule.effect,
            mode=rule.mode,
            scope_kind=rule.scope,
            scope_value=rule.target,
            priority=rule.priority,
            message=rule.message,
        )
        for rule in fleet.RULES
    ]
    return Snapshot.build(version=42, agents=agents, grants=grants, tools=tools, contracts=contracts, rules=rules)


def engine_request(arguments: dict[str, Any]) -> Any:
    from policy.engine import CallContext, Counters, Request

    agent_id = f"agent-{fleet.BENCH_AGENT}"
    return Request(
        agent_id=agent_id,
        tool=fleet.BENCH_TOOL,
        arguments=arguments,
        now=dt.datetime.now(dt.UTC),
        context=CallContext(session_id=fleet.BENCH_CONTEXT["session_id"], purpose=fleet.BENCH_CONTEXT["purpose"]),
        # What the edge would have counted for a busy agent: the limits are checked, none is exceeded.
        counters=Counters(tool_calls_last_minute={agent_id: 42}, calls_last_hour={agent_id: 900}, repeats_in_window=1),
    )


def bench_engine(iterations: int, warmup: int) -> tuple[dict[str, Any], list[Timing], list[str]]:
    import jsonschema_rs
    from jsonschema import Draft202012Validator

    from policy.engine import decide

    snapshot = build_snapshot()
    arguments = dict(fleet.BENCH_ARGUMENTS)
    notes: list[str] = []

    allow = engine_request(arguments)
    decision = decide(snapshot, allow)
    if decision.outcome != "allow":
        raise RuntimeError(f"The engine did not allow the bench call: {decision}")
    applicable = [
        rule.name
        for rule in snapshot.rules
        if rule.applies_to(agent_id=allow.agent_id, role="finance", tool=fleet.BENCH_TOOL)
    ]
    notes.append(
        f"engine: {len(snapshot.agents)} agents, {len(snapshot.tools)} tools, {len(snapshot.rules)} rules "
        f"({len(applicable)} apply to the bench call: {', '.join(applicable)}); decision {decision.outcome}, "
        f"shadow {[s.as_dict() for s in decision.shadow]}"
    )
    escalate = engine_request({**arguments, "amount": 15000})
    invalid = engine_request({**arguments, "amount": -5, "currency": "XXX"})
    assert decide(snapshot, escalate).outcome == "escalate"
    assert decide(snapshot, invalid).outcome == "deny"

    reference = Draft202012Validator(PAYMENT_SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)
    fast = jsonschema_rs.Draft202012Validator(PAYMENT_SCHEMA, validate_formats=True)
    if not (reference.is_valid(arguments) and fast.is_valid(arguments)):
        raise RuntimeError("The bench arguments do not validate against PAYMENT_SCHEMA.")

    small = max(1000, iterations // 5)
    calls: dict[str, tuple[Callable[[], object], int]] = {
        "decide (allow)": (lambda: decide(snapshot, allow), iterations),
        "decide (escalate by rule)": (lambda: decide(snapshot, escalate), small),
        "decide (deny: schema)": (lambda: decide(snapshot, invalid), small),
        "jsonschema is_valid": (lambda: reference.is_valid(arguments), iterations),
        "jsonschema_rs is_valid": (lambda: fast.is_valid(arguments), iterations),
        "empty call (overhead)": (lambda: None, iterations),
    }
    timings = [Timing(name, samples) for name, samples in time_interleaved(calls, warmup).items()]
    by_name = {timing.name: timing for timing in timings}
    results = {
        "engine_p50_us": round(by_name["decide (allow)"].p50, 2),
        "engine_p99_us": round(by_name["decide (allow)"].p99, 2),
        "validate_p50_us": round(by_name["jsonschema is_valid"].p50, 2),
        "validate_rs_p50_us": round(by_name["jsonschema_rs is_valid"].p50, 2),
        "validate_p99_us": round(by_name["jsonschema is_valid"].p99, 2),
        "validate_rs_p99_us": round(by_name["jsonschema_rs is_valid"].p99, 2),
        "engine_escalate_p50_us": round(by_name["decide (escalate by rule)"].p50, 2),
        "engine_schema_deny_p50_us": round(by_name["decide (deny: schema)"].p50, 2),
        "engine_iterations": iterations,
    }
    return results, timings, notes


# -- 2. HTTP -------------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_DURATION = r"([\d.]+)(us|ms|s|m|h)"


def to_ms(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


@dataclass
class WrkResult:
    endpoint: str
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int = 0
    socket_errors: int = 0

    @classmethod
    def parse(cls, endpoint: str, text: str) -> WrkResult:
        """Read wrk's summary (with --latency); durations may be in us, ms, s or m."""

        def latency(percent: str) -> float:
            match = re.search(rf"^\s*{percent}%\s+{_DURATION}\s*$", text, re.MULTILINE)
            if match is None:
                raise ValueError(f"wrk output has no {percent}% latency line:\n{text}")
            return to_ms(match.group(1), match.group(2))

        rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.MULTILINE)
        total = re.search(rf"^\s*(\d+) requests in {_DURATION}", text, re.MULTILINE)
        if rps is None or total is None:
            raise ValueError(f"Cannot read wrk's output:\n{text}")
        non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
        errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
        return cls(
            endpoint=endpoint,
            requests=int(total.group(1)),
            duration_s=to_ms(total.group(2), total.group(3)) / 1000,
            rps=float(rps.group(1)),
            p50_ms=latency("50"),
            p99_ms=latency("99"),
            non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
            socket_errors=sum(int(group) for group in errors.groups()) if errors else 0,
        )


LUA = """-- POST a valid payment; the reason carries a per-thread counter so every call differs.
local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end
function init(args)
  counter = 0
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(key)s"
request = function()
  counter = counter + 1
  local body = string.format(%(template)s, id, counter)
  return wrk.format(nil, nil, nil, body)
end
"""


def write_lua(directory: Path, key: str) -> Path:
    arguments = {**fleet.BENCH_ARGUMENTS, "reason": "@REASON@"}
    body = json.dumps(
        {"tool": fleet.BENCH_TOOL, "arguments": arguments, "context": fleet.BENCH_CONTEXT}, separators=(",", ":")
    )
    template = body.replace("%", "%%").replace("@REASON@", "Supplier invoice %d-%d")
    script = directory / "post.lua"
    script.write_text(LUA % {"key": key, "template": json.dumps(template)})
    return script


def run_wrk(endpoint: str, url: str, script: Path, duration: float, connections: int = CONNECTIONS) -> WrkResult:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency", "-s", str(script), url]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stderr}\n{completed.stdout}")
    return WrkResult.parse(endpoint, completed.stdout)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def post_json(url: str, body: dict[str, Any], key: str | None = None) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - our own server on 127.0.0.1
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        text = error.read().decode(errors="replace")
        try:
            return error.code, json.loads(text)
        except ValueError:
            return error.code, {"body": text[:2000]}


def tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class Failure(RuntimeError):
    """A benchmark step failed; the message says which and why."""


@dataclass
class Backend:
    """One database under test: how to reach it, count its rows, and clean up."""

    name: str  # "sqlite" or "pg"
    var_dir: Path
    database_url: str
    redis_url: str = ""
    pg_database: str | None = None

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("DATABASE_", "REDIS_", "CELERY_", "WARDEN_", "DJANGO_"))
        }
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
                "DATABASE_URL": self.database_url,
                "REDIS_URL": self.redis_url,
                "WARDEN_VAR_DIR": str(self.var_dir),
                "STATIC_ROOT": str(self.var_dir / "static"),
                "SECRET_KEY": "warden-benchmark-secret-key-not-for-production-0123456789abcdef",
                "DEBUG": "0",
                "WARDEN_LOOP_MAX_REPEATS": LOOP_MAX_REPEATS,
                "LOG_LEVEL": "WARNING",
                "PYTHONDONTWRITEBYTECODE": "1",
            }
        )
        env.update(extra or {})
        return env

    def query(self, sql: str) -> list[tuple[str, ...]]:
        if self.pg_database is not None:
            out = subprocess.run(
                [*PSQL, "-d", self.pg_database, "-F", "\t", "-c", sql],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            return [tuple(line.split("\t")) for line in out.splitlines() if line]
        with contextlib.closing(sqlite3.connect(self.var_dir / "bench.sqlite3", timeout=30)) as db:
            return [tuple(str(value) for value in row) for row in db.execute(sql).fetchall()]

    def count(self, table: str) -> int:
        return int(self.query(f"SELECT count(*) FROM {table}")[0][0])  # noqa: S608 - fixed table names


# --pg-counters memory: PostgreSQL with in-process counters, to see what the Redis round trip costs.
PG_COUNTERS = {"redis": REDIS_URL, "memory": ""}
_pg_redis_url = REDIS_URL


@contextlib.contextmanager
def backend(name: str) -> Iterator[Backend]:
    """A fresh, empty database (and Redis db for PostgreSQL), removed afterwards whatever happens."""
    var_dir = Path(tempfile.mkdtemp(prefix=f"warden-bench-{name}-"))
    (var_dir / "static").mkdir()
    db_name = f"warden_bench_{os.getpid()}"
    created = False
    try:
        if name == "pg":
            subprocess.run([*PG_ADMIN, "-c", f"CREATE DATABASE {db_name}"], check=True, capture_output=True)
            created = True
            flush_redis()
            yield Backend(
                name,
                var_dir,
                f"postgres://postgres@127.0.0.1:5432/{db_name}",
                redis_url=_pg_redis_url,
                pg_database=db_name,
            )
        else:
            yield Backend(name, var_dir, f"sqlite:///{var_dir / 'bench.sqlite3'}")
    finally:
        if created:
            dropped = subprocess.run(
                [*PG_ADMIN, "-c", f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"], capture_output=True, text=True
            )
            if dropped.returncode != 0:
                print(f"  ! could not drop database {db_name}: {dropped.stderr.strip()}")
            flush_redis()
        shutil.rmtree(var_dir, ignore_errors=True)


def flush_redis() -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        client.flushdb()
    finally:
        client.close()


def django_step(db: Backend, args: list[str], what: str) -> str:
    completed = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=db.env(), capture_output=True, text=True, timeout=600, check=False
    )
    if completed.returncode != 0:
        output = "\n".join((completed.stdout + completed.stderr).splitlines()[-25:])
        raise Failure(f"{what} failed on {db.name} (exit {completed.returncode}):\n{output}")
    return completed.stdout


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log: Path


@contextlib.contextmanager
def gunicorn(db: Backend, agent_id: str, workers: int = 2) -> Iterator[Server]:
    """gunicorn on a free port with sync workers; terminated (and its group killed) on the way out."""
    port = free_port()
    log = db.var_dir / "gunicorn.log"
    command = [
        str(BIN / "gunicorn"),
        "config.wsgi",
        "-w",
        str(workers),
        "-b",
        f"127.0.0.1:{port}",
        "--graceful-timeout",
        "5",
        "--no-control-socket",  # gunicorn 27 would otherwise take over ~/.gunicorn/gunicorn.ctl
    ]
    with log.open("wb") as handle:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=db.env({"WARDEN_BENCH_AGENT_ID": agent_id}),
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise Failure(f"gunicorn exited ({process.returncode}) on start:\n{tail(log)}")
            try:
                with urllib.request.urlopen(f"{server.url}/readyz", timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise Failure(f"gunicorn did not become ready in 60 s:\n{tail(log)}")
            time.sleep(0.2)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)


_SUSPICIOUS = re.compile(r"Traceback|ERROR|CRITICAL|WORKER TIMEOUT|Exception|Warning", re.IGNORECASE)


@dataclass
class HttpReport:
    runs: list[WrkResult] = field(default_factory=list)
    seed: dict[str, Any] = field(default_factory=dict)
    rows_written: int = 0
    decisions: dict[str, int] = field(default_factory=dict)
    baseline_rows_written: int = 0
    log_findings: list[str] = field(default_factory=list)

    def combined(self, endpoint: str) -> tuple[float | None, float | None, int]:
        """Throughput over all runs of `endpoint` (requests / seconds) and the worst p99."""
        runs = [run for run in self.runs if run.endpoint == endpoint]
        if not runs:
            return None, None, 0
        requests = sum(run.requests for run in runs)
        return requests / sum(run.duration_s for run in runs), max(run.p99_ms for run in runs), requests


def bench_http(name: str, duration: float, warmup: float, rounds: int) -> HttpReport:
    report = HttpReport()
    with backend(name) as db:
        print(f"\n[{name}] migrate + seed ({db.database_url})", flush=True)
        django_step(db, ["manage.py", "migrate", "--noinput", "-v", "0"], "migrate")
        seeded = json.loads(django_step(db, ["-m", "benchmarks.seed"], "seeding").strip().splitlines()[-1])
        report.seed = {key: value for key, value in seeded.items() if key != "key"}
        print(
            f"[{name}] seeded {seeded['agents']} agents, {seeded['tools']} tools, {seeded['rules']} rules; "
            f"rules applying to the bench call on the server: {seeded['applicable_rules']}",
            flush=True,
        )
        script = write_lua(db.var_dir, seeded["key"])
        with gunicorn(db, seeded["agent_id"]) as server:
            try:
                check_endpoints(server, seeded["key"])
                decisions_url, baseline_url = server.url + DECISION_PATH, server.url + BASELINE_PATH
                if warmup > 0:
                    run_wrk("warmup", baseline_url, script, warmup)
                    run_wrk("warmup", decisions_url, script, warmup)
                for round_ in range(rounds):
                    for endpoint, url in (("baseline", baseline_url), ("decisions", decisions_url)):
                        table = "policy_toolcall" if endpoint == "decisions" else "bench_baseline"
                        before = db.count(table)
                        result = run_wrk(endpoint, url, script, duration)
                        time.sleep(0.5)  # let requests in flight when wrk stopped finish their write
                        written = db.count(table) - before
                        if endpoint == "decisions":
                            report.rows_written += written
                        else:
                            report.baseline_rows_written += written
                        report.runs.append(result)
                        print(
                            f"[{name}] round {round_ + 1} {endpoint:9}: {result.requests} requests, "
                            f"{result.rps:.0f} req/s, p99 {result.p99_ms:.2f} ms, rows written {written}"
                            + (f", NON-2xx {result.non_2xx}" if result.non_2xx else "")
                            + (f", socket errors {result.socket_errors}" if result.socket_errors else ""),
                            flush=True,
                        )
                report.decisions = {
                    row[0]: int(row[1])
                    for row in db.query("SELECT decision, count(*) FROM policy_toolcall GROUP BY decision")
                }
            except Exception:
                print(f"[{name}] gunicorn log (tail):\n{tail(server.log)}", flush=True)
                raise
        lines = server.log.read_text(errors="replace").splitlines() if server.log.exists() else []
        report.log_findings = [line for line in lines if _SUSPICIOUS.search(line)][:20]
    return report


def check_endpoints(server: Server, key: str) -> None:
    """One decision must come back `allow` and one baseline call must record, before any load."""
    body = {"tool": fleet.BENCH_TOOL, "arguments": fleet.BENCH_ARGUMENTS, "context": fleet.BENCH_CONTEXT}
    status, answer = post_json(server.url + DECISION_PATH, body, key)
    if status != 200 or answer.get("decision") != "allow":
        raise Failure(f"The check call was not allowed: HTTP {status} {json.dumps(answer)[:2000]}")
    print(
        f"  check: POST {DECISION_PATH} -> {status} decision={answer['decision']} "
        f"reasons={answer.get('reasons')} policy_version={answer.get('policy_version')}",
        flush=True,
    )
    status, answer = post_json(server.url + BASELINE_PATH, body)
    if status != 200 or "recorded" not in answer:
        raise Failure(f"The baseline check call failed: HTTP {status} {json.dumps(answer)[:2000]}")


# -- output --------------------------------------------------------------------------------------


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    line = "-+-".join("-" * width for width in widths)

    def fmt(cells: list[str]) -> str:
        return " | ".join(str(cell).ljust(width) for cell, width in zip(cells, widths, strict=True))

    return "\n".join([fmt(headers), line, *(fmt(row) for row in rows)])


def number(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short runs, for smoke tests")
    parser.add_argument("--skip-http", action="store_true", help="engine and validators only")
    parser.add_argument(
        "--duration", type=float, default=None, help="seconds per wrk measurement (default 10, 3 quick)"
    )
    parser.add_argument(
        "--pg-counters",
        choices=sorted(PG_COUNTERS),
        default="redis",
        help="rate-limit counters of the PostgreSQL run: Redis (default, exact across workers) or in-process",
    )
    options = parser.parse_args(argv)
    global _pg_redis_url
    _pg_redis_url = PG_COUNTERS[options.pg_counters]
    # A SIGTERM unwinds like Ctrl-C, so gunicorn, the database and the temp files are still cleaned up.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    duration = options.duration or (3.0 if options.quick else 10.0)
    warmup = 1.0 if options.quick else 2.0
    iterations, engine_warmup = (3000, 500) if options.quick else (30000, 3000)

    results: dict[str, Any] = dict.fromkeys(KEYS)
    failures: list[str] = []
    notes: list[str] = []

    print(f"Warden decision benchmark ({'quick' if options.quick else 'full'}), Python {sys.version.split()[0]}")
    note_machine_load(results, notes)
    print(
        f"\n== Engine only: {iterations} timed calls (after {engine_warmup} warm-up), interleaved in 20 blocks ==",
        flush=True,
    )
    engine, timings, engine_notes = bench_engine(iterations, engine_warmup)
    results.update(engine)
    notes.extend(engine_notes)
    print(
        table(
            ["call", "p50 µs", "p99 µs", "mean µs", "n"],
            [[t.name, number(t.p50), number(t.p99), number(t.mean), str(len(t.samples_us))] for t in timings],
        )
    )
    print("(each sample includes the timer and a lambda call, about the 'empty call' figure)")

    reports: dict[str, HttpReport] = {}
    if not options.skip_http:
        print(f"\n== HTTP: gunicorn -w 2 (sync), wrk -t2 -c16 -d{max(1, round(duration))}s, 2 rounds ==", flush=True)
        for name in ("sqlite", "pg"):
            try:
                reports[name] = bench_http(name, duration, warmup, rounds=2)
            except Exception as error:  # report it, go on with the other database
                failures.append(f"{name}: {type(error).__name__}: {error}")
                print(f"[{name}] FAILED: {type(error).__name__}: {error}", flush=True)
        rows = []
        for name, report in reports.items():
            for run in report.runs:
                rows.append(
                    [
                        name,
                        run.endpoint,
                        str(run.requests),
                        number(run.rps, 0),
                        number(run.p50_ms),
                        number(run.p99_ms),
                        str(run.non_2xx),
                        str(run.socket_errors),
                    ]
                )
            http_rps, http_p99, http_requests = report.combined("decisions")
            base_rps, base_p99, base_requests = report.combined("baseline")
            results[f"http_rps_c16_{name}"] = round(http_rps, 1) if http_rps is not None else None
            results[f"http_p99_ms_c16_{name}"] = round(http_p99, 2) if http_p99 is not None else None
            results[f"baseline_rps_c16_{name}"] = round(base_rps, 1) if base_rps is not None else None
            results[f"baseline_p99_ms_c16_{name}"] = round(base_p99, 2) if base_p99 is not None else None
            if http_rps and base_rps:
                results[f"http_vs_baseline_{name}"] = round(http_rps / base_rps, 3)
            results[f"http_requests_{name}"] = http_requests
            results[f"toolcall_rows_{name}"] = report.rows_written
            results[f"baseline_requests_{name}"] = base_requests
            results[f"baseline_rows_{name}"] = report.baseline_rows_written
            non_2xx = sum(run.non_2xx for run in report.runs if run.endpoint == "decisions")
            runs = sum(1 for run in report.runs if run.endpoint == "decisions")
            # Every answered request committed its row first; up to 16 more per run were in flight when wrk stopped.
            extra = report.rows_written - http_requests
            ok = 0 <= extra <= CONNECTIONS * runs + http_requests // 100 and non_2xx == 0
            results[f"rows_match_{name}"] = ok
            notes.append(
                f"{name}: wrk counted {http_requests} decision requests; policy_toolcall gained {report.rows_written} "
                f"rows ({'OK' if ok else 'MISMATCH'}); decisions in the table: {report.decisions}; "
                f"baseline: {base_requests} requests, {report.baseline_rows_written} rows"
            )
            if not ok:
                failures.append(f"{name}: rows written ({report.rows_written}) do not match requests ({http_requests})")
            missing = [rule for rule in fleet.bench_call_rules() if rule not in report.seed.get("applicable_rules", [])]
            if missing:
                notes.append(
                    f"{name}: on the server, rule(s) {missing} do not apply to the bench call although the fleet "
                    "scopes them to it (the engine-only snapshot applies them)"
                )
            for line in report.log_findings:
                notes.append(f"{name} gunicorn log: {line}")
        if rows:
            print()
            print(table(["db", "endpoint", "requests", "req/s", "p50 ms", "p99 ms", "non-2xx", "sock err"], rows))

    def target(value: Any, limit: float | None, test: Callable[[float, float], bool], text: str) -> list[str]:
        if value is None or limit is None:
            return [text, "n/a"]
        return [text, "yes" if test(float(value), float(limit)) else "NO"]

    summary = [
        [
            "engine_p50_us",
            number(results["engine_p50_us"]),
            *target(
                results["engine_p50_us"],
                results["validate_p50_us"],
                lambda v, t: v <= t,
                f"<= validate_p50_us ({number(results['validate_p50_us'])})",
            ),
        ],
        ["engine_p99_us", number(results["engine_p99_us"]), "", ""],
        ["validate_p50_us", number(results["validate_p50_us"]), "", ""],
        ["validate_rs_p50_us", number(results["validate_rs_p50_us"]), "", ""],
    ]
    if not options.skip_http:
        baseline_pg = results.get("baseline_rps_c16_pg")
        summary += [
            [
                "http_rps_c16_pg",
                number(results["http_rps_c16_pg"], 1),
                *target(
                    results["http_rps_c16_pg"],
                    baseline_pg and 0.9 * baseline_pg,
                    lambda v, t: v >= t,
                    f">= 0.9 x baseline_rps_c16_pg ({number(baseline_pg and 0.9 * baseline_pg, 1)})",
                ),
            ],
            [
                "http_p99_ms_c16_pg",
                number(results["http_p99_ms_c16_pg"]),
                *target(results["http_p99_ms_c16_pg"], 40, lambda v, t: v < t, "< 40"),
            ],
            ["baseline_rps_c16_pg", number(baseline_pg, 1), "", ""],
            ["http_vs_baseline_pg", number(results.get("http_vs_baseline_pg"), 3), "", ""],
            ["http_rps_c16_sqlite", number(results["http_rps_c16_sqlite"], 1), "", ""],
            ["http_p99_ms_c16_sqlite", number(results["http_p99_ms_c16_sqlite"]), "", ""],
            ["baseline_rps_c16_sqlite", number(results.get("baseline_rps_c16_sqlite"), 1), "", ""],
            ["http_vs_baseline_sqlite", number(results.get("http_vs_baseline_sqlite"), 3), "", ""],
        ]
    return print_summary(summary, notes, failures, results)


def note_machine_load(results: dict[str, Any], notes: list[str]) -> None:
    """Print and record the CPUs and the load at the start; a busy machine is said in the notes."""
    load, cpus = os.getloadavg()[0], os.cpu_count() or 1
    results["loadavg_1m_start"] = round(load, 2)
    results["cpus"] = cpus
    print(f"{cpus} CPUs, load average {load:.2f}")
    if load > cpus / 2:
        notes.append(
            f"the machine was busy when the benchmark started (load {load:.2f} on {cpus} CPUs): figures are low"
        )


def print_summary(summary: list[list[Any]], notes: list[str], failures: list[str], results: dict[str, Any]) -> int:
    """The summary table, notes and failures, then the figures as one JSON line (last); the exit status."""
    print("\n== Summary ==")
    print(table(["metric", "value", "target", "met?"], [[str(cell) for cell in row] for row in summary]))
    if notes:
        print("\nNotes:")
        for note in notes:
            print(f"  - {note}")
    if failures:
        print("\nFailures:")
        for failure in failures:
            print(f"  ! {failure}")
    print(json.dumps(results), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
