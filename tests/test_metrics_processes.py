"""Metrics under gunicorn with two workers (prometheus-client's multiprocess mode), scraped by a real Prometheus.

Each worker counts the decisions it makes in files of its own under PROMETHEUS_MULTIPROC_DIR;
whichever worker answers /metrics adds up every worker's files and reads the database gauges
once. Then a Prometheus server on 127.0.0.1 scrapes Warden every second with the bearer token,
and its query API must give back what Warden counted. The database is the test's own (a SQLite
file, or a fresh PostgreSQL database when DATABASE_URL points at PostgreSQL).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from core.testing import require_command
from tests.conftest import free_port

pytestmark = pytest.mark.processes
ROOT = Path(__file__).resolve().parent.parent
TOKEN = "metrics-token-for-the-process-test"
ALLOWED, INVENTED = 40, 6  # decisions the test asks for: allowed calls, calls of a tool nobody registered

SEED = """
import json, django
django.setup()
from django.contrib.auth import get_user_model
from core.actors import Actor
from policy import services as policy, tokens
from registry import services
actor = Actor.system("metrics-test")
owner = get_user_model().objects.create_user("owner", password="x-password-1")
services.tool_create(actor=actor, name="crm.read", side_effect="read")
policy.contract_create(actor=actor, tool="crm.read", activate=True, input_schema={
    "type": "object", "additionalProperties": False, "properties": {"id": {"type": "integer"}}})
keys = []
for slug in ("alpha", "beta"):
    agent = services.agent_create(actor=actor, slug=slug, name=slug, owner=owner, model_name="m")
    services.agent_transition(actor=actor, agent=agent, to="active")
    services.grant_create(actor=actor, agent=agent, tool="crm.read", reason="Reads.")
    keys.append(services.credential_issue(actor=actor, agent=agent).key)
services.agent_create(actor=actor, slug="gamma", name="gamma", owner=owner, model_name="m")  # a draft
tokens.signing_key()  # creates the key file once, before two workers race to
print(json.dumps(keys))
"""


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[dict[str, Any]]:
    """gunicorn, two sync workers, with Warden's gunicorn settings and multiprocess metrics."""
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DATABASE_URL": database_url,
        "WARDEN_VAR_DIR": str(tmp_path),
        "REDIS_URL": "",
        "WARDEN_LOOP_MAX_REPEATS": "100000",
        "WARDEN_METRICS_TOKEN": TOKEN,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    run = {"cwd": ROOT, "env": env, "check": True, "capture_output": True, "text": True, "timeout": 120}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], **run)
    keys = json.loads(subprocess.run([sys.executable, "-c", SEED], **run).stdout.strip().splitlines()[-1])
    port = free_port()
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "gunicorn", "config.wsgi", "--config", "config/gunicorn.py"),
                *("--workers", "2", "--bind", f"127.0.0.1:{port}", "--no-control-socket"),
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(f"{url}/healthz", process, log_path)
        yield {"url": url, "port": port, "keys": keys, "metrics_dir": metrics_dir, "tmp": tmp_path}
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_until_up(url: str, process: subprocess.Popen[Any], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, f"exited on start:\n{log.read_text()[-3000:]}"
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"{url} did not answer within 60 s:\n{log.read_text()[-3000:]}")


def _ask(url: str, key: str, tool: str, call_id: int) -> str:
    request = urllib.request.Request(
        f"{url}/api/v1/tool-calls",
        data=json.dumps({"tool": tool, "arguments": {"id": call_id}}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(json.loads(response.read())["decision"])


def _scrape(url: str, token: str | None = TOKEN) -> dict[tuple[str, frozenset[tuple[str, str]]], list[float]]:
    """Every sample of one scrape, by name and labels (a list, so that a series reported twice shows)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(f"{url}/metrics", headers=headers), timeout=10) as response:
        text = response.read().decode()
    samples: dict[tuple[str, frozenset[tuple[str, str]]], list[float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault((sample.name, frozenset(sample.labels.items())), []).append(sample.value)
    return samples


def _calls(decision: str, tool: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return "warden_tool_calls_total", frozenset({"decision": decision, "tool": tool}.items())


def _decisions_per_worker(metrics_dir: Path) -> dict[str, float]:
    """Decisions counted in each process's own file: what one worker alone would report without the others."""
    counted = {}
    for path in sorted(metrics_dir.glob("counter_*.db")):
        families = MultiProcessCollector.merge([str(path)], accumulate=False)
        counted[path.stem.removeprefix("counter_")] = sum(
            sample.value
            for family in families
            if family.name == "warden_tool_calls"
            for sample in family.samples
            if sample.name == "warden_tool_calls_total"
        )
    return counted


def _query(prometheus_url: str, promql: str) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(f"{prometheus_url}/api/v1/query?{query}", timeout=5) as response:
        document = json.loads(response.read())
    assert document["status"] == "success", document
    return list(document["data"]["result"])


def test_two_workers_count_apart_and_any_of_them_reports_the_total_which_prometheus_scrapes(server):
    url, keys = server["url"], server["keys"]
    jobs = [(keys[n % 2], "crm.read", n) for n in range(ALLOWED)]
    jobs += [(keys[n % 2], f"invented.tool_{n}", n) for n in range(INVENTED)]
    with ThreadPoolExecutor(max_workers=8) as pool:  # concurrent, so that both sync workers take calls
        decisions = Counter(pool.map(lambda job: _ask(url, *job), jobs))
    assert decisions == {"allow": ALLOWED, "deny": INVENTED}

    # Each worker counted only the calls it decided ...
    per_worker = [count for count in _decisions_per_worker(server["metrics_dir"]).values() if count]
    assert len(per_worker) == 2, per_worker
    assert sum(per_worker) == ALLOWED + INVENTED
    # ... yet every scrape, whichever worker answers it, reports the total, and each series once.
    for _ in range(6):
        samples = _scrape(url)
        assert samples[_calls("allow", "crm.read")] == [ALLOWED]
        assert samples[_calls("deny", "unregistered")] == [INVENTED]
        assert samples[("warden_decision_duration_seconds_count", frozenset())] == [ALLOWED + INVENTED]
        agents = {
            dict(labels)["status"]: values for (name, labels), values in samples.items() if name == "warden_agents"
        }
        assert agents == {"draft": [1], "active": [2], "suspended": [0], "quarantined": [0], "retired": [0]}
        assert samples[("warden_approvals_pending", frozenset({"kind": "escalation"}.items()))] == [0]
    with pytest.raises(urllib.error.HTTPError) as refused:
        _scrape(url, token=None)
    assert refused.value.code == 401

    # A real Prometheus scrapes Warden with the bearer token and answers with what Warden counted.
    prometheus_bin = require_command("prometheus", package="prometheus")
    prometheus_port = free_port()
    config = server["tmp"] / "prometheus.yml"
    config.write_text(
        json.dumps(  # YAML is a superset of JSON
            {
                "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "warden",
                        "metrics_path": "/metrics",
                        "authorization": {"credentials": TOKEN},
                        "static_configs": [{"targets": [f"127.0.0.1:{server['port']}"]}],
                    }
                ],
            }
        )
    )
    log_path = server["tmp"] / "prometheus.log"
    with log_path.open("w") as log:
        prometheus = subprocess.Popen(
            [
                prometheus_bin,
                f"--config.file={config}",
                f"--storage.tsdb.path={server['tmp'] / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prometheus_port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    prometheus_url = f"http://127.0.0.1:{prometheus_port}"
    try:
        _wait_until_up(f"{prometheus_url}/-/ready", prometheus, log_path)
        deadline = time.monotonic() + 60
        while True:
            series = {
                (row["metric"]["decision"], row["metric"]["tool"]): float(row["value"][1])
                for row in _query(prometheus_url, "warden_tool_calls_total")
            }
            if series or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert series == {("allow", "crm.read"): ALLOWED, ("deny", "unregistered"): INVENTED}, log_path.read_text()
        [up] = _query(prometheus_url, 'up{job="warden"}')
        assert up["value"][1] == "1"
        [active] = _query(prometheus_url, 'warden_agents{status="active"}')
        assert active["value"][1] == "2"
    finally:
        prometheus.send_signal(signal.SIGTERM)
        prometheus.wait(timeout=30)
    assert prometheus.returncode == 0, log_path.read_text()[-3000:]
