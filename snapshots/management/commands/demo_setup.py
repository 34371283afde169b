"""Create the demo's accounts, projects, real demo data and the CPU tool scorer (safe to run twice)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from annotate import imports, services
from annotate.models import LabelScheme, Project, Role
from scoring import services as scoring_services
from scoring.models import Backend, Scorer

DATA_DIR = Path(settings.BASE_DIR) / "data"

# slug -> (name, scheme, overlap, data file, format, guidelines)
DEMO_PROJECTS: dict[str, tuple[str, str, int, str, str, str]] = {
    "processbench-demo": (
        "ProcessBench: find the first wrong step",
        LabelScheme.FIRST_ERROR,
        2,
        "processbench_sample.jsonl",
        "processbench",
        "Read the problem and each step. Mark the **first** step that is wrong "
        "(a calculation, a logical error, a misread of the problem); every step before it is "
        "then correct. If no step is wrong, choose *no wrong step*.",
    ),
    "prm800k-demo": (
        "PRM800K: rate every step +1 / 0 / -1",
        LabelScheme.TERNARY,
        2,  # each record already has its PRM800K labeler's pass: demo annotators add a second
        "prm800k_sample.jsonl",
        "prm800k",
        "Rate each step: **+1** correct and useful, **0** not wrong but no progress, "
        "**-1** wrong. Stop at the first -1.",
    ),
}

DEMO_USERS: dict[str, dict[str, Any]] = {
    "admin": {"is_superuser": True, "is_staff": True, "role": Role.ADMIN},
    "reviewer": {"role": Role.REVIEWER},
    "annotator": {"role": Role.ANNOTATOR},
    "annotator2": {"role": Role.ANNOTATOR},
}


class Command(BaseCommand):
    help = "Create demo accounts and projects, and import ProcessBench and PRM800K demo data."

    def handle(self, *args: Any, **options: Any) -> None:
        passwords = self._accounts()
        User = get_user_model()
        for slug, (name, scheme, overlap, filename, fmt, guidelines) in DEMO_PROJECTS.items():
            project = Project.objects.filter(slug=slug).first()
            if project is None:
                project = services.project_create(
                    slug=slug,
                    name=name,
                    guidelines=guidelines,
                    label_scheme=scheme,
                    overlap=overlap,
                )
            for username, spec in DEMO_USERS.items():
                if not spec.get("is_superuser"):
                    services.membership_set(
                        project=project,
                        user=User.objects.get(username=username),
                        role=spec["role"],
                    )
            with open(DATA_DIR / filename, "rb") as stream:
                result = imports.traces_import(
                    project=project, stream=stream, filename=filename, format=fmt
                )
            self.stdout.write(f"{slug}: {result.summary()}")
        scorer = Scorer.objects.filter(name="tool").first() or scoring_services.scorer_create(
            name="tool", backend=Backend.TOOL
        )
        scorer.projects.add(*Project.objects.filter(slug__in=DEMO_PROJECTS))
        self.stdout.write("Scorer 'tool' (sympy step checks, answer check) scores both projects.")
        self.stdout.write("\nDemo accounts (username / password), also in var/demo_accounts.json:")
        for username, password in passwords.items():
            self.stdout.write(f"  {username:<11} {password}   ({DEMO_USERS[username]['role']})")

    def _accounts(self) -> dict[str, str]:
        """Random passwords made once per install and kept in var/ (never a password in the code)."""
        path = Path(settings.VAR_DIR) / "demo_accounts.json"
        passwords: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        User = get_user_model()
        for username, spec in DEMO_USERS.items():
            password = passwords.setdefault(username, secrets.token_urlsafe(9))
            user, created = User.objects.get_or_create(username=username)
            if created or not user.check_password(password):
                user.set_password(password)
                user.is_superuser = bool(spec.get("is_superuser"))
                user.is_staff = bool(spec.get("is_staff"))
                user.save()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(passwords, indent=2))
        path.chmod(0o600)
        return passwords
