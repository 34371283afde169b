"""Create the demo's accounts, projects, real demo data, the CPU tool scorer and a small PRM that
steplens trained itself from ProcessBench (safe to run twice: what exists is kept).

The demo PRM ships in ``data/demo-prm/``: the checkpoint folder of a `train_prm` run (config,
weights, tokenizer, model card, ``training.json``), made by ``demo_setup --train-prm --ship``. A
plain ``demo_setup`` registers it without training; ``--train-prm`` trains it again here through
the same loop (docs/training.md, "The demo's PRM")."""

from __future__ import annotations

import importlib.util
import io
import json
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotate import imports, services
from annotate.models import LabelScheme, Project, Role
from scoring import services as scoring_services
from scoring.models import Backend, Scorer
from scoring.prm.demo_params import TINY_BASE_PARAMS
from snapshots import services as exports
from snapshots import training
from snapshots.models import ExportSnapshot, TrainingRun, TrainingStatus

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
# `train_prm`'s own defaults for base tiny (the best held-out AUROC measured on ProcessBench): the
# checkpoint ships, so the demo's start-up does not wait for them; docs/training.md.
DEMO_PRM_PARAMS: dict[str, Any] = dict(TINY_BASE_PARAMS)
# Where the shipped checkpoint lives (in the repository, a few MB).
SHIPPED_PRM_DIR = DATA_DIR / "demo-prm"
# scoring.prm.training.RUN_FILE, not imported: that module imports torch and trl (inside its
# functions), which the "web process never imports torch" contract forbids outside the workers.
RUN_FILE = "training.json"


class Command(BaseCommand):
    help = (
        "Create demo accounts and projects, import ProcessBench and PRM800K demo data, and train "
        "the demo PRM (once)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--no-prm",
            action="store_true",
            help="No demo PRM (the tool scorer only).",
        )
        parser.add_argument(
            "--train-prm",
            action="store_true",
            help=(
                "Train the demo PRM here through the loop (a few minutes) instead of registering "
                "the checkpoint shipped in data/demo-prm/."
            ),
        )
        parser.add_argument(
            "--ship",
            action="store_true",
            help=(
                "With --train-prm: replace the shipped checkpoint with the one trained here "
                "(how data/demo-prm/ is made)."
            ),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["ship"] and not options["train_prm"]:  # refused before anything is written
            raise CommandError("--ship needs --train-prm (it ships the checkpoint trained here)")
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
            self._demo_prm(train=options["train_prm"], ship=options["ship"])
        self._backfill()
        self.stdout.write("\nDemo accounts (username / password), also in var/demo_accounts.json:")
        for username, password in passwords.items():
            self.stdout.write(f"  {username:<11} {password}   ({DEMO_USERS[username]['role']})")

    def _backfill(self) -> None:
        """Queue every demo trace for each of the demo projects' scorers on the bulk queue ("Score
        all"; runs that exist are left alone): the worker that `make demo` starts next scores them
        in a few seconds, so the PRM audit, the data browser's score filters and Best-of-N have
        scores before anyone opens a trace (an opened trace is scored at once, as always)."""
        queued = 0
        for project in Project.objects.filter(slug__in=DEMO_PROJECTS).order_by("slug"):
            for scorer in Scorer.objects.filter(projects=project).order_by("name"):
                queued += len(scoring_services.project_backfill(project=project, scorer=scorer))
        if queued:
            self.stdout.write(
                f"{queued} score runs queued for the worker (both projects, every scorer)."
            )

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

    def _demo_prm(self, *, train: bool, ship: bool) -> None:
        """Register the shipped demo PRM, or (``train``, or nothing shipped) train it through the
        loop itself: a project of ProcessBench traces that the demo projects do not hold, a TRL
        snapshot split by problem, `train_prm` on base tiny."""
        if importlib.util.find_spec("torch") is None:  # a web-only install (no `worker` extra)
            self.stdout.write("No torch here (`worker` extra): no demo PRM.")
            return
        if not train and (SHIPPED_PRM_DIR / RUN_FILE).is_file():
            card = json.loads((SHIPPED_PRM_DIR / RUN_FILE).read_text(encoding="utf-8"))
            scorer = Scorer.objects.filter(name=DEMO_PRM).first() or scoring_services.scorer_create(
                name=DEMO_PRM,
                backend=card["backend"],
                model_path=str(SHIPPED_PRM_DIR),
                params=card["scorer_params"],
            )
            scorer.projects.add(*Project.objects.filter(slug__in=DEMO_PROJECTS))
            self._say(card["train_rows"], card.get("metrics", {}).get("test", {}), shipped=True)
            return
        done = TrainingRun.objects.filter(scorer_name=DEMO_PRM, status=TrainingStatus.DONE).first()
        if train or done is None or not Path(done.output_path).is_dir():
            done = self._train_demo_prm()
        if done is None:
            return
        scorer = Scorer.objects.get(name=DEMO_PRM)
        scorer.projects.add(*Project.objects.filter(slug__in=DEMO_PROJECTS))
        self._say(done.result.get("train_rows"), done.metrics.get("test", {}), shipped=False)
        if ship:
            _ship(Path(done.output_path), SHIPPED_PRM_DIR)
            self.stdout.write(f"Shipped: {done.output_path} -> {SHIPPED_PRM_DIR}")

    def _say(self, train_rows: Any, test: dict[str, Any], *, shipped: bool) -> None:
        how = "shipped in data/demo-prm/" if shipped else "trained here"
        self.stdout.write(
            f"Scorer '{DEMO_PRM}' ({how}; trained by steplens on {train_rows} ProcessBench "
            f"traces; step AUROC {test.get('step_auroc', float('nan')):.3f} on "
            f"{test.get('rows', 0)} held-out ones) scores both projects: a demonstration of the "
            "loop, not a useful PRM."
        )

    def _train_demo_prm(self) -> TrainingRun | None:
        snapshot = demo_prm_snapshot(self.stdout.write)
        self.stdout.write(
            f"Training the demo PRM on {snapshot.row_counts.get('train')} traces "
            f"(test: {snapshot.row_counts.get('test')}); a few minutes..."
        )
        project = snapshot.project
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


def demo_prm_snapshot(say: Any = print) -> ExportSnapshot:
    """The demo PRM's data: the ProcessBench traces of data/processbench whose problems are not in
    the demo projects, imported into project processbench-train, and a TRL snapshot of them split
    by problem (10% held out). The same traces give the same snapshot sha256 in any database: the
    shipped checkpoint's card names the one it was trained on."""
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
    say(f"{DEMO_PRM_PROJECT}: {result.summary()}")
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
    return exports.export_snapshot_build(snapshot_id=snapshot.pk)


def _ship(source: Path, target: Path) -> None:
    """Copy the checkpoint folder ``source`` over ``target``, whole or not at all: copied beside
    it first, then swapped in; the checkpoint files only (no optimizer state or curve folders)."""
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        for path in sorted(source.iterdir()):
            if path.is_file():
                shutil.copy2(path, staging / path.name)
        old = target.with_name(f".{target.name}-old")
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.rename(old)
        staging.rename(target)
        target.chmod(0o755)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
