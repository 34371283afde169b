"""The model side of steplens: registered PRMs (Scorer), their runs over traces and the step scores."""

from __future__ import annotations

from django.db import models

from annotate.models import Project, Step, Trace


class Backend(models.TextChoices):
    STEP_HEAD = "step_head", "Step head (Qwen2.5-Math-PRM, TRL PRMTrainer)"
    TOKEN_TAG = "token_tag", "Token tag (Math-Shepherd, RLHFlow)"
    VALUE_HEAD = "value_head", "Value head (Skywork-PRM)"
    GENERATIVE = "generative", "Generative critique (R-PRM)"
    TOOL = "tool", "Tool checks (sympy, answer check)"
    REMOTE = "remote", "Remote vLLM pooling server"
    VISION = "vision", "Vision-language step tags (MM-PRM)"
    # Scores computed elsewhere and loaded with import_scores: never enqueued, never run.
    EXTERNAL = "external", "External (scores imported, never run here)"


class Scorer(models.Model):
    name = models.SlugField(max_length=100, unique=True)
    backend = models.CharField(max_length=20, choices=Backend.choices)
    model_path = models.CharField(max_length=500, blank=True)
    revision = models.CharField(max_length=100, blank=True)
    params = models.JSONField(default=dict, blank=True)
    # Bumped whenever what the scorer computes changes: runs of older versions are re-scored.
    # An external scorer's version is bumped by an import that changes scores it already holds.
    version = models.PositiveIntegerField(default=1)
    threshold = models.FloatField(
        default=0.5, help_text="A step scoring at or below this is 'wrong'."
    )
    projects = models.ManyToManyField(Project, related_name="scorers", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class RunQueue(models.TextChoices):
    INTERACTIVE = "interactive", "Interactive (an annotator opened the trace)"
    BULK = "bulk", "Bulk (backfill)"


class ScoreRun(models.Model):
    trace = models.ForeignKey(Trace, on_delete=models.CASCADE, related_name="score_runs")
    scorer = models.ForeignKey(Scorer, on_delete=models.CASCADE, related_name="runs")
    scorer_version = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    queue = models.CharField(max_length=12, choices=RunQueue.choices, default=RunQueue.BULK)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # The worker node (celery@host) that claimed the run: a restarted node takes its runs back.
    claimed_by = models.CharField(max_length=255, blank=True)
    trajectory_score = models.FloatField(null=True, blank=True)
    # Of a trajectory-response trace: the score of the final response part alone.
    response_score = models.FloatField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)
    imported = models.BooleanField(default=False, help_text="Scores computed elsewhere and loaded.")
    created_at = models.DateTimeField(auto_now_add=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.FloatField(null=True, blank=True, help_text="Model time for this run.")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["trace", "scorer", "scorer_version"], name="scorerun_unique"
            )
        ]
        indexes = [models.Index(fields=["status", "queued_at"])]

    def __str__(self) -> str:
        return f"{self.scorer} v{self.scorer_version} on {self.trace_id}: {self.status}"


class StepScore(models.Model):
    run = models.ForeignKey(ScoreRun, on_delete=models.CASCADE, related_name="step_scores")
    step = models.ForeignKey(Step, on_delete=models.CASCADE, related_name="scores")
    score = models.FloatField()
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "step"], name="stepscore_unique"),
            models.CheckConstraint(
                condition=models.Q(score__gte=0.0) & models.Q(score__lte=1.0),
                name="stepscore_in_unit_interval",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.step}: {self.score:.3f}"


class WorkerHeartbeat(models.Model):
    """Written by each live worker every few seconds, so the page can say whether any is alive."""

    hostname = models.CharField(max_length=255, unique=True)
    queues = models.CharField(max_length=255, blank=True)
    last_seen = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.hostname} @ {self.last_seen:%H:%M:%S}"
