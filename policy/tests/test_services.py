"""Contracts and rules: validated at save, recorded, immutable once active, moving the policy version."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from core import revisions
from core.errors import Conflict, IllegalTransition, InvalidInput
from core.testing import assert_change_record
from policy import services
from policy.models import ContractVersion, Rule
from policy.tests.builders import PAYMENT_SCHEMA
from registry import services as registry_services
from registry.choices import ChangeAction
from registry.tests.factories import ToolFactory

pytestmark = pytest.mark.django_db

LOOSE = {"type": "object", "properties": {"note": {"type": "string"}, "items": {"type": "array"}}}


def test_contract_versions_number_themselves_and_report_hardening(actor):
    tool = ToolFactory(name="notes.write")
    first = services.contract_create(actor=actor, tool=tool, input_schema=LOOSE)
    second = services.contract_create(actor=actor, tool="notes.write", input_schema=PAYMENT_SCHEMA)
    assert (first.version, second.version, first.status) == (1, 2, "draft")
    assert {(f["code"], f["at"]) for f in first.hardening_report} == {
        ("additional_properties_allowed", "/"),
        ("no_required", "/"),
        ("unbounded_string", "/properties/note"),
        ("unbounded_array", "/properties/items"),
    }
    assert second.hardening_report == []
    assert_change_record(first, ChangeAction.CONTRACT_CREATED, actor=actor)


@pytest.mark.parametrize(
    ("schema", "fragment"),
    [
        ({"type": "objekt"}, "Not a valid Draft 2020-12 schema"),
        ({"properties": {"a": {"minLength": -1}}}, "/properties/a/minLength"),
        ([], "must be a JSON object"),
    ],
)
def test_a_schema_that_breaks_the_metaschema_is_refused(actor, schema, fragment):
    ToolFactory(name="notes.write")
    with pytest.raises(ValidationError) as error:
        services.contract_create(actor=actor, tool="notes.write", input_schema=schema)
    assert fragment in str(error.value.message_dict["input_schema"])
    assert not ContractVersion.objects.exists()


def test_contracts_are_immutable_once_active(actor):
    ToolFactory(name="notes.write")
    contract = services.contract_create(actor=actor, tool="notes.write", input_schema=LOOSE)
    contract = services.contract_update(actor=actor, contract=contract, input_schema=PAYMENT_SCHEMA)
    assert contract.hardening_report == []
    contract = services.contract_set_status(actor=actor, contract=contract, to="active")
    assert contract.activated_at is not None
    with pytest.raises(Conflict) as error:
        services.contract_update(actor=actor, contract=contract, notes="sneaky edit")
    assert "create version 2" in str(error.value)
    with pytest.raises(IllegalTransition):
        services.contract_set_status(actor=actor, contract=contract, to="draft")
    services.contract_set_status(actor=actor, contract=contract, to="deprecated")
    services.contract_set_status(actor=actor, contract=contract, to="active")


def test_hardening_can_be_enforced_per_tool(actor):
    tool = ToolFactory(name="notes.write")
    registry_services.tool_update(actor=actor, tool=tool, enforce_hardening=True)
    weak = services.contract_create(actor=actor, tool="notes.write", input_schema=LOOSE)
    with pytest.raises(Conflict) as error:
        services.contract_set_status(actor=actor, contract=weak, to="active")
    assert len(error.value.detail["hardening_report"]) == 4
    strong = services.contract_create(actor=actor, tool="notes.write", input_schema=PAYMENT_SCHEMA, activate=True)
    assert strong.status == "active"


def test_rule_syntax_errors_are_refused_with_their_position(actor):
    with pytest.raises(ValidationError) as error:
        services.rule_create(actor=actor, name="bad", expression="args.amount >", effect="deny")
    assert "line 1, column" in error.value.message_dict["expression"][0]
    assert not Rule.objects.exists()


def test_rule_scope_needs_exactly_its_target(actor):
    ToolFactory(name="notes.write")
    with pytest.raises(ValidationError) as error:
        services.rule_create(actor=actor, name="r", expression="true", effect="deny", scope="tool")
    assert "scope_tool" in error.value.message_dict
    with pytest.raises(ValidationError):
        services.rule_create(
            actor=actor, name="r", expression="true", effect="deny", scope="global", scope_tool="notes.write"
        )
    with pytest.raises(InvalidInput):
        services.rule_create(actor=actor, name="r", expression="true", effect="deny", scope="tool", scope_tool="x.y")


def test_every_policy_change_is_recorded_and_moves_the_version(actor):
    start = revisions.current(revisions.POLICY)
    rule = services.rule_create(actor=actor, name="r", expression="true", effect="escalate")
    rule = services.rule_update(actor=actor, rule=rule, expression="args.amount > 5", reason="Tighter.")
    record = assert_change_record(rule, ChangeAction.RULE_CHANGED, actor=actor)
    assert record.changed_fields == ["expression"]
    assert record.reason == "Tighter."
    services.rule_delete(actor=actor, rule=rule, reason="Not needed.")
    assert revisions.current(revisions.POLICY) == start + 3
    assert not Rule.objects.exists()


def test_format_or_pattern_under_not_is_refused_at_save(actor):
    ToolFactory(name="notes.write")
    with pytest.raises(ValidationError) as error:
        services.contract_create(
            actor=actor, tool="notes.write", input_schema={"properties": {"at": {"not": {"format": "date"}}}}
        )
    assert "/properties/at/not" in error.value.message_dict["input_schema"][0]
