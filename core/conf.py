"""Warden's own settings: one `WARDEN` dict in Django settings, read through one accessor.

Unknown keys are refused at start-up, so a typo in a deployment never silently falls back to
a default. Modelled on DRF's `api_settings`.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DEFAULTS: dict[str, Any] = {
    # Shown as the provider of agent cards.
    "ORGANIZATION_NAME": "Warden",
    "ORGANIZATION_URL": "http://127.0.0.1:8000/",
    # Largest API request body accepted; larger requests get 413.
    "API_MAX_REQUEST_BYTES": 256 * 1024,
    # Lifetime of a newly issued agent key when the issuer gives no expiry (0: no expiry).
    "CREDENTIAL_DEFAULT_TTL_DAYS": 90,
    # How often a process checks whether the policy changed (seconds); changes it commits itself apply at once.
    "POLICY_RECHECK_SECONDS": 0.5,
    # Loop guard: the same tool with the same canonical arguments more than this many times ...
    "LOOP_MAX_REPEATS": 5,
    # ... within this window (seconds) is denied `loop_detected`.
    "LOOP_WINDOW_SECONDS": 60,
    # Lifetime of the decision token returned with an allow.
    "DECISION_TOKEN_TTL_SECONDS": 300,
    # Ed25519 private key (PEM) signing decision tokens; empty: read or create SIGNING_KEY_FILE.
    "SIGNING_KEY": "",
    "SIGNING_KEY_FILE": "var/signing_key.pem",
    # Audit trail: how often Celery beat seals new records into a block (seconds) ...
    "AUDIT_SEAL_SECONDS": 5.0,
    # ... at most this many records per block ...
    "AUDIT_SEAL_BATCH": 5000,
    # ... looking this far back (seconds) for records whose transaction committed late.
    "AUDIT_LATE_SECONDS": 300,
    # Where people reach this Warden (links in e-mails to approvers).
    "PUBLIC_URL": "http://127.0.0.1:8000",
    # Approvals: how long approvers have when the escalating rule says nothing (seconds) ...
    "APPROVAL_TIMEOUT_SECONDS": 3600,
    # ... when to remind them before it is due (seconds) ...
    "APPROVAL_REMINDER_SECONDS": 600,
    # ... how many distinct approvers a critical-tier agent's call needs at least ...
    "APPROVAL_CRITICAL_QUORUM": 2,
    # ... and how often Celery beat expires overdue approvals and sends reminders (seconds).
    "APPROVAL_EXPIRY_CHECK_SECONDS": 10.0,
    # Webhooks agents register: hosts they may point at ("*" any, ".example.com" a domain and its subdomains) ...
    "WEBHOOK_ALLOWED_HOSTS": ["localhost", "127.0.0.1", "::1"],
    # ... attempts per delivery, the first retry's delay (doubling, with jitter, capped) and each POST's timeout.
    "WEBHOOK_MAX_ATTEMPTS": 8,
    "WEBHOOK_BACKOFF_SECONDS": 2.0,
    "WEBHOOK_BACKOFF_MAX_SECONDS": 600.0,
    "WEBHOOK_TIMEOUT_SECONDS": 5.0,
    # Guardians: the local GGUF model of the SLM scorer (empty: the SLM scorer is unavailable;
    # config/settings points it at the model shipped in guardian/models) ...
    "GUARDIAN_MODEL": "",
    # ... its ctransformers model type (a Llama-2 architecture: "llama") ...
    "GUARDIAN_MODEL_TYPE": "llama",
    # ... the context length it is loaded with (tokens); longer prompts keep the subject's head and tail ...
    "GUARDIAN_CONTEXT_LENGTH": 2048,
    # ... the CPU threads one evaluation may use ...
    "GUARDIAN_THREADS": 1,
    # ... and the P(unsafe) at and above which its label is "unsafe" (None: the model's calibrated
    # thresholds per subject kind, 0.5 for a model that brings none).
    "GUARDIAN_SLM_THRESHOLD": None,
    # Pre-checks on the decision path (tools marked for them): the fast scorers' time budget (ms);
    # a pre-check that runs out of time escalates the call, never allows it.
    "GUARDIAN_PRECHECK_BUDGET_MS": 50.0,
    # Two guardians whose values for the same subject differ by at least this send it to a human.
    "GUARDIAN_DISAGREEMENT_MARGIN": 0.5,
    # Dashboards: how often Celery beat rebuilds the recent rollups (seconds) ...
    "ROLLUP_SECONDS": 15.0,
    # ... and how often open dashboard pages refresh themselves (seconds).
    "DASHBOARD_REFRESH_SECONDS": 5,
    # Bearer token Prometheus must send to read /metrics; empty: only clients on this machine may read it.
    "METRICS_TOKEN": "",
    # Tracing (OTEL_* variables): put a decision's arguments on its span, sensitive fields left out. Off:
    # arguments are data the agent handles, and a trace backend is rarely governed like the audit trail.
    "TRACE_ARGUMENTS": False,
}


class WardenSettings:
    """Attribute access to `settings.WARDEN` with defaults; unknown keys are an error."""

    def _user_settings(self) -> dict[str, Any]:
        return dict(getattr(settings, "WARDEN", {}))

    def validate(self) -> None:
        """Raise ImproperlyConfigured naming any key of `settings.WARDEN` Warden does not know."""
        unknown = sorted(set(self._user_settings()) - set(DEFAULTS))
        if unknown:
            raise ImproperlyConfigured(
                f"Unknown WARDEN setting(s): {', '.join(unknown)}. Known: {', '.join(sorted(DEFAULTS))}."
            )

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown WARDEN setting {name!r}.")
        return self._user_settings().get(name, DEFAULTS[name])


warden_settings = WardenSettings()
