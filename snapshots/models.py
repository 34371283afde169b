"""Snapshots: immutable, versioned export snapshots of a project's labels.

The table keeps the name it had when this model lived in `annotate` (no data moved)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from annotate.models import Project

# --- exports -------------------------------------------------------------------------------------


class ExportFormat(models.TextChoices):
    TRL = "trl", "TRL stepwise supervision (prompt, completions, labels)"
    PRM800K = "prm800k", "PRM800K (-1 / 0 / +1)"
    PROCESSBENCH = "processbench", "ProcessBench (earliest wrong step)"
    MATH_SHEPHERD = "math_shepherd", "Math-Shepherd (ки tags, +/-)"
    PAIRS = "pairs", "Preference pairs at the first error"
    SFT = "sft", "Selected traces as chat messages (distillation)"


class ExportFileFormat(models.TextChoices):
    JSONL = "jsonl", "JSON Lines"
    PARQUET = "parquet", "Parquet"


class LabelPolicy(models.TextChoices):
    GOLD = "gold", "Gold labels (imported or adjudicated)"
    MAJORITY = "majority", "Majority of annotators"
    ALL = "all", "Every annotator (one row each, pseudonymised)"


class NeutralMapping(models.TextChoices):
    UNSET = "", "Not set (refuse if there are neutral labels)"
    POSITIVE = "positive", "Neutral counts as correct"
    NEGATIVE = "negative", "Neutral counts as wrong"
    DROP = "drop", "Neutral counts as unlabelled"


class ExportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class ExportSnapshot(models.Model):
    """One immutable, versioned export of a project's labels; its files live under VAR_DIR/exports."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="exports")
    name = models.SlugField(max_length=100)
    version = models.PositiveIntegerField()
    format = models.CharField(max_length=20, choices=ExportFormat.choices)
    file_format = models.CharField(
        max_length=10, choices=ExportFileFormat.choices, default=ExportFileFormat.JSONL
    )
    labels = models.CharField(max_length=10, choices=LabelPolicy.choices, default=LabelPolicy.GOLD)
    min_agreement = models.FloatField(default=0.0)
    neutral = models.CharField(
        max_length=10, choices=NeutralMapping.choices, default=NeutralMapping.UNSET, blank=True
    )
    test_fraction = models.FloatField(default=0.0)
    seed = models.PositiveIntegerField(default=0)
    filters = models.JSONField(default=dict, blank=True)
    options = models.JSONField(default=dict, blank=True)
    # Opt-in: the exporter's name in the card, annotators' submission times and active seconds in
    # the rows (docs/exports.md, "What a snapshot publishes").
    identities = models.BooleanField(default=False)
    status = models.CharField(
        max_length=10, choices=ExportStatus.choices, default=ExportStatus.QUEUED
    )
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    # Written with the progress: a running build whose worker died stops writing it (the sweep).
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    row_counts = models.JSONField(default=dict, blank=True)
    stats = models.JSONField(default=dict, blank=True)
    files = models.JSONField(default=list, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    card = models.TextField(blank=True)
    path = models.CharField(max_length=500, blank=True, help_text="Relative to VAR_DIR/exports.")
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "annotate_exportsnapshot"  # kept from when this lived in annotate
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "name", "version"], name="exportsnapshot_unique_version"
            )
        ]

    def __str__(self) -> str:
        return f"{self.project}/{self.name}/v{self.version}"


# --- training PRMs from snapshots (docs/training.md) ------------------------------------------------


class TrainingStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class TrainingRun(models.Model):
    """One training of a PRM on a snapshot's train split; the result is a new scorer version.

    Executed by a Celery worker on the `train` queue (never in the web process). Its checkpoint
    goes to its own folder under VAR_DIR/models (named by the run's id: two runs never share one).
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="training_runs")
    snapshot = models.ForeignKey(ExportSnapshot, on_delete=models.PROTECT, related_name="+")
    base = models.CharField(max_length=500, help_text='"tiny" or a local model directory.')
    scorer_name = models.SlugField(max_length=100)
    params = models.JSONField(default=dict, blank=True)
    curve = models.BooleanField(
        default=False, help_text="Also train on 25/50/75% (learning curve)."
    )
    status = models.CharField(
        max_length=10, choices=TrainingStatus.choices, default=TrainingStatus.QUEUED
    )
    cancel_requested = models.BooleanField(default=False)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    loss_curve = models.JSONField(default=list, blank=True)
    log = models.TextField(blank=True)
    error = models.TextField(blank=True)
    result = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True, help_text="On the snapshot's test split.")
    learning_curve = models.JSONField(default=list, blank=True)
    output_path = models.CharField(max_length=500, blank=True)
    scorer = models.ForeignKey(
        "scoring.Scorer", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    scorer_version = models.PositiveIntegerField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"training {self.pk} of {self.scorer_name} on {self.snapshot_id} ({self.status})"


class PromotionAction(models.TextChoices):
    PROMOTE = "promote", "Promoted"
    DEMOTE = "demote", "Demoted"


class ScorerPromotion(models.Model):
    """The log of a project's live scorer: who promoted (or demoted) which version, when, and the
    figures it had on gold at the time. The latest `promote` not followed by a `demote` is live."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="promotions")
    scorer = models.ForeignKey("scoring.Scorer", on_delete=models.CASCADE, related_name="+")
    scorer_version = models.PositiveIntegerField()
    action = models.CharField(max_length=10, choices=PromotionAction.choices)
    training_run = models.ForeignKey(
        TrainingRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="promotions"
    )
    metrics = models.JSONField(default=dict, blank=True)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.project}: {self.action} {self.scorer_id} v{self.scorer_version}"
