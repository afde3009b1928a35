"""App configuration for the policy engine."""

from django.apps import AppConfig


class PolicyConfig(AppConfig):
    """Tool contracts, rules, tool calls and the decision path."""

    name = "policy"
    verbose_name = "Policy"

    def ready(self) -> None:
        from core import revisions
        from policy import demo, snapshots
        from registry.demo import demo_registry_loaded

        demo_registry_loaded.connect(demo.on_demo_registry_loaded, dispatch_uid="policy-demo")

        # A change committed in this process is seen by its next call, not up to a second later.
        revisions.on_bump(revisions.POLICY, snapshots.invalidate)
