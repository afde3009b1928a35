"""The pages' forms: the trail's and the decision feed's filters, quarantine and release."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from policy.engine import Outcome
from policy.engine.reasons import Code
from registry.choices import AgentStatus
from telemetry import fleet, selectors

# What a datetime-local input sends (minutes), and seconds for links written by hand.
DATETIME_LOCAL_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]

SEAL_CHOICES = [("", "Any"), ("true", "Sealed"), ("false", "Pending")]


def _text(placeholder: str, max_length: int) -> forms.CharField:
    return forms.CharField(
        required=False, max_length=max_length, widget=forms.TextInput(attrs={"placeholder": placeholder})
    )


def _moment() -> forms.DateTimeField:
    return forms.DateTimeField(
        required=False,
        input_formats=DATETIME_LOCAL_FORMATS,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )


class _AgentAndWindowFilter(forms.Form):
    """What the trail's and the feed's filters share: an agent named by slug or id, and a time window.

    Subclasses declare the `agent`, `since` and `until` fields (where they stand in their form).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        zone = timezone.get_current_timezone_name()
        self.fields["since"].label = f"Since ({zone})"
        self.fields["until"].label = f"Until ({zone})"

    def clean_agent(self) -> str:
        reference: str = self.cleaned_data["agent"].strip()
        if not reference:
            return ""
        agent_id = selectors.agent_id_for(reference)
        if agent_id is None:
            raise forms.ValidationError(
                f"No agent has the slug or id “{reference}”. Check the spelling in the registry."
            )
        return agent_id

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since >= until:
            self.add_error("until", "Pick an end after the start.")
        return cleaned


class TrailFilterForm(_AgentAndWindowFilter):
    """Agent (slug or id), tool, actor, action (or a prefix ending in '.'), a time window, seal status."""

    agent = _text("slug or id", 64)
    tool = _text("tool name", 128)
    actor = _text("id or label", 200)
    action = _text("tool_call.", 64)
    since = _moment()
    until = _moment()
    sealed = forms.ChoiceField(required=False, choices=SEAL_CHOICES, label="Seal")
    # One record by its sequence number: the admin's record page links here with it. Not kept
    # when the person filters again (the form does not render it).
    seq = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["action"].widget.attrs["title"] = "An action (grant.added), or a prefix ending in '.' (tool_call.)"

    def filterset_data(self) -> dict[str, str]:
        """The cleaned filters in the terms of audit.filtersets.AuditRecordFilterSet (valid forms only)."""
        data: dict[str, str] = {}
        for name in ("agent", "tool", "actor", "action", "sealed"):
            value = self.cleaned_data.get(name)
            if value:
                data[name] = str(value).strip()
        for name in ("since", "until"):
            moment = self.cleaned_data.get(name)
            if moment is not None:
                data[name] = moment.isoformat()
        return data

    def is_filtered(self) -> bool:
        """Whether any filter narrows the trail (valid forms only)."""
        return bool(self.filterset_data()) or self.cleaned_data.get("seq") is not None


OUTCOME_CHOICES = [("", "Any"), (Outcome.ALLOW, "Allow"), (Outcome.DENY, "Deny"), (Outcome.ESCALATE, "Escalate")]
REASON_CHOICES = [("", "Any"), *((code.value, code.value) for code in Code)]


class FeedFilterForm(_AgentAndWindowFilter):
    """The decision feed's filters: agent, tool, the engine's outcome, a reason code and a time window.

    `after` and `before` are cursors (`<ISO time>|<call id>`) the page itself writes: after for the
    live poll, before for older pages. They are validated like everything else.
    """

    agent = _text("slug or id", 64)
    tool = _text("tool name", 128)
    outcome = forms.ChoiceField(required=False, choices=OUTCOME_CHOICES)
    reason = forms.ChoiceField(required=False, choices=REASON_CHOICES, label="Reason code")
    since = _moment()
    until = _moment()
    after = forms.CharField(required=False, max_length=80, widget=forms.HiddenInput)
    before = forms.CharField(required=False, max_length=80, widget=forms.HiddenInput)

    FILTERS = ("agent", "tool", "outcome", "reason", "since", "until")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        for name in ("after", "before"):
            if cleaned.get(name) and self._parse_cursor(cleaned[name]) is None:
                self.add_error(name, "Not a feed position; reload the page.")
        return cleaned

    @staticmethod
    def cursor_value(moment: dt.datetime, call_id: str) -> str:
        return f"{moment.isoformat()}|{call_id}"

    @staticmethod
    def _parse_cursor(value: str) -> tuple[dt.datetime, str] | None:
        moment, _, call_id = value.partition("|")
        try:
            parsed, identifier = parse_datetime(moment), str(uuid.UUID(call_id))
        except ValueError:
            return None
        if parsed is None or parsed.tzinfo is None:
            return None
        return parsed, identifier

    def cursor(self, name: str) -> tuple[dt.datetime, str] | None:
        value = self.cleaned_data.get(name)
        return self._parse_cursor(value) if value else None

    def filters(self) -> fleet.FeedFilters:
        data = self.cleaned_data
        return fleet.FeedFilters(
            agent_id=data.get("agent") or None,
            tool=(data.get("tool") or "").strip(),
            outcome=data.get("outcome") or "",
            reason=data.get("reason") or "",
            since=data.get("since"),
            until=data.get("until"),
        )

    def query_string(self) -> str:
        """The filters as typed (not the cursors), for links that keep them."""
        return urlencode({name: self.data[name] for name in self.FILTERS if self.data.get(name)})


class QuarantineForm(forms.Form):
    reason = forms.CharField(
        max_length=2000, widget=forms.Textarea(attrs={"rows": 2, "placeholder": "Why must this agent stop?"})
    )


class ReleaseForm(forms.Form):
    reason = forms.CharField(
        max_length=2000, widget=forms.Textarea(attrs={"rows": 2, "placeholder": "Why may it act again?"})
    )
    to = forms.ChoiceField(
        required=False,
        choices=[(AgentStatus.ACTIVE, "Active"), (AgentStatus.SUSPENDED, "Suspended")],
        initial=AgentStatus.ACTIVE,
    )
