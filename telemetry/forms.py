"""The trail page's filter form: what a person types, turned into AuditRecordFilterSet's terms."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils import timezone

from telemetry import selectors

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


class TrailFilterForm(forms.Form):
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
        zone = timezone.get_current_timezone_name()
        self.fields["since"].label = f"Since ({zone})"
        self.fields["until"].label = f"Until ({zone})"
        self.fields["action"].widget.attrs["title"] = "An action (grant.added), or a prefix ending in '.' (tool_call.)"

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
