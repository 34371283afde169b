"""The human side of steplens: the corpus (Project, Problem, Trace, Step) and people's labels."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class LabelScheme(models.TextChoices):
    TERNARY = "ternary", "Ternary +1 / 0 / -1 (PRM800K)"
    BINARY = "binary", "Binary +1 / -1"
    FIRST_ERROR = "first_error", "First wrong step (ProcessBench)"


class Role(models.TextChoices):
    ANNOTATOR = "annotator", "Annotator"
    REVIEWER = "reviewer", "Reviewer"
    ADMIN = "admin", "Admin"


class Project(models.Model):
    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    guidelines = models.TextField(blank=True, help_text="Markdown shown to annotators.")
    label_scheme = models.CharField(
        max_length=20, choices=LabelScheme.choices, default=LabelScheme.TERNARY
    )
    overlap = models.PositiveSmallIntegerField(
        default=1, help_text="How many annotators label each trace independently."
    )
    blind = models.BooleanField(
        default=False, help_text="Hide PRM scores until the annotator submits."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="projects"
    )

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.ANNOTATOR)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="membership_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} as {self.role}"


class Problem(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="problems")
    # sha256 of the problem text: the same problem imported twice (or shared by N traces) is one row.
    text_sha256 = models.CharField(max_length=64)
    text = models.TextField(help_text="Markdown with LaTeX.")
    reference_answer = models.TextField(blank=True)
    reference_solution = models.TextField(blank=True)
    images = models.JSONField(default=list, blank=True, help_text="List of image URLs or paths.")
    table = models.JSONField(null=True, blank=True, help_text="Optional table the problem uses.")
    metadata = models.JSONField(default=dict, blank=True)
    flagged = models.BooleanField(default=False, help_text="Flagged as a bad problem.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "text_sha256"], name="problem_unique_text")
        ]

    def __str__(self) -> str:
        return self.text[:60]


class Trace(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="traces")
    problem = models.ForeignKey(Problem, on_delete=models.CASCADE, related_name="traces")
    generator = models.CharField(max_length=200, blank=True)
    final_answer = models.TextField(blank=True)
    final_answer_correct = models.BooleanField(null=True, blank=True)
    source = models.CharField(max_length=50, help_text="Import format, e.g. processbench.")
    subset = models.CharField(max_length=100, blank=True, help_text="e.g. gsm8k, math.")
    external_id = models.CharField(max_length=200)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "source", "external_id"], name="trace_unique_external"
            )
        ]

    def __str__(self) -> str:
        return f"{self.source}:{self.external_id}"


class StepPart(models.TextChoices):
    THINKING = "thinking", "Thinking"
    RESPONSE = "response", "Response"


class Step(models.Model):
    trace = models.ForeignKey(Trace, on_delete=models.CASCADE, related_name="steps")
    index = models.PositiveIntegerField(help_text="0-based position in the trace.")
    text = models.TextField()
    part = models.CharField(max_length=10, choices=StepPart.choices, default=StepPart.RESPONSE)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["trace_id", "index"]
        constraints = [
            models.UniqueConstraint(fields=["trace", "index"], name="step_unique_index")
        ]

    def __str__(self) -> str:
        return f"{self.trace_id}#{self.index}"


class AnnotationStatus(models.TextChoices):
    IN_PROGRESS = "in_progress", "In progress"
    SUBMITTED = "submitted", "Submitted"


class FinishReason(models.TextChoices):
    SOLUTION = "solution", "Solution is correct"
    FOUND_ERROR = "found_error", "Found an error"
    BAD_PROBLEM = "bad_problem", "Bad problem"
    GIVE_UP = "give_up", "Give up"


class Annotation(models.Model):
    """One annotator's pass over one trace."""

    trace = models.ForeignKey(Trace, on_delete=models.CASCADE, related_name="annotations")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="annotations"
    )
    status = models.CharField(
        max_length=20, choices=AnnotationStatus.choices, default=AnnotationStatus.IN_PROGRESS
    )
    finish_reason = models.CharField(max_length=20, choices=FinishReason.choices, blank=True)
    active_seconds = models.FloatField(default=0.0)
    imported = models.BooleanField(default=False)
    metadata = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    # Blind projects: when the scores were shown to this annotator (at their first submit).
    revealed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["trace", "annotator"], name="annotation_unique")
        ]
        indexes = [models.Index(fields=["annotator", "status"])]

    def __str__(self) -> str:
        return f"{self.annotator} on {self.trace_id} ({self.status})"


class StepLabel(models.Model):
    annotation = models.ForeignKey(Annotation, on_delete=models.CASCADE, related_name="labels")
    step = models.ForeignKey(Step, on_delete=models.CASCADE, related_name="labels")
    # -1 wrong, 0 neutral, +1 correct; null: flagged or noted but not rated.
    value = models.SmallIntegerField(null=True, blank=True)
    flagged = models.BooleanField(default=False)
    note = models.TextField(blank=True)
    # Blind projects: the value as first submitted, before PRM scores were revealed; `value` may
    # then be revised, and both are kept.
    blind_value = models.SmallIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["annotation", "step"], name="steplabel_unique"),
            models.CheckConstraint(
                condition=models.Q(value__in=[-1, 0, 1]) | models.Q(value__isnull=True),
                name="steplabel_value_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.step} = {self.value}"


class GoldSource(models.TextChoices):
    IMPORTED = "imported", "Imported"
    ADJUDICATED = "adjudicated", "Adjudicated"


class GoldLabel(models.Model):
    step = models.OneToOneField(Step, on_delete=models.CASCADE, related_name="gold")
    value = models.SmallIntegerField()
    source = models.CharField(max_length=20, choices=GoldSource.choices)
    set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    rationale = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(value__in=[-1, 0, 1]), name="goldlabel_value_range"
            )
        ]

    def __str__(self) -> str:
        return f"gold {self.step} = {self.value}"


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
    status = models.CharField(
        max_length=10, choices=ExportStatus.choices, default=ExportStatus.QUEUED
    )
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
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
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "name", "version"], name="exportsnapshot_unique_version"
            )
        ]

    def __str__(self) -> str:
        return f"{self.project}/{self.name}/v{self.version}"


# --- review and active learning (queues, leases, adjudication) ---------------------------------


class QueueStrategy(models.TextChoices):
    SEQUENTIAL = "sequential", "Sequential (import order)"
    RANDOM = "random", "Random"
    UNCERTAINTY = "uncertainty", "PRM uncertainty"
    COMMITTEE = "committee", "Disagreement between scorers"
    SPREAD = "spread", "Spread of sampled verdicts"
    CONVINCING_WRONG = "convincing_wrong", "Convincing wrong answers"


class QueueSettings(models.Model):
    """How a project's labelling queue orders and hands out traces (one row per project)."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="queue_settings")
    strategy = models.CharField(
        max_length=20, choices=QueueStrategy.choices, default=QueueStrategy.SEQUENTIAL
    )
    lease_minutes = models.PositiveIntegerField(
        default=30, help_text="A trace handed out and not submitted within this returns to the queue."
    )

    def __str__(self) -> str:
        return f"{self.project}: {self.strategy}"


class TracePriority(models.Model):
    """What labelling a trace is worth, stored so that "next" is one indexed query.

    The signals are refreshed when the trace's scores or labels change; `priority` is the signal
    of the project's strategy; `open_slots` is the overlap less the slots leased or submitted.
    """

    trace = models.OneToOneField(
        Trace, on_delete=models.CASCADE, primary_key=True, related_name="priority"
    )
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    priority = models.FloatField(default=0.0)
    open_slots = models.SmallIntegerField(default=1)
    uncertainty = models.FloatField(default=0.0)
    committee = models.FloatField(default=0.0)
    spread = models.FloatField(default=0.0)
    convincing_wrong = models.FloatField(default=0.0)
    random_key = models.FloatField(default=0.0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(
                "project",
                models.F("priority").desc(),
                "trace",
                condition=models.Q(open_slots__gt=0),
                name="tracepriority_next",
            )
        ]

    def __str__(self) -> str:
        return f"{self.trace_id}: {self.priority:.3f} ({self.open_slots} open)"


class AssignmentStatus(models.TextChoices):
    LEASED = "leased", "Leased"
    SUBMITTED = "submitted", "Submitted"
    SKIPPED = "skipped", "Skipped"
    EXPIRED = "expired", "Expired"
    RELEASED = "released", "Released"


class SkipReason(models.TextChoices):
    UNCLEAR = "unclear", "Problem or steps are unclear"
    TOO_HARD = "too_hard", "Beyond my expertise"
    BROKEN = "broken", "Rendering or data is broken"
    CONFLICT = "conflict", "Conflict of interest / seen before"
    OTHER = "other", "Other (see note)"


class Assignment(models.Model):
    """One annotator's slot on one trace: a lease until submitted, skipped, expired or released.

    A trace has `overlap` slots; a slot is held by at most one live (leased or submitted)
    assignment, which the database enforces.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    trace = models.ForeignKey(Trace, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments"
    )
    # Null: a submission beyond the overlap (someone labelled a trace whose slots were full).
    slot = models.SmallIntegerField(null=True, blank=True)
    status = models.CharField(
        max_length=10, choices=AssignmentStatus.choices, default=AssignmentStatus.LEASED
    )
    leased_at = models.DateTimeField()
    leased_until = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    skip_reason = models.CharField(max_length=20, choices=SkipReason.choices, blank=True)
    skip_note = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["trace", "annotator"], name="assignment_unique"),
            models.UniqueConstraint(
                fields=["trace", "slot"],
                condition=models.Q(status__in=["leased", "submitted"], slot__isnull=False),
                name="assignment_one_holder_per_slot",
            ),
        ]
        indexes = [
            models.Index(fields=["annotator", "project", "status"]),
            models.Index(fields=["project", "status", "leased_until"]),
        ]

    def __str__(self) -> str:
        return f"{self.annotator} on {self.trace_id} slot {self.slot} ({self.status})"


class GoldLabelChange(models.Model):
    """The audit log of gold labels: every adjudication, with who, when, why, and what was before."""

    step = models.ForeignKey(Step, on_delete=models.CASCADE, related_name="gold_changes")
    old_value = models.SmallIntegerField(null=True, blank=True)
    new_value = models.SmallIntegerField(null=True, blank=True)
    old_source = models.CharField(max_length=20, blank=True)
    new_source = models.CharField(max_length=20, blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    rationale = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.step}: {self.old_value} -> {self.new_value}"
