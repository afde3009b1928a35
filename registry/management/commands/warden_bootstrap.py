"""`manage.py warden_bootstrap`: the admin user and (optionally) the demo registry.

Run by `make run` after `migrate`. Safe to run again: nothing that exists is changed.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from core.groups import WARDEN_ADMINS
from registry.demo import load_demo_registry


class Command(BaseCommand):
    help = (
        "Create the first admin user (password from WARDEN_ADMIN_PASSWORD or printed once) and load the demo registry."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--username", default=os.environ.get("WARDEN_ADMIN_USERNAME", "admin"))
        parser.add_argument("--email", default=os.environ.get("WARDEN_ADMIN_EMAIL", "admin@example.com"))
        parser.add_argument("--demo", action="store_true", help="Also load the demo registry.")

    @transaction.atomic
    def handle(self, *args: Any, username: str, email: str, demo: bool, **options: Any) -> None:
        users = get_user_model()
        user = users.objects.filter(username=username).first()
        if user is None:
            password = os.environ.get("WARDEN_ADMIN_PASSWORD", "")
            generated = not password
            password = password or secrets.token_urlsafe(12)
            if len(password) < 8:
                raise CommandError("WARDEN_ADMIN_PASSWORD must be at least 8 characters.")
            user = users.objects.create_superuser(username=username, email=email, password=password)
            user.groups.add(Group.objects.get(name=WARDEN_ADMINS))
            if generated:
                # Printed to the terminal of the person running setup, once; never logged.
                self.stdout.write(
                    self.style.SUCCESS(
                        "\n  Warden admin created. Log in at http://127.0.0.1:8000/admin/ with\n"
                        f"    username: {username}\n    password: {password}\n"
                        "  This password is shown once. Set WARDEN_ADMIN_PASSWORD to choose your own.\n"
                    )
                )
            else:
                self.stdout.write(f"Warden admin '{username}' created with the password from WARDEN_ADMIN_PASSWORD.")
        else:
            self.stdout.write(f"Admin user '{username}' exists; leaving it unchanged.")
        if demo:
            added = load_demo_registry(username)
            self.stdout.write(f"Demo registry: {added} agent(s) added." if added else "Demo registry already loaded.")
