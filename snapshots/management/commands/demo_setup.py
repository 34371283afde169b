"""Create the demo's accounts, projects, real demo data, the CPU tool scorer and a small PRM that
steplens trains itself from ProcessBench (safe to run twice: what exists is kept)."""

from __future__ import annotations

import importlib.util
import io
import json
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser

from annotate import imports, services
from annotate.models import LabelScheme, Project, Role
from scoring import services as scoring_services
from scoring.models import Backend, Scorer
from scoring.prm.demo_params import TINY_DEMO_PARAMS
from snapshots import services as exports
from snapshots import training
from snapshots.models import TrainingRun, TrainingStatus

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


# The demo PRM: trained by steplens on ProcessBench traces (data/processbench) whose problems are
# not in the demo projects, split by problem; a demonstration of the loop, not a useful PRM.
DEMO_PRM = "demo-prm"
DEMO_PRM_PROJECT = "processbench-train"
DEMO_PRM_SNAPSHOT = "demo-prm-data"
# benchmarks.train_demo's defaults without the LM pre-training (measured: it added nothing to the
# AUROC and cost 25 s), so that `make demo` builds the PRM in under 2 minutes; docs/training.md.
DEMO_PRM_PARAMS: dict[str, Any] = {**TINY_DEMO_PARAMS, "lm_pretrain_epochs": 0.0}


class Command(BaseCommand):
    help = (
        "Create demo accounts and projects, import ProcessBench and PRM800K demo data, and train "
        "the demo PRM (once)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--no-prm",
            action="store_true",
            help="Do not train the demo PRM (the tool scorer only).",
        )

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
        if not options["no_prm"]:
            self._demo_prm()
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

    def _demo_prm(self) -> None:
        """Train the demo PRM through the loop itself: a project of ProcessBench traces that the
        demo projects do not hold, a TRL snapshot split by problem, `train_prm` on base tiny."""
        done = TrainingRun.objects.filter(scorer_name=DEMO_PRM, status=TrainingStatus.DONE).first()
        if done is None or not Path(done.output_path).is_dir():
            done = self._train_demo_prm()
        if done is None:
            return
        scorer = Scorer.objects.get(name=DEMO_PRM)
        scorer.projects.add(*Project.objects.filter(slug__in=DEMO_PROJECTS))
        test = done.metrics.get("test", {})
        self.stdout.write(
            f"Scorer '{DEMO_PRM}' (trained by steplens on {done.result.get('train_rows')} "
            f"ProcessBench traces; step AUROC {test.get('step_auroc', float('nan')):.3f} on "
            f"{test.get('rows', 0)} held-out ones) scores both projects: a demonstration of the "
            "loop, not a useful PRM."
        )

    def _train_demo_prm(self) -> TrainingRun | None:
        if importlib.util.find_spec("torch") is None:  # a web-only install (no `worker` extra)
            self.stdout.write("No torch here (`worker` extra): the demo PRM is not trained.")
            return None
        demo_problems = {
            json.loads(line)["problem"]
            for line in (DATA_DIR / "processbench_sample.jsonl").read_text().splitlines()
            if line.strip()
        }
        lines = [
            line
            for path in sorted((DATA_DIR / "processbench").glob("*.jsonl"))
            for line in path.read_text().splitlines()
            if line.strip() and json.loads(line)["problem"] not in demo_problems
        ]
        project = Project.objects.filter(slug=DEMO_PRM_PROJECT).first() or services.project_create(
            slug=DEMO_PRM_PROJECT,
            name="ProcessBench: the demo PRM's training data",
            guidelines="The traces the demo PRM was trained and audited on (not for labelling).",
            label_scheme=LabelScheme.FIRST_ERROR,
        )
        result = imports.traces_import(
            project=project,
            stream=io.BytesIO("\n".join(lines).encode()),
            filename="data/processbench",
            format="processbench",
        )
        self.stdout.write(f"{DEMO_PRM_PROJECT}: {result.summary()}")
        snapshot = exports.export_snapshot_create(
            project=project,
            user=None,
            name=DEMO_PRM_SNAPSHOT,
            format="trl",
            neutral="drop",
            test_fraction=0.1,
            seed=0,
            enqueue=False,
        )
        snapshot = exports.export_snapshot_build(snapshot_id=snapshot.pk)
        self.stdout.write(
            f"Training the demo PRM on {snapshot.row_counts.get('train')} traces "
            f"(test: {snapshot.row_counts.get('test')}); a few minutes, once..."
        )
        run = training.training_run_create(
            user=None,
            project=project,
            snapshot=f"{snapshot.name}@{snapshot.version}",
            base="tiny",
            scorer_name=DEMO_PRM,
            params=DEMO_PRM_PARAMS,
            enqueue=False,
        )
        done = training.training_run_execute(run_id=run.pk)
        if done is None or done.status != TrainingStatus.DONE:
            self.stderr.write(f"The demo PRM did not train: {done.error if done else 'no run'}")
            return None
        return done
