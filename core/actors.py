"""Who caused a change: a user, an agent, or the system (a command, a task, a migration)."""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

ActorKind = Literal["user", "agent", "system"]


@dataclass(frozen=True)
class Actor:
    """The identity recorded with every change; services take one as `actor`."""

    kind: ActorKind
    id: str
    label: str

    @classmethod
    def from_user(cls, user: AbstractBaseUser | AnonymousUser) -> Actor:
        """The actor for a logged-in human. Anonymous users cannot change anything."""
        if not user.is_authenticated:
            raise ValueError("An anonymous user cannot be the actor of a change.")
        return cls(kind="user", id=str(user.pk), label=user.get_username())

    @classmethod
    def from_agent(cls, agent: Any) -> Actor:
        """The actor for a registered agent acting through its key."""
        return cls(kind="agent", id=str(agent.pk), label=agent.slug)

    @classmethod
    def system(cls, name: str) -> Actor:
        """The actor for Warden itself: a management command, a task, a migration.

        The operating-system user is kept in the label, so a change made from a shell on a
        production host still says who ran it.
        """
        try:
            os_user = getpass.getuser()
        except (KeyError, OSError):
            os_user = "unknown"
        return cls(kind="system", id=name, label=f"{name} (os user {os_user})")

    def as_dict(self) -> dict[str, str]:
        """A JSON-safe form for records and API responses."""
        return {"kind": self.kind, "id": self.id, "label": self.label}
