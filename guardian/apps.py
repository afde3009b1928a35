from django.apps import AppConfig
from django.db.models.signals import post_save


class GuardianConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "guardian"
    verbose_name = "Guardians"

    def ready(self) -> None:
        from approvals import hooks as approval_hooks
        from guardian import demo, precheck, runtime, services
        from policy import hooks
        from registry.demo import demo_registry_loaded

        hooks.pre_decision(precheck.check)
        hooks.on_result(services.queue_scoring)
        hooks.call_details(services.call_detail)
        approval_hooks.on_review_settled(services.review_settled)
        # Quarantine records follow the agent's status, however it changes (guardian, person, API).
        post_save.connect(services.agent_saved, sender="registry.Agent", dispatch_uid="guardian.agent_saved")
        # One model per worker process, released before the interpreter exits (ctransformers crashes otherwise).
        runtime.install_shutdown_hooks()
        demo_registry_loaded.connect(demo.on_demo_registry_loaded, dispatch_uid="guardian-demo")
