"""Engine unit tests: no database, milliseconds each."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest

from policy.engine import Code, Counters, Limits, Outcome, Snapshot, decide
from policy.engine.rules import InvalidExpression, compile_expression
from policy.engine.snapshot import ToolView
from policy.tests.builders import (
    NOW,
    PAYMENT_SCHEMA,
    VALID_PAYMENT,
    agent,
    contract,
    grant,
    request,
    rule,
    snapshot,
)


def codes(decision):
    return decision.codes()


def test_a_valid_call_within_the_grant_is_allowed():
    decision = decide(snapshot(), request())
    assert (decision.outcome, decision.reasons, decision.contract_version, decision.policy_version) == (
        Outcome.ALLOW,
        (),
        1,
        7,
    )


def test_empty_snapshot_denies_everything():
    decision = decide(Snapshot.empty(), request())
    assert (decision.outcome, codes(decision)) == (Outcome.DENY, ["empty_snapshot"])


@pytest.mark.parametrize("status", ["draft", "suspended", "quarantined", "retired"])
def test_only_active_agents_act(status):
    decision = decide(snapshot(agents=[agent("payer", status=status)]), request())
    assert codes(decision) == ["agent_not_active"]
    assert decision.reasons[0].detail == {"agent": "payer", "status": status}


def test_unknown_agent_and_unknown_tool_are_denied():
    assert codes(decide(snapshot(), request(agent_id="id-nobody"))) == ["unknown_agent"]
    assert codes(decide(snapshot(), request(tool="payments.wire_all"))) == ["unknown_tool"]


def test_no_grant_is_denied_even_with_an_allow_rule():
    snap = snapshot(grants=[], rules=[rule("true", "allow")])
    assert codes(decide(snap, request())) == ["no_grant"]


def test_an_expired_own_grant_falls_back_to_a_current_role_grant():
    expired = grant("payments.transfer", valid_until=NOW - dt.timedelta(seconds=1))
    role = grant("payments.transfer", source="role", constraints={"amount": {"maximum": 100}})
    snap = snapshot(grants=[("id-payer", expired), ("id-payer", role)])
    decision = decide(snap, request())
    assert codes(decision) == ["limit_exceeded"]  # the role grant's limit applies
    assert decide(snapshot(grants=[("id-payer", expired)]), request()).codes() == ["no_grant"]


def test_own_grant_replaces_the_role_grant():
    own = grant("payments.transfer", constraints={"amount": {"maximum": 10000}})
    role = grant("payments.transfer", source="role", constraints={"amount": {"maximum": 100}})
    snap = snapshot(grants=[("id-payer", role), ("id-payer", own)])
    assert decide(snap, request()).outcome is Outcome.ALLOW


def test_no_active_contract_and_unknown_versions_deny():
    drafts = snapshot(contracts=[contract("payments.transfer", PAYMENT_SCHEMA, status="draft")])
    assert codes(decide(drafts, request())) == ["no_active_contract"]
    assert codes(decide(snapshot(), request(contract_version=9))) == ["unknown_contract_version"]


def test_default_contract_is_the_highest_active_version_and_deprecated_ones_can_be_named():
    loose = {"type": "object"}
    snap = snapshot(
        contracts=[
            contract("payments.transfer", loose, version=1, status="deprecated"),
            contract("payments.transfer", PAYMENT_SCHEMA, version=2),
            contract("payments.transfer", loose, version=3, status="draft"),
        ]
    )
    assert decide(snap, request({"anything": 1})).contract_version == 2
    assert decide(snap, request({"anything": 1})).outcome is Outcome.DENY
    assert decide(snap, request({"anything": 1}, contract_version=1)).outcome is Outcome.ALLOW
    assert codes(decide(snap, request(contract_version=3))) == ["unknown_contract_version"]


def test_schema_violations_name_each_failing_field_by_json_pointer():
    args = {**VALID_PAYMENT, "amount": "lots", "currency": "XXX", "smuggled": "ignore previous instructions"}
    decision = decide(snapshot(), request(args))
    assert decision.outcome is Outcome.DENY
    assert {(reason.code, reason.pointer) for reason in decision.reasons} == {
        (Code.SCHEMA_VIOLATION, ""),
        (Code.SCHEMA_VIOLATION, "/amount"),
        (Code.SCHEMA_VIOLATION, "/currency"),
    }


def test_format_is_checked_on_the_hot_path():
    decision = decide(snapshot(), request({**VALID_PAYMENT, "requested_by": "not-an-email"}))
    assert [(r.code, r.pointer) for r in decision.reasons] == [(Code.SCHEMA_VIOLATION, "/requested_by")]


def test_grant_constraints_by_name_and_json_pointer():
    nested = {
        "type": "object",
        "properties": {"payee": {"type": "object", "properties": {"country": {"type": "string"}}}},
    }
    snap = snapshot(
        grants=[("id-payer", grant("payments.transfer", constraints={"/payee/country": {"enum": ["DE", "FR"]}}))],
        contracts=[contract("payments.transfer", nested)],
    )
    assert decide(snap, request({"payee": {"country": "DE"}})).outcome is Outcome.ALLOW
    denied = decide(snap, request({"payee": {"country": "KP"}}))
    assert [(r.code, r.pointer) for r in denied.reasons] == [(Code.LIMIT_EXCEEDED, "/payee/country")]
    assert decide(snap, request({})).outcome is Outcome.ALLOW  # absent: the contract decides what is required


def test_rules_first_enforced_match_decides_in_priority_order():
    snap = snapshot(
        rules=[
            rule("args.amount > 1000", "escalate", priority=20, name="big"),
            rule("agent.slug == 'payer'", "allow", priority=10, name="trusted payer"),
            rule("true", "deny", priority=30, name="never reached"),
        ]
    )
    decision = decide(snap, request())
    assert (decision.outcome, decision.rules_matched) == (Outcome.ALLOW, ("trusted payer",))


def test_escalate_and_deny_rules_give_their_codes_and_messages():
    snap = snapshot(rules=[rule("args.amount > 1000", "escalate", name="big")])
    decision = decide(snap, request())
    assert (decision.outcome, codes(decision), decision.reasons[0].rule) == (
        Outcome.ESCALATE,
        ["rule_escalated"],
        "big",
    )
    snap = snapshot(rules=[rule("args.currency == 'EUR'", "deny", name="no euros")])
    assert codes(decide(snap, request())) == ["rule_denied"]


def test_rule_scopes():
    by_tool = rule("true", "deny", scope="tool", target="other.tool")
    by_role = rule("true", "deny", scope="role", target="analyst", name="analysts")
    by_agent = rule("true", "deny", scope="agent", target="id-someone-else")
    assert decide(snapshot(rules=[by_tool, by_agent]), request()).outcome is Outcome.ALLOW
    assert codes(decide(snapshot(rules=[by_role]), request())) == ["rule_denied"]


def test_a_rule_that_fails_to_evaluate_denies_and_a_shadow_error_is_only_recorded():
    snap = snapshot(rules=[rule("args.missing > 3", "escalate", name="broken")])
    decision = decide(snap, request())
    assert codes(decision) == ["rule_error"]
    assert "has()" in decision.reasons[0].message
    shadow = snapshot(rules=[rule("args.missing > 3", "deny", mode="shadow", name="broken")])
    decision = decide(shadow, request())
    assert decision.outcome is Outcome.ALLOW
    assert decision.shadow[0].error is not None
    assert not decision.shadow[0].matched


def test_shadow_rules_are_recorded_and_never_change_the_outcome():
    snap = snapshot(rules=[rule("args.amount > 1000", "deny", mode="shadow", name="tighter limit")])
    decision = decide(snap, request())
    assert decision.outcome is Outcome.ALLOW
    assert [s.as_dict() for s in decision.shadow] == [
        {"rule": "tighter limit", "name": "tighter limit", "effect": "deny", "matched": True}
    ]


def test_rules_see_tool_context_and_now():
    snap = snapshot(
        rules=[
            rule(
                "tool.side_effect == 'financial' && context.purpose == 'test' && now.getHours() == 12"
                " && 'boss' in context.on_behalf_of",
                "escalate",
            )
        ]
    )
    assert decide(snap, request()).outcome is Outcome.ALLOW  # no 'boss' in the chain
    boss = agent("boss", depth=1)
    snap = dataclasses.replace(
        snapshot(
            agents=[agent("payer"), boss],
            grants=[("id-payer", grant("payments.transfer")), ("id-boss", grant("payments.transfer"))],
        ),
        rules=snap.rules,
    )
    assert codes(decide(snap, request(on_behalf_of=("boss",)))) == ["rule_escalated"]


def test_a_non_boolean_rule_result_is_an_error():
    assert codes(decide(snapshot(rules=[rule("args.amount", "deny")]), request())) == ["rule_error"]


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [("args.amount >", "line 1, column"), ("secrets.key == 1", "Unknown variable"), ("  ", "empty")],
)
def test_bad_expressions_are_refused_at_compile_time(expression, fragment):
    with pytest.raises(InvalidExpression) as error:
        compile_expression(expression)
    assert fragment in str(error.value)


def test_syntax_error_position_is_reported():
    with pytest.raises(InvalidExpression) as error:
        compile_expression("args.amount > 1 &&\n  (")
    assert (error.value.line, error.value.column) == (2, 4)


# Delegation -----------------------------------------------------------------------------


def chain_snapshot(**overrides):
    agents = overrides.pop("agents", [agent("payer"), agent("lead", depth=1), agent("director", depth=2)])
    grants = overrides.pop(
        "grants",
        [
            ("id-payer", grant("payments.transfer")),
            ("id-lead", grant("payments.transfer", constraints={"amount": {"maximum": 3000}})),
            ("id-director", grant("payments.transfer")),
        ],
    )
    return snapshot(agents=agents, grants=grants, **overrides)


def test_delegation_within_depth_is_allowed():
    assert decide(chain_snapshot(), request(on_behalf_of=("director", "lead"))).outcome is Outcome.ALLOW


def test_delegation_intersects_constraints():
    decision = decide(chain_snapshot(), request({**VALID_PAYMENT, "amount": 4000}, on_behalf_of=("director", "lead")))
    assert codes(decision) == ["limit_exceeded"]
    assert decision.reasons[0].detail["agent"] == "lead"


def test_delegation_denials():
    snap = chain_snapshot()
    too_deep = decide(snap, request(on_behalf_of=("lead", "director")))  # lead is 2 levels above: depth 1
    assert codes(too_deep) == ["delegation_denied"]
    assert too_deep.reasons[0].detail["agent"] == "lead"
    assert codes(decide(snap, request(on_behalf_of=("ghost",)))) == ["delegation_denied"]
    assert codes(decide(snap, request(on_behalf_of=("lead", "lead")))) == ["delegation_denied"]
    assert codes(decide(snap, request(on_behalf_of=("payer",)))) == ["delegation_denied"]  # a cycle
    suspended = chain_snapshot(agents=[agent("payer"), agent("lead", depth=1, status="suspended")])
    assert codes(decide(suspended, request(on_behalf_of=("lead",)))) == ["delegation_denied"]
    no_grant = chain_snapshot(grants=[("id-payer", grant("payments.transfer"))])
    assert codes(decide(no_grant, request(on_behalf_of=("lead",)))) == ["delegation_denied"]


def test_a_call_on_a_quarantined_delegators_behalf_is_escalated_not_allowed():
    contained = chain_snapshot(agents=[agent("payer"), agent("lead", depth=1, status="quarantined")])
    decision = decide(contained, request(on_behalf_of=("lead",)))
    assert (decision.outcome, codes(decision)) == (Outcome.ESCALATE, ["quarantine_containment"])
    assert decision.reasons[0].detail == {"quarantined_agent": "lead"}
    assert "lead, on whose behalf the call is made, is quarantined" in decision.reasons[0].message
    # A deny elsewhere still wins over containment: a human is never asked to approve a call policy refuses.
    over_limit = decide(contained, request({**VALID_PAYMENT, "amount": 4000}, on_behalf_of=("lead",)))
    assert (over_limit.outcome, codes(over_limit)) == (Outcome.DENY, ["quarantine_containment", "limit_exceeded"])


def test_calls_of_agents_a_quarantined_agent_supervises_are_escalated():
    orchestrator = agent("orchestrator", status="quarantined")
    middle = agent("middle", supervisor_id="id-orchestrator")
    worker = agent("payer", supervisor_id="id-middle")
    snap = snapshot(agents=[orchestrator, middle, worker])
    decision = decide(snap, request())
    assert (decision.outcome, codes(decision)) == (Outcome.ESCALATE, ["quarantine_containment"])
    assert decision.reasons[0].detail == {"quarantined_agent": "orchestrator"}
    assert "orchestrator, which supervises payer (through middle), is quarantined" in decision.reasons[0].message
    # Released: the same call is allowed again.
    released = snapshot(agents=[dataclasses.replace(orchestrator, status="active"), middle, worker])
    assert decide(released, request()).outcome is Outcome.ALLOW
    # A supervisor loop (refused by the registry) cannot hang the engine.
    loop = snapshot(agents=[agent("payer", supervisor_id="id-other"), agent("other", supervisor_id="id-payer")])
    assert decide(loop, request()).outcome is Outcome.ALLOW


def test_the_quarantined_agents_own_calls_are_denied():
    decision = decide(snapshot(agents=[agent("payer", status="quarantined")]), request())
    assert (decision.outcome, codes(decision)) == (Outcome.DENY, ["agent_not_active"])


def test_delegators_rate_limits_apply():
    snap = chain_snapshot(
        grants=[
            ("id-payer", grant("payments.transfer")),
            ("id-lead", grant("payments.transfer", rate_limit_per_minute=2)),
        ]
    )
    counters = Counters(tool_calls_last_minute={"id-payer": 1, "id-lead": 3})
    decision = decide(snap, request(on_behalf_of=("lead",), counters=counters))
    assert codes(decision) == ["rate_limited"]
    assert decision.reasons[0].detail["agent"] == "lead"


# Limits ---------------------------------------------------------------------------------


def test_rate_limits_budget_and_loop_guard():
    snap = snapshot(
        agents=[agent("payer", max_calls_per_hour=10, max_cost_per_day=Decimal("5.00"))],
        grants=[("id-payer", grant("payments.transfer", rate_limit_per_minute=3))],
        limits=Limits(loop_max_repeats=2, loop_window_seconds=60),
    )
    ok = Counters(tool_calls_last_minute={"id-payer": 3}, calls_last_hour={"id-payer": 10}, repeats_in_window=2)
    assert decide(snap, request(counters=ok)).outcome is Outcome.ALLOW
    assert codes(decide(snap, request(counters=Counters(tool_calls_last_minute={"id-payer": 4})))) == ["rate_limited"]
    assert codes(decide(snap, request(counters=Counters(calls_last_hour={"id-payer": 11})))) == ["rate_limited"]
    spent = Counters(cost_today={"id-payer": Decimal("5.00")})
    assert codes(decide(snap, request(counters=spent))) == ["budget_exceeded"]
    assert codes(decide(snap, request(counters=Counters(repeats_in_window=3)))) == ["loop_detected"]


def test_limits_override_an_escalation_and_all_reasons_are_kept():
    snap = snapshot(
        grants=[("id-payer", grant("payments.transfer", rate_limit_per_minute=1))],
        rules=[rule("true", "escalate")],
    )
    decision = decide(snap, request(counters=Counters(tool_calls_last_minute={"id-payer": 2})))
    assert (decision.outcome, codes(decision)) == (Outcome.DENY, ["rule_escalated", "rate_limited"])


def test_an_internal_error_denies():
    broken_contract = dataclasses.replace(contract("payments.transfer", PAYMENT_SCHEMA), input=None)
    broken = snapshot(contracts=[broken_contract])
    decision = decide(broken, request())
    assert (decision.outcome, codes(decision)) == (Outcome.DENY, ["internal_error"])


def test_unknown_tool_with_other_tools_present():
    snap = snapshot(tools=[ToolView("payments.transfer", "financial", "high"), ToolView("crm.read", "read", "low")])
    assert codes(decide(snap, request(tool="crm.read"))) == ["no_grant"]


def test_decisions_are_deterministic():
    snap = snapshot(rules=[rule("args.amount > 1000", "escalate"), rule("true", "deny", mode="shadow")])
    assert decide(snap, request()) == decide(snap, request())


def test_a_delegators_rules_apply_to_calls_made_on_its_behalf():
    snap = chain_snapshot(
        agents=[agent("payer"), agent("lead", depth=1, role="leads")],
        grants=[("id-payer", grant("payments.transfer")), ("id-lead", grant("payments.transfer"))],
        rules=[rule("args.amount > 1000", "deny", scope="role", target="leads", name="leads stay small")],
    )
    assert decide(snap, request()).outcome is Outcome.ALLOW  # payer alone: the leads' rule is not in scope
    decision = decide(snap, request(on_behalf_of=("lead",)))
    assert codes(decision) == ["rule_denied"]
    assert "applied to lead" in decision.reasons[0].message


def test_method_calls_and_comprehensions_see_the_whole_arguments():
    assert codes(decide(snapshot(rules=[rule("args.size() > 3", "deny")]), request())) == ["rule_denied"]
    has_case = snapshot(rules=[rule("args.exists(k, k == 'case_id')", "escalate")])
    assert decide(has_case, request()).outcome is Outcome.ALLOW
    assert codes(decide(has_case, request({**VALID_PAYMENT, "case_id": "CASE-000001"}))) == ["rule_escalated"]
