"""Registry models: who the agents are, who answers for them, and what they may do.

Rows are written only by `registry.services`, which record a `ChangeRecord` for every write
in the same transaction. A save from anywhere else (a shell, a script) is still recorded,
as an unattributed change, by `RecordedModel`.
"""

from __future__ import annotations

import datetime as dt
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.models import TimestampedModel
from registry.choices import ActorKind, AgentStatus, ChangeAction, ModelKind, RiskTier, SideEffect
from registry.schemas import DEFAULT_SCOPE, validate_constraints, validate_scope

# Set while a registry service is writing; saves outside it are recorded as unattributed.
in_service: ContextVar[bool] = ContextVar("registry_in_service", default=False)

TOOL_NAME_VALIDATOR = RegexValidator(
    r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+\Z",
    "Use a dotted lower-case tool name such as 'payments.transfer'.",
)


def default_scope() -> dict[str, Any]:
    """A new agent may touch no data, in no environment, and delegate nothing."""
    return {key: (list(value) if isinstance(value, list) else value) for key, value in DEFAULT_SCOPE.items()}


class RecordedModel(TimestampedModel):
    """A registry model whose every save and delete leaves a change record."""

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if in_service.get():
            super().save(*args, **kwargs)
            return
        from registry.services import record_unattributed_save

        record_unattributed_save(instance=self, save=lambda: super(RecordedModel, self).save(*args, **kwargs))


class Role(RecordedModel):
    """A named template of authority shared by agents: its grants apply to each member."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Tool(RecordedModel):
    """A named action agents can take, e.g. `payments.transfer`. Grants name tools; contracts describe them."""

    name = models.CharField(
        max_length=128,
        unique=True,
        validators=[TOOL_NAME_VALIDATOR],
        help_text="Dotted lower-case name, e.g. payments.transfer. It cannot change once grants use it.",
    )
    description = models.TextField(blank=True, help_text="What the tool does, for the people granting it.")
    side_effect = models.CharField(
        max_length=16,
        choices=SideEffect.choices,
        default=SideEffect.WRITE,
        help_text="What running it does to the world.",
    )
    default_risk = models.CharField(
        max_length=16, choices=RiskTier.choices, default=RiskTier.MEDIUM, help_text="Risk of one call, before context."
    )
    enforce_hardening = models.BooleanField(
        default=False,
        help_text="Refuse to activate a contract version whose hardening report lists anything an attacker could use.",
    )
    guardian_precheck = models.BooleanField(
        default=False,
        help_text="Guardians score each call of this tool before it is decided (fast scorers, within a time "
        "budget; running out of time escalates the call).",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Agent(RecordedModel):
    """A registered autonomous actor with an accountable human owner and a lifecycle."""

    slug = models.SlugField(max_length=64, unique=True, help_text="Stable identifier used in keys, logs and the API.")
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True, help_text="What the agent does and for whom.")
    version = models.CharField(max_length=32, default="1.0.0", help_text="The agent's own version.")
    endpoint_url = models.URLField(blank=True, help_text="Where the agent serves A2A requests, if it does.")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="owned_agents",
        help_text="The accountable human sponsor.",
    )
    team = models.CharField(max_length=120, blank=True)
    role = models.ForeignKey(Role, on_delete=models.PROTECT, null=True, blank=True, related_name="agents")
    status = models.CharField(max_length=16, choices=AgentStatus.choices, default=AgentStatus.DRAFT, db_index=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    risk_tier = models.CharField(max_length=16, choices=RiskTier.choices, default=RiskTier.MEDIUM, db_index=True)
    scope = models.JSONField(
        default=default_scope,
        validators=[validate_scope],
        help_text=('JSON: {"data_domains": [...], "environments": [...], "max_delegation_depth": 0}'),
    )
    model_name = models.CharField(max_length=120, help_text="e.g. granite-guardian-3.1-2b.")
    model_kind = models.CharField(max_length=8, choices=ModelKind.choices, default=ModelKind.LLM)
    model_version = models.CharField(max_length=64, blank=True)
    supervisor = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="supervised_agents",
        help_text="The orchestrating agent, if any.",
    )
    max_calls_per_hour = models.PositiveIntegerField(
        null=True, blank=True, help_text="Most tool calls per hour across all tools; empty for no limit."
    )
    max_cost_per_day = models.DecimalField(
        max_digits=12,
        decimal_places=4,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="Most reported cost per day (UTC), in the organisation's currency; empty for no budget.",
    )
    last_seen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["owner", "status"])]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """Refuse a supervisor chain that loops back to this agent."""
        seen = {self.pk}
        supervisor = self.supervisor
        while supervisor is not None:
            if supervisor.pk in seen:
                raise ValidationError({"supervisor": "An agent cannot supervise itself, directly or through others."})
            seen.add(supervisor.pk)
            supervisor = supervisor.supervisor

    @property
    def is_active(self) -> bool:
        return self.status == AgentStatus.ACTIVE

    @property
    def is_quarantined(self) -> bool:
        return self.status == AgentStatus.QUARANTINED


class Grant(RecordedModel):
    """One unit of authority: an agent or a role may use a tool, within constraints and limits."""

    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, null=True, blank=True, related_name="grants")
    role = models.ForeignKey(Role, on_delete=models.PROTECT, null=True, blank=True, related_name="grants")
    tool = models.ForeignKey(
        Tool,
        on_delete=models.PROTECT,
        to_field="name",
        db_column="tool",
        related_name="grants",
        help_text="A registered tool.",
    )
    constraints = models.JSONField(
        default=dict,
        blank=True,
        validators=[validate_constraints],
        help_text='Per-argument limits, e.g. {"amount": {"maximum": 10000}, "currency": {"enum": ["EUR"]}}.',
    )
    rate_limit_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Most calls per minute under this grant; empty for none."
    )
    valid_from = models.DateTimeField(null=True, blank=True)
    valid_until = models.DateTimeField(null=True, blank=True)
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="grants_given",
    )
    reason = models.TextField(help_text="Why this authority is needed (shown to auditors).")

    class Meta:
        ordering = ["tool_id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(agent__isnull=False, role__isnull=True) | Q(agent__isnull=True, role__isnull=False)),
                name="grant_agent_xor_role",
                violation_error_message="A grant belongs to exactly one agent or one role.",
            ),
            models.UniqueConstraint(
                fields=["agent", "tool"],
                condition=Q(agent__isnull=False),
                name="grant_unique_agent_tool",
                violation_error_message="This agent already has a grant for this tool; edit it instead.",
            ),
            models.UniqueConstraint(
                fields=["role", "tool"],
                condition=Q(role__isnull=False),
                name="grant_unique_role_tool",
                violation_error_message="This role already has a grant for this tool; edit it instead.",
            ),
            models.CheckConstraint(
                condition=Q(valid_from__isnull=True)
                | Q(valid_until__isnull=True)
                | Q(valid_until__gt=models.F("valid_from")),
                name="grant_valid_window",
                violation_error_message="'Valid until' must be after 'valid from'.",
            ),
        ]

    def __str__(self) -> str:
        holder = self.agent or self.role
        return f"{holder} → {self.tool_id}"

    def is_current(self, at: dt.datetime | None = None) -> bool:
        """Whether the grant's validity window contains `at` (default: now)."""
        at = at or timezone.now()
        return (self.valid_from is None or self.valid_from <= at) and (
            self.valid_until is None or at < self.valid_until
        )


class Credential(RecordedModel):
    """An agent's API key. Only the prefix and a SHA-256 of the key are stored."""

    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="credentials")
    name = models.CharField(max_length=120, blank=True, help_text="A label, e.g. 'production'.")
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.TextField(blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    replaces = models.OneToOneField(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="replaced_by",
        help_text="The key this one rotated out.",
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"wdn_{self.prefix}_… ({self.name or 'key'})"

    def state(self, at: dt.datetime | None = None) -> str:
        """`active`, `expired` or `revoked`."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= (at or timezone.now()):
            return "expired"
        return "active"


class ChangeRecord(models.Model):
    """One entry of the registry's change history: who changed what, when, before and after.

    Append-only: the model refuses updates and deletes.
    """

    id = models.BigAutoField(primary_key=True)
    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor_kind = models.CharField(max_length=8, choices=ActorKind.choices)
    actor_id = models.CharField(max_length=64)
    actor_label = models.CharField(max_length=200)
    action = models.CharField(max_length=40, choices=ChangeAction.choices, db_index=True)
    subject_type = models.CharField(max_length=32)
    subject_id = models.CharField(max_length=64)
    agent = models.ForeignKey(
        Agent, on_delete=models.DO_NOTHING, null=True, blank=True, related_name="changes", db_constraint=False
    )
    role = models.ForeignKey(
        Role, on_delete=models.DO_NOTHING, null=True, blank=True, related_name="changes", db_constraint=False
    )
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    changed_fields = models.JSONField(default=list, blank=True)
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["subject_type", "subject_id"])]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.action} by {self.actor_label}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise ValueError("Change records are append-only; they cannot be updated.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise ValueError("Change records are append-only; they cannot be deleted.")
