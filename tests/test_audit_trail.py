"""The audit trail end to end: decisions, results and changes write records in their own
transactions, the sealer seals them, proofs verify offline, sensitive values stay hidden."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import transaction

from audit import merkle, sensitive
from audit.models import AuditRecord, Block, Seal
from audit.sealing import seal_pending
from audit.verification import verify_trail
from policy import services as policy_services
from policy.models import ToolCall
from policy.tests.builders import PAYMENT_SCHEMA, VALID_PAYMENT
from policy.tests.conftest import live_policy  # noqa: F401  (fixture)
from registry import services as registry_services
from registry.models import Agent

pytestmark = pytest.mark.django_db

URL = "/api/v1/tool-calls"
VERIFY = Path(__file__).resolve().parent.parent / "bin" / "verify-audit-proof"


def decide(live_policy, arguments=None) -> dict:  # noqa: F811
    body = {"tool": "payments.transfer", "arguments": VALID_PAYMENT if arguments is None else arguments}
    response = live_policy.client().post(URL, body, format="json")
    assert response.status_code == 200, response.json()
    return response.json()


def offline_verify(proof: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(VERIFY), *args], input=json.dumps(proof), capture_output=True, text=True, check=False
    )


def test_a_decision_writes_one_record_that_seals_and_proves_offline(live_policy, auditor_api):  # noqa: F811
    call_id = decide(live_policy)["id"]
    record = AuditRecord.objects.get(action="tool_call.decided", subject_id=call_id)
    payload = json.loads(record.payload)
    assert (payload["decision"], payload["arguments"], payload["tool_call"]) == ("allow", VALID_PAYMENT, call_id)
    assert (record.actor_kind, record.actor_label, record.agent_id, record.tool) == (
        "agent",
        "payer",
        str(live_policy.agent.pk),
        "payments.transfer",
    )
    unsealed = auditor_api.get(f"/api/v1/audit/records/{record.seq}/proof")
    assert (unsealed.status_code, unsealed.json()["code"]) == (409, "not_sealed")
    assert seal_pending().records == AuditRecord.objects.count()
    proof = auditor_api.get(f"/api/v1/audit/records/{record.seq}/proof").json()
    block = Block.objects.get(pk=Seal.objects.get(record=record).block_id)
    leaf = merkle.leaf_hash(record.entry())
    assert proof["leaf_hash"] == leaf.hex()
    path = [bytes.fromhex(node) for node in proof["audit_path"]]
    assert merkle.root_from_proof(proof["leaf_index"], block.size, leaf, path).hex() == block.merkle_root
    checked = offline_verify(proof, "--block-hash", block.block_hash)
    assert checked.returncode == 0, checked.stdout
    assert f"record {record.seq} (tool_call.decided) is in block {block.height}" in checked.stdout
    call_command("audit_verify", stdout=open("/dev/null", "w"))  # noqa: SIM115


@pytest.mark.parametrize(
    "forge",
    [
        lambda proof: proof["record"].update(payload=proof["record"]["payload"].replace("allow", "deny")),
        lambda proof: proof["record"]["actor"].update(label="someone-else"),
        lambda proof: proof.update(leaf_index=proof["leaf_index"] ^ 1),
        lambda proof: proof["block"]["header"].update(merkle_root="0" * 64),
        lambda proof: proof["audit_path"].reverse(),
    ],
)
def test_a_forged_proof_fails_offline(live_policy, auditor_api, forge):  # noqa: F811
    for amount in (1, 2, 3):
        decide(live_policy, {**VALID_PAYMENT, "amount": amount})
    seal_pending()
    seq = AuditRecord.objects.filter(action="tool_call.decided").order_by("seq").first().seq
    proof = auditor_api.get(f"/api/v1/audit/records/{seq}/proof").json()
    assert offline_verify(proof).returncode == 0
    forge(proof)
    assert offline_verify(proof).returncode == 1


def test_results_and_registry_changes_are_recorded_in_their_own_transactions(live_policy):  # noqa: F811
    call_id = decide(live_policy)["id"]
    result = {"status": "succeeded", "output": {"transfer_id": "t-1", "status": "booked"}, "usage": {"cost": 0.25}}
    live_policy.client().post(f"{URL}/{call_id}/result", result, format="json")
    reported = AuditRecord.objects.get(action="tool_call.result_reported", subject_id=call_id)
    assert json.loads(reported.payload)["cost"] == "0.25"
    agent = Agent.objects.get(pk=live_policy.agent.pk)
    registry_services.agent_transition(actor=live_policy.actor, agent=agent, to="suspended", reason="Investigating.")
    changed = AuditRecord.objects.filter(action="agent.status_changed", subject_id=str(agent.pk)).first()
    assert json.loads(changed.payload)["reason"] == "Investigating."
    assert changed.actor_kind == "system"
    assert changed.agent_id == str(agent.pk)
    # A change that rolls back leaves no record behind.
    count = AuditRecord.objects.count()

    def change_then_fail() -> None:
        with transaction.atomic():
            registry_services.agent_transition(actor=live_policy.actor, agent=agent, to="active", reason="Cleared.")
            raise RuntimeError("the surrounding transaction fails")

    with pytest.raises(RuntimeError):
        change_then_fail()
    assert AuditRecord.objects.count() == count
    actions = set(AuditRecord.objects.values_list("action", flat=True))
    assert {"grant.added", "credential.issued", "contract.created", "tool_call.decided"} <= actions


def test_sensitive_arguments_are_stored_as_salted_digests_everywhere(live_policy, auditor_api):  # noqa: F811
    schema = {**PAYMENT_SCHEMA, "properties": {**PAYMENT_SCHEMA["properties"]}}
    schema["properties"]["account"] = {**schema["properties"]["account"], "x-warden-sensitive": True}
    policy_services.contract_create(
        actor=live_policy.actor, tool="payments.transfer", input_schema=schema, activate=True
    )
    account = VALID_PAYMENT["account"]
    answer = decide(live_policy)
    assert answer["decision"] == "allow"
    call = ToolCall.objects.get(pk=answer["id"])
    record = AuditRecord.objects.get(action="tool_call.decided", subject_id=answer["id"])
    assert account not in json.dumps(call.arguments)
    assert account not in record.payload
    assert sensitive.matches(account, call.arguments["account"])
    assert sensitive.matches(account, json.loads(record.payload)["arguments"]["account"])
    assert not sensitive.matches("DE00000000000000000000", json.loads(record.payload)["arguments"]["account"])
    shown = live_policy.client().get(f"{URL}/{answer['id']}").json()
    assert account not in json.dumps(shown)
    listed = auditor_api.get("/api/v1/audit/records", {"action": "tool_call."}).json()
    assert account not in json.dumps(listed)
    # A schema error about the sensitive field does not quote the value either.
    bad = decide(live_policy, {**VALID_PAYMENT, "account": "not-an-iban-secret"})
    assert bad["decision"] == "deny"
    assert "not-an-iban-secret" not in json.dumps(bad)
    denied = AuditRecord.objects.get(action="tool_call.decided", subject_id=bad["id"])
    assert "not-an-iban-secret" not in denied.payload


def test_the_trail_api_filters_and_is_for_auditors_only(live_policy, auditor_api, viewer_api, admin_api):  # noqa: F811
    decide(live_policy)
    assert viewer_api.get("/api/v1/audit/records").status_code == 403
    assert viewer_api.post("/api/v1/audit/seal").status_code == 403
    assert admin_api.get("/api/v1/audit/records").status_code == 200
    everything = auditor_api.get("/api/v1/audit/records").json()
    assert everything["count"] == AuditRecord.objects.count()
    by_agent = auditor_api.get("/api/v1/audit/records", {"agent": str(live_policy.agent.pk)}).json()
    assert by_agent["count"]
    assert all(r["agent_id"] == str(live_policy.agent.pk) for r in by_agent["results"])
    decided = auditor_api.get("/api/v1/audit/records", {"action": "tool_call.decided", "tool": "payments.transfer"})
    assert [r["action"] for r in decided.json()["results"]] == ["tool_call.decided"]
    assert decided.json()["results"][0]["seal"] is None
    assert auditor_api.get("/api/v1/audit/records", {"actor": "payer"}).json()["count"] == 1
    assert auditor_api.get("/api/v1/audit/records", {"sealed": "true"}).json()["count"] == 0
    sealed = auditor_api.post("/api/v1/audit/seal").json()
    assert (sealed["blocks"], sealed["records"]) == ([0], AuditRecord.objects.count())
    assert auditor_api.get("/api/v1/audit/records", {"sealed": "false"}).json()["count"] == 0
    blocks = auditor_api.get("/api/v1/audit/blocks").json()
    assert blocks["results"][0]["block_hash"] == Block.objects.get().block_hash
    missing = auditor_api.get("/api/v1/audit/records/999999/proof")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")


def test_export_writes_blocks_and_proofs_that_verify_line_by_line(live_policy, tmp_path):  # noqa: F811
    for amount in range(1, 6):
        decide(live_policy, {**VALID_PAYMENT, "amount": amount})
    seal_pending()
    decide(live_policy)  # not sealed: left out, and counted
    out = tmp_path / "trail.jsonl"
    call_command("audit_export", "--since", "2000-01-01", "--output", str(out), stderr=open("/dev/null", "w"))  # noqa: SIM115
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["type"] for line in lines[:1]] == ["block"]
    records = [line for line in lines if line["type"] == "record"]
    assert len(records) == AuditRecord.objects.count() - 1
    for line in records:
        assert offline_verify(line, "--block-hash", lines[0]["block_hash"]).returncode == 0
    assert lines[-1] == {
        "type": "summary",
        "records": len(records),
        "blocks": 1,
        "last_block_hash": lines[0]["block_hash"],
        "unsealed_left_out": 1,
    }
    call_command("audit_export", "--until", "2000-01-01", "--output", str(out), stderr=open("/dev/null", "w"))  # noqa: SIM115
    assert [json.loads(line)["type"] for line in out.read_text().splitlines()] == ["summary"]
    assert verify_trail().ok
