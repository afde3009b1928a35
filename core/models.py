"""Abstract base models shared by Warden's apps."""

from __future__ import annotations

import uuid

from django.db import models


class TimestampedModel(models.Model):
    """A model with a UUID primary key and creation/update times."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class Revision(models.Model):
    """A named counter that moves forward with every change to what it versions.

    `policy` counts changes to agents, grants, credentials, tools, contracts and rules: each
    such change increments it in its own transaction (the row lock orders them), and every
    process compares it with the version of its cached policy snapshot. See core.revisions.
    """

    name = models.CharField(max_length=32, primary_key=True)
    value = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name}@{self.value}"
