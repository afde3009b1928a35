"""Filters for the audit trail, shared by the API and the trail page."""

from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet

from audit.models import ActorKind, AuditRecord


class AuditRecordFilterSet(django_filters.FilterSet):
    """`?agent=<id>&tool=<name>&actor=<id or label>&actor_kind=user&action=grant.added&since=...&until=...`.

    `action` takes a prefix too (`tool_call.` for every tool-call record); `sealed=true|false`.
    """

    agent = django_filters.CharFilter(field_name="agent_id")
    tool = django_filters.CharFilter(field_name="tool")
    actor = django_filters.CharFilter(method="by_actor", label="Actor id or label")
    actor_kind = django_filters.ChoiceFilter(choices=ActorKind.choices)
    action = django_filters.CharFilter(method="by_action", label="Action, or a prefix ending in '.'")
    subject_type = django_filters.CharFilter(field_name="subject_type")
    subject_id = django_filters.CharFilter(field_name="subject_id")
    since = django_filters.IsoDateTimeFilter(field_name="at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="at", lookup_expr="lt")
    sealed = django_filters.BooleanFilter(field_name="seal", lookup_expr="isnull", exclude=True)

    class Meta:
        model = AuditRecord
        fields: list[str] = []

    def by_actor(self, queryset: QuerySet[AuditRecord], name: str, value: str) -> QuerySet[AuditRecord]:
        return queryset.filter(Q(actor_id=value) | Q(actor_label=value))

    def by_action(self, queryset: QuerySet[AuditRecord], name: str, value: str) -> QuerySet[AuditRecord]:
        if value.endswith("."):
            return queryset.filter(action__startswith=value)
        return queryset.filter(action=value)
