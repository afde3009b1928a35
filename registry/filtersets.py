"""Filters for registry lists, shared by the API (the admin has its own list filters)."""

from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet

from registry.choices import AgentStatus, ModelKind, RiskTier
from registry.models import Agent, Grant, Role


class AgentFilterSet(django_filters.FilterSet):
    """`?status=active&risk_tier=high&role=<slug>&owner=<username>&model_kind=slm&q=text`."""

    status = django_filters.MultipleChoiceFilter(choices=AgentStatus.choices)
    risk_tier = django_filters.MultipleChoiceFilter(choices=RiskTier.choices)
    model_kind = django_filters.ChoiceFilter(choices=ModelKind.choices)
    role = django_filters.CharFilter(field_name="role__slug")
    owner = django_filters.CharFilter(field_name="owner__username")
    supervisor = django_filters.CharFilter(field_name="supervisor__slug")
    team = django_filters.CharFilter(field_name="team", lookup_expr="iexact")
    slug = django_filters.CharFilter(field_name="slug")
    q = django_filters.CharFilter(method="search", label="Search name, slug, description, team")

    class Meta:
        model = Agent
        fields = ["status", "risk_tier", "model_kind", "role", "owner", "supervisor", "team", "slug"]

    def search(self, queryset: QuerySet[Agent], name: str, value: str) -> QuerySet[Agent]:
        return queryset.filter(
            Q(name__icontains=value)
            | Q(slug__icontains=value)
            | Q(description__icontains=value)
            | Q(team__icontains=value)
        )


class RoleFilterSet(django_filters.FilterSet):
    """`?slug=<slug>`."""

    class Meta:
        model = Role
        fields = ["slug"]


class GrantFilterSet(django_filters.FilterSet):
    """`?agent=<slug>&role=<slug>&tool=<name>`."""

    agent = django_filters.CharFilter(field_name="agent__slug")
    role = django_filters.CharFilter(field_name="role__slug")
    tool = django_filters.CharFilter(field_name="tool")

    class Meta:
        model = Grant
        fields = ["agent", "role", "tool"]
