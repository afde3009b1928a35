"""Tool contracts, rules and the record of every tool call.

Contracts and rules are policy: every change goes through `policy.services`, is recorded in
the change history and moves the policy version, like registry changes. Tool calls are the
record of the hot path: one row per call, written once with its decision, updated once when
the agent reports the result.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from core.models import TimestampedModel
from policy.choices import (
    ContractStatus,
    DecisionOutcome,
    ExpiryEffect,
    ResultStatus,
    RuleEffect,
    RuleMode,
    RuleScope,
)
from registry.models import Agent, RecordedModel, Role, Tool


class ContractVersion(RecordedModel):
    """One version of a tool's contract: the JSON Schemas of its input and output.

    Immutable once active: a change is a new version. Several versions may be active at once
    (agents migrate at their pace); an agent that names none gets the highest active one.
    """

    tool = models.ForeignKey(Tool, on_delete=models.PROTECT, to_field="name", related_name="contracts")
    version = models.PositiveIntegerField(help_text="1, 2, 3… per tool; assigned on creation.")
    status = models.CharField(max_length=16, choices=ContractStatus.choices, default=ContractStatus.DRAFT)
    input_schema = models.JSONField(help_text="Draft 2020-12 JSON Schema of the call's arguments.")
    output_schema = models.JSONField(
        default=dict, blank=True, help_text="Draft 2020-12 JSON Schema of the tool's output ({} accepts anything)."
    )
    hardening_report = models.JSONField(default=list, blank=True, editable=False)
    notes = models.TextField(blank=True, help_text="What changed in this version and why.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    activated_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["tool_id", "-version"]
        constraints = [models.UniqueConstraint(fields=["tool", "version"], name="policy_contract_unique_version")]

    def __str__(self) -> str:
        return f"{self.tool_id} v{self.version}"

    def clean(self) -> None:
        from policy.engine.validation import InvalidSchema, check_schema

        errors: dict[str, list[str]] = {}
        for field in ("input_schema", "output_schema"):
            try:
                check_schema(getattr(self, field))
            except InvalidSchema as error:
                where = f" (at {error.pointer})" if error.pointer else ""
                errors[field] = [f"{error}{where}"]
        if errors:
            raise ValidationError(errors)


class Rule(RecordedModel):
    """A CEL condition over agent, tool, args, context and now, with an effect when it holds."""

    name = models.CharField(max_length=120, unique=True)
    description = models.TextField(blank=True)
    expression = models.TextField(
        help_text="CEL, e.g. args.amount > 10000 && tool.side_effect == 'financial'. "
        "Variables: agent, tool, args, context, now."
    )
    effect = models.CharField(max_length=16, choices=RuleEffect.choices)
    mode = models.CharField(max_length=16, choices=RuleMode.choices, default=RuleMode.ENFORCE)
    scope = models.CharField(max_length=16, choices=RuleScope.choices, default=RuleScope.GLOBAL)
    scope_role = models.ForeignKey(Role, on_delete=models.PROTECT, null=True, blank=True, related_name="rules")
    scope_agent = models.ForeignKey(Agent, on_delete=models.PROTECT, null=True, blank=True, related_name="rules")
    scope_tool = models.ForeignKey(
        Tool, on_delete=models.PROTECT, to_field="name", null=True, blank=True, related_name="rules"
    )
    priority = models.IntegerField(default=100, help_text="Lower runs first; the first matching enforced rule decides.")
    message = models.CharField(
        max_length=300, blank=True, help_text="Shown to the agent and the approver when the rule matches."
    )
    enabled = models.BooleanField(default=True)
    # For escalating rules: how the approval queue treats the calls this rule escalates.
    approval_timeout_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(10), MaxValueValidator(30 * 24 * 3600)],
        help_text="Escalate only: how long approvers have to decide (seconds); empty: WARDEN_APPROVAL_TIMEOUT_SECONDS.",
    )
    on_expiry = models.CharField(
        max_length=8,
        choices=ExpiryEffect.choices,
        default=ExpiryEffect.DENY,
        help_text="Escalate only: what the call becomes when nobody decides in time.",
    )
    required_approvals = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(10)],
        help_text="Escalate only: how many distinct approvers must approve (a quorum). "
        "Calls of critical-tier agents need at least WARDEN_APPROVAL_CRITICAL_QUORUM.",
    )

    class Meta:
        ordering = ["priority", "name"]
        constraints = [
            models.CheckConstraint(
                name="policy_rule_scope_target",
                condition=(
                    Q(scope="global", scope_role__isnull=True, scope_agent__isnull=True, scope_tool__isnull=True)
                    | Q(scope="role", scope_role__isnull=False, scope_agent__isnull=True, scope_tool__isnull=True)
                    | Q(scope="agent", scope_role__isnull=True, scope_agent__isnull=False, scope_tool__isnull=True)
                    | Q(scope="tool", scope_role__isnull=True, scope_agent__isnull=True, scope_tool__isnull=False)
                ),
                violation_error_message="Name exactly the target the scope needs (none for a global rule).",
            )
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from policy.engine.rules import InvalidExpression, compile_expression

        try:
            compile_expression(self.expression)
        except InvalidExpression as error:
            raise ValidationError({"expression": [str(error)]}) from None
        targets = {
            RuleScope.ROLE: ("scope_role", self.scope_role_id),
            RuleScope.AGENT: ("scope_agent", self.scope_agent_id),
            RuleScope.TOOL: ("scope_tool", self.scope_tool_id),
        }
        errors = {}
        for scope, (field, value) in targets.items():
            if self.scope == scope and value is None:
                errors[field] = ["Required for this scope."]
            elif self.scope != scope and value is not None:
                errors[field] = ["Only for a rule scoped to one " + scope + "."]
        if errors:
            raise ValidationError(errors)

    @property
    def scope_target(self) -> str:
        """What the engine matches: the role's slug, the agent's id or the tool's name."""
        return {
            RuleScope.ROLE: self.scope_role.slug if self.scope_role is not None else "",
            RuleScope.AGENT: str(self.scope_agent_id or ""),
            RuleScope.TOOL: str(self.scope_tool_id or ""),
        }.get(RuleScope(self.scope), "")


class ToolCall(TimestampedModel):
    """One tool call an agent asked to make: its request, the decision, and later its result."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Indexed through the (agent, -created_at) index below: every index costs the hot path an insert.
    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="tool_calls", db_index=False)
    credential_prefix = models.CharField(max_length=12, help_text="Which of the agent's keys made the call.")
    # A name, not a foreign key: calls for unknown tools are recorded too (and denied).
    tool = models.CharField(max_length=128, db_index=True)
    arguments = models.JSONField()
    arguments_digest = models.CharField(max_length=64, help_text="SHA-256 of the RFC 8785 canonical arguments.")
    context = models.JSONField(default=dict, blank=True)
    idempotency_key = models.CharField(max_length=128, null=True, blank=True)
    # The decision in force: the engine's, or for an escalated call the approval's once settled.
    decision = models.CharField(max_length=16, choices=DecisionOutcome.choices)
    escalated = models.BooleanField(default=False, help_text="The engine escalated this call to a human.")
    settled_at = models.DateTimeField(
        null=True, blank=True, help_text="When the approval settled an escalated call (allow or deny)."
    )
    reasons = models.JSONField(default=list, blank=True)
    shadow = models.JSONField(default=list, blank=True)
    contract_version = models.PositiveIntegerField(null=True, blank=True)
    policy_version = models.BigIntegerField()
    latency_us = models.PositiveIntegerField(help_text="Time to decide, from request to stored decision.")
    token_expires_at = models.DateTimeField(null=True, blank=True)
    # The result, reported once by the agent after the tool ran.
    result_status = models.CharField(max_length=16, choices=ResultStatus.choices, null=True, blank=True)
    output = models.JSONField(null=True, blank=True)
    usage = models.JSONField(null=True, blank=True)
    cost = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    contract_drift = models.BooleanField(default=False)
    drift = models.JSONField(default=list, blank=True, help_text="Where the output broke the output schema.")
    result_reported_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["agent", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="policy_toolcall_unique_idempotency_key",
            )
        ]
        indexes = [
            models.Index(fields=["agent", "-created_at"], name="policy_call_agent_recent"),
            models.Index(fields=["agent", "result_reported_at"], name="policy_call_agent_results"),
            # The dashboards' rollups read results by time; partial, so a decision's insert never touches it.
            models.Index(
                fields=["result_reported_at"],
                condition=Q(result_reported_at__isnull=False),
                name="policy_call_results_at",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tool} by {self.agent_id}: {self.decision}"

    def reason_codes(self) -> list[str]:
        return [reason.get("code", "") for reason in self.reasons if isinstance(reason, dict)]
