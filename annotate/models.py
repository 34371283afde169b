"""The human side of steplens: the corpus (Project, Problem, Trace, Step) and people's labels."""

from __future__ import annotations

from typing import Any

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
    # The labelling page's keys and the names shown for the labels, per project: {"keys":
    # {action: key}, "names": {"1": "correct", ...}}; what is absent keeps the default
    # (annotate.hotkeys). Checked by annotate.hotkeys.hotkeys_clean.
    hotkeys = models.JSONField(default=dict, blank=True)
    # https hosts this project's pages load problem images from, beside the site's
    # STEPLENS_IMAGE_HOSTS; none by default: loading an image tells its host who is labelling.
    # Checked by annotate.images.image_hosts_clean.
    image_hosts = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="projects"
    )
    # How many traces the project holds, kept by the writes that add or delete them, in their
    # transaction (imports: one UPDATE under the project's row lock; traces_delete; single rows
    # through annotate.receivers): the labelling page's progress reads it instead of counting
    # 125,000 rows a view (issue 16). Never written by save(): an instance loaded before an
    # import would put back its old count.
    trace_count = models.PositiveIntegerField(default=0, editable=False)
    # How many of its traces hold at least `overlap` submitted annotations ("filled"), kept the
    # same way (counts.submission_counted adds the trace a submission fills, under this row's
    # lock; imports, traces_delete, an overlap change and deletions count again: counts.
    # project_filled_recount): the progress on every labelling page reads it instead of grouping
    # every submitted annotation of the project (which grew with the project's progress).
    filled_count = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding and kwargs.get("update_fields") is None:
            kwargs["update_fields"] = [
                field.name
                for field in self._meta.concrete_fields
                if not field.primary_key and field.name not in ("trace_count", "filled_count")
            ]
        super().save(*args, **kwargs)


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
    # What identifies a problem: the sha256 of its text, its images' content and its table
    # (annotate.imports.problem_content_sha256). The same problem imported twice, or shared by N
    # traces, is one row; the same text with another figure or table is another problem.
    content_sha256 = models.CharField(max_length=64)
    text = models.TextField(help_text="Markdown with LaTeX.")
    reference_answer = models.TextField(blank=True)
    reference_solution = models.TextField(blank=True)
    images = models.JSONField(default=list, blank=True, help_text="List of image URLs or paths.")
    table = models.JSONField(null=True, blank=True, help_text="Optional table the problem uses.")
    metadata = models.JSONField(default=dict, blank=True)
    flagged = models.BooleanField(default=False, help_text="Flagged as a bad problem.")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "content_sha256"], name="problem_unique_content"
            )
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
        constraints = [models.UniqueConstraint(fields=["trace", "index"], name="step_unique_index")]

    def __str__(self) -> str:
        return f"{self.trace_id}#{self.index}"


class RenderedHtml(models.Model):
    """A text's sanitised HTML (annotate.rendering), rendered once and kept: problems and steps
    never change after import, and a page view assembles these fragments instead of running
    Markdown and nh3 again. Keyed by a digest of the renderer's version and the text, so a
    renderer change (annotate.rendering.RENDERER_VERSION) renders everything again on view."""

    digest = models.CharField(max_length=32, primary_key=True)
    html = models.TextField()
    version = models.PositiveSmallIntegerField()

    def __str__(self) -> str:
        return f"html {self.digest} (renderer {self.version})"


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
    # When active time was last credited: a heartbeat credits at most the wall time since then.
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    imported = models.BooleanField(default=False)
    metadata = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    # Blind projects: when the scores were shown to this annotator (at their first submit).
    revealed_at = models.DateTimeField(null=True, blank=True)
    # The labelling page's change log: {client id: last change number applied}. A page resends
    # its unconfirmed changes (after a failure or a reload); those already applied are skipped.
    client_seqs = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["trace", "annotator"], name="annotation_unique")
        ]
        indexes = [models.Index(fields=["annotator", "status"])]

    def __str__(self) -> str:
        return f"{self.annotator} on {self.trace_id} ({self.status})"


class AnnotatorProgress(models.Model):
    """An annotator's submitted passes in a project, counted as they happen, so that the progress
    on every labelling page reads one row instead of all of the annotator's annotations (which
    grew with their work: 75 ms at 10,000 passes).

    `done`: their submitted annotations of the project; `done_filled`: those of them whose trace
    holds at least the project's `overlap` submissions. Kept by counts.submission_counted under
    the project's row lock (which orders every write of these rows); counted again with the
    project's filled_count after bulk writes (counts.project_filled_recount)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    done = models.PositiveIntegerField(default=0)
    done_filled = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "annotator"], name="annotatorprogress_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.annotator} in {self.project}: {self.done} done"


class LabelSource(models.TextChoices):
    """Who chose a step's value: PRM teams tell a propagated +1 from a judged one."""

    HAND = "hand", "Set by hand"
    FIRST_ERROR = "first_error", "The step marked as the first wrong one"
    FILLED = "filled", "Filled in by first-error / all-correct"


class StepLabel(models.Model):
    annotation = models.ForeignKey(Annotation, on_delete=models.CASCADE, related_name="labels")
    step = models.ForeignKey(Step, on_delete=models.CASCADE, related_name="labels")
    # -1 wrong, 0 neutral, +1 correct; null: flagged or noted but not rated.
    value = models.SmallIntegerField(null=True, blank=True)
    source = models.CharField(max_length=12, choices=LabelSource.choices, default=LabelSource.HAND)
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


class ApiToken(models.Model):
    """A user's API token, stored as a hash: the token itself is shown once, when it is made.

    Sent as `Authorization: Token <token>`; `key_prefix` (its first characters) finds the row, the
    sha256 `digest` proves it. Expires; a password change deletes every token of the user.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, default="api")
    key_prefix = models.CharField(max_length=8, db_index=True)
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.user} {self.name} ({self.key_prefix}...)"


class ImportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class ImportJob(models.Model):
    """A large import, run by a worker: the uploaded file waits under VAR_DIR/imports until done.

    Progress (bytes checked, then records written) is kept beside the file, because the write
    pass runs in one transaction that nobody else can see into before it commits.
    """

    project = models.ForeignKey(
        Project, null=True, blank=True, on_delete=models.CASCADE, related_name="import_jobs"
    )
    # The project to import into: made by the import (site admins) when it does not exist yet.
    project_slug = models.SlugField(max_length=100)
    format = models.CharField(max_length=20)
    subset = models.CharField(max_length=100, blank=True)
    filename = models.CharField(max_length=255)
    path = models.CharField(max_length=500, help_text="Relative to VAR_DIR/imports.")
    size = models.BigIntegerField(default=0)
    status = models.CharField(
        max_length=10, choices=ImportStatus.choices, default=ImportStatus.QUEUED
    )
    result = models.JSONField(default=dict, blank=True)
    # The refusal: {"detail", "file", "line", "field"} as the synchronous import gives it.
    error = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # "host#pid" of the process running it: a redelivery on that host takes over from a dead one.
    runner = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"import {self.pk} of {self.filename} into {self.project_slug} ({self.status})"
