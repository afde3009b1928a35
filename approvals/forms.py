"""The approval pages' forms: an approver's vote, and the queue's small filter bar."""

from __future__ import annotations

from typing import Any

from django import forms

from approvals.choices import Verdict
from approvals.services import MAX_COMMENT

# The queue's tabs (`?state=`): what waits for a decision, and what was settled (approved,
# rejected, expired or cancelled).
PENDING_TAB = "pending"
DECIDED_TAB = "decided"


class VoteForm(forms.Form):
    """Approve or reject one escalated call; the two submit buttons send the verdict.

    A rejection needs a comment (the agent is told it); an approval may carry one. The service
    checks the same again: this form only lets the page say so next to the field.
    """

    verdict = forms.ChoiceField(choices=Verdict.choices, widget=forms.HiddenInput)
    comment = forms.CharField(
        required=False,
        max_length=MAX_COMMENT,
        strip=True,
        label="Comment",
        help_text="Required to reject (the agent is told why); optional to approve.",
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "What did you check? Why reject?"}),
    )
    next = forms.CharField(required=False, max_length=2000, widget=forms.HiddenInput)

    def __init__(self, *args: Any, approval_id: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if approval_id is not None:
            # One form per item on the queue page: ids (and the labels pointing at them) stay unique.
            self.auto_id = f"id_%s_{approval_id}"

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("verdict") == Verdict.REJECT and not cleaned.get("comment"):
            self.add_error("comment", "Say why: a rejection needs a comment.")
        return cleaned


class QueueFilterForm(forms.Form):
    """Narrow either tab to one agent (by slug) or one tool (by name); the tab itself is `?state=`."""

    agent = forms.SlugField(
        required=False, max_length=64, widget=forms.TextInput(attrs={"placeholder": "slug", "size": 14})
    )
    tool = forms.CharField(
        required=False, max_length=128, widget=forms.TextInput(attrs={"placeholder": "tool name", "size": 18})
    )

    def filters(self) -> dict[str, str]:
        """The agent and tool to narrow the list to; empty when the form is invalid."""
        if not self.is_valid():
            return {}
        return {name: (self.cleaned_data.get(name) or "").strip() for name in ("agent", "tool")}

    def is_filtered(self) -> bool:
        return any(self.filters().values())
