from django.apps import AppConfig
from django.db.models.signals import post_save


class ApprovalsConfig(AppConfig):
    name = "approvals"
    verbose_name = "Approvals"

    def ready(self) -> None:
        from approvals import services
        from policy import hooks

        hooks.on_escalation(services.open_approval)
        hooks.call_details(services.approval_detail)
        # An agent that stops being active withdraws its pending calls (quarantine cascades to its pending work).
        post_save.connect(services.agent_saved, sender="registry.Agent", dispatch_uid="approvals.agent_saved")
