"""Property-based fuzzing of the whole /api/v1/ surface with Schemathesis, from the live schema.

For every operation the schema at /api/schema/ documents, Schemathesis generates schema-valid
("positive") and schema-violating ("negative") requests, sends them over real HTTP to a live
server as a superuser (HTTP Basic), and runs its default checks on every answer. Hooks steer
path ids and related slugs towards seeded objects, so updates and creates get past the 404/400.

Every check gates, with two exceptions whose failures come from DRF conventions rather than
bugs, and are written to var/artifacts/api-fuzz/report.json instead:

- `positive_data_acceptance`: schema-valid input can still break a rule no OpenAPI schema can
  state (an owner that does not exist, a slug already taken, "exactly one of agent or role",
  an expiry in the past, NUL characters). Such a rejection must still be a proper
  `400 invalid` error document; anything else fails the test.
- `negative_data_rejection`: DRF coerces numbers sent for string fields (`"reason": 12` is
  stored as "12"), so some schema-violating input is accepted.

Runs with one worker and a fixed seed (`derandomize=True`), so CI sees the same requests every
time. It uses Schemathesis's Python API with Hypothesis directly: the `schemathesis.pytest` lazy
loader fails under pytest 9 (it sets `Function._nodeid`, which pytest 9 no longer has).
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup

from policy import decisions
from tests.conftest import E2E_PASSWORD, SeededRegistry

pytestmark = [pytest.mark.fuzz, pytest.mark.django_db(transaction=True)]

EXAMPLES_PER_MODE = 20  # positive and negative: 40 requests per operation
HTTP_METHODS = ("get", "put", "post", "delete", "patch")
# Checks whose failures are reported, not gating (see the module docstring).
REPORTED_ONLY = frozenset({"positive_data_acceptance", "negative_data_rejection"})


def _operations() -> list[tuple[str, str]]:
    """Every (METHOD, path) under /api/v1/, from the generator that serves /api/schema/."""
    document = SchemaGenerator().get_schema(request=None, public=True)
    return [
        (method.upper(), path)
        for path, item in document["paths"].items()
        if path.startswith("/api/v1/")
        for method in item
        if method in HTTP_METHODS
    ]


OPERATIONS = _operations()


@pytest.fixture(scope="module")
def fuzz_report(artifacts_dir: Path) -> Iterator[dict[str, Any]]:
    """Per operation: status codes seen and reported-only findings; written out after the module."""
    report: dict[str, Any] = {}
    yield report
    target = artifacts_dir / "api-fuzz" / "report.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False))


@pytest.fixture
def api_schema(live_server: Any, e2e_superuser: Any, seeded_registry: SeededRegistry) -> Any:
    """The schema served at /api/schema/, sending HTTP Basic auth, steered towards real objects."""
    loaded = schemathesis.openapi.from_url(f"{live_server.url}/api/schema/?format=json")
    loaded.config.update(base_url=live_server.url, basic_auth=(e2e_superuser.username, E2E_PASSWORD))
    # Agent-only operations are called with an active agent's key; one recorded call to look up.
    credential = next(c for c in seeded_registry.credentials if c.agent.slug == "invoice-bot")
    agent_key = seeded_registry.keys[credential.prefix]
    call = decisions.decide_call(
        decisions.AgentPrincipal(agent_id=str(credential.agent_id), prefix=credential.prefix),
        decisions.CallRequest(tool="payments.transfer", arguments={"amount": 10}),
    )
    loaded.agent_key = agent_key  # type: ignore[attr-defined]
    known_ids = {
        "/api/v1/tool-calls/": [str(call.pk)],
        "/api/v1/agents/": [str(agent.pk) for agent in seeded_registry.agents],
        "/api/v1/roles/": [str(role.pk) for role in seeded_registry.roles],
        "/api/v1/grants/": [str(grant.pk) for grant in seeded_registry.grants],
        "/api/v1/credentials/": [str(credential.pk) for credential in seeded_registry.credentials],
    }
    references = {
        "owner": [seeded_registry.owner.username, e2e_superuser.username],
        "role": [role.slug for role in seeded_registry.roles],
        "agent": [agent.slug for agent in seeded_registry.agents],
        "supervisor": [agent.slug for agent in seeded_registry.agents],
    }

    @loaded.hook("flatmap_path_parameters")
    def real_ids(context: Any, path_parameters: dict[str, Any] | None) -> Any:
        # Mostly ids of seeded objects, so detail operations get past the 404; sometimes the random one.
        prefix = next((p for p in known_ids if context.operation.path.startswith(p)), None)
        if prefix is None or not _is_uuid(path_parameters):
            return st.just(path_parameters)  # nothing to resolve, or a deliberately invalid id: kept
        assert path_parameters is not None
        choices = [*known_ids[prefix], path_parameters["id"]]
        return st.sampled_from(choices).map(lambda value: {**path_parameters, "id": value})

    @loaded.hook("flatmap_body")
    def real_references(context: Any, body: Any) -> Any:
        # Related objects are named by slug: mostly name real ones, so creates and updates can succeed.
        if not isinstance(body, dict):
            return st.just(body)
        strategy = st.fixed_dictionaries(
            {
                key: st.sampled_from([*references[key], value])
                if key in references and isinstance(value, str)
                else st.just(value)
                for key, value in body.items()
            }
        )
        if context.operation.path.startswith("/api/v1/grants/") and all(
            isinstance(body.get(key), str | None) for key in ("agent", "role")
        ):
            # A grant belongs to exactly one agent or one role, a rule the schema cannot state.
            holders = [None] + [(key, slug) for key in ("agent", "role") for slug in references[key]]
            strategy = st.tuples(strategy, st.sampled_from(holders)).map(_with_one_holder)
        return strategy

    return loaded


def _with_one_holder(pair: tuple[dict[str, Any], tuple[str, str] | None]) -> dict[str, Any]:
    body, holder = pair
    if holder is None:
        return body  # as generated, holder rule and all
    key, slug = holder
    return {**body, "agent": None, "role": None, key: slug}


def _is_uuid(path_parameters: dict[str, Any] | None) -> bool:
    try:
        uuid.UUID(str((path_parameters or {})["id"]))
    except (KeyError, ValueError):
        return False
    return True


def _is_invalid_error(response: Any) -> bool:
    """A 400 carrying Warden's error document with code `invalid`."""
    try:
        body = response.json()
    except ValueError:
        return False
    return response.status_code == 400 and isinstance(body, dict) and body.get("code") == "invalid"


def _describe(mode: GenerationMode, failure: Any, case: Any, response: Any) -> str:
    return (
        f"[{mode.value}] {type(failure).__name__}: {failure.title}\n{failure.message[:800]}\n"
        f"{case.as_curl_command()}\n-> {response.status_code} {response.text[:300]}"
    )


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_passes_default_checks(api_schema: Any, fuzz_report: dict[str, Any], method: str, path: str) -> None:
    operation = api_schema[path][method]
    gating: dict[str, str] = {}
    reported: dict[str, str] = {}
    statuses: dict[str, Counter[int]] = {}

    agent_only = (method == "POST" and path.startswith("/api/v1/tool-calls/")) or (
        method in {"POST", "DELETE"} and path.startswith("/api/v1/webhooks/")
    )
    headers = {"Authorization": f"Bearer {api_schema.agent_key}"} if agent_only else None

    def exercise(case: Any) -> None:
        mode = case.meta.generation.mode
        response = case.call(headers=headers)
        statuses.setdefault(mode.value, Counter())[response.status_code] += 1
        try:
            case.validate_response(response)  # the default checks
        except FailureGroup as group:
            for failure in group.exceptions:
                key = f"{type(failure).__name__}: {failure.title}"
                known = set(failure.checks) <= REPORTED_ONLY and (
                    "positive_data_acceptance" not in failure.checks or _is_invalid_error(response)
                )
                (reported if known else gating).setdefault(key, _describe(mode, failure, case, response))

    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        run = settings(
            max_examples=EXAMPLES_PER_MODE,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )(given(case=operation.as_strategy(generation_mode=mode))(exercise))
        run()

    fuzz_report[f"{method} {path}"] = {
        "statuses": {mode: dict(sorted(seen.items())) for mode, seen in statuses.items()},
        "reported": sorted(reported.values()),
    }
    assert not gating, "\n\n".join(gating.values())
    assert not any(code >= 500 for seen in statuses.values() for code in seen)
    # Guard against fuzzing nothing: valid requests with valid credentials must get past authentication.
    assert set(statuses["positive"]) - {401, 403}, f"every valid request was refused: {statuses['positive']}"
