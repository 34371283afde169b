"""Review: the labelling queue (priorities, leases, skips) and the log of gold label changes.

The tables keep the names they had when these models lived in `annotate` (no data moved)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.search import SearchVectorField
from django.db import models

from annotate.models import Project, Step, Trace

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
        default=30,
        help_text="A trace handed out and not submitted within this returns to the queue.",
    )

    class Meta:
        db_table = "annotate_queuesettings"  # kept from when this lived in annotate

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
    # The data browser's PRM filters: the lowest step score of any of the project's scorers, and
    # whether some scorer scores a step below its threshold (null: no scorer has scored it yet).
    prm_min = models.FloatField(null=True, blank=True)
    prm_wrong = models.BooleanField(null=True, blank=True)
    # Taken out of the labelling queue by a reviewer (the data browser's "skip"); kept by refreshes.
    held_out = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "annotate_tracepriority"  # kept from when this lived in annotate
        indexes = [
            models.Index(
                "project",
                models.F("priority").desc(),
                "trace",
                condition=models.Q(open_slots__gt=0),
                name="tracepriority_next",
            ),
            # The data browser's score range and its sort by the lowest step score, ties by trace
            # (its SORTS): a page of "lowest score <= x, sorted by it" is read in index order.
            models.Index(
                fields=["project", "prm_min", "trace"], name="tracepriority_prm_min_trace"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.trace_id}: {self.priority:.3f} ({self.open_slots} open)"


class TraceSearch(models.Model):
    """The data browser's full-text document of a trace: its problem and steps as a PostgreSQL
    tsvector with a GIN index (review.fts; written with SQL, only on PostgreSQL: SQLite keeps
    the table empty and searches with LIKE)."""

    trace = models.OneToOneField(
        Trace, on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    document = SearchVectorField()

    def __str__(self) -> str:
        return f"search document of {self.trace_id}"


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
        db_table = "annotate_assignment"  # kept from when this lived in annotate
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


class BulkActionKind(models.TextChoices):
    ASSIGN = "assign", "Assign to an annotator"
    SKIP = "skip", "Skip (take out of the queue)"
    UNSKIP = "unskip", "Un-skip (back into the queue)"
    SCORE = "score", "Score with a scorer"
    FLAG = "flag", "Flag the problems"
    EXPORT = "export", "Add to an export"
    DELETE = "delete", "Delete"


class BulkAction(models.Model):
    """The log of the data browser's bulk actions: who did what to which traces, by which filter."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=10, choices=BulkActionKind.choices)
    # The filter as its URL query ("" when traces were picked one by one), and the options used.
    query = models.TextField(blank=True)
    options = models.JSONField(default=dict, blank=True)
    trace_ids = models.JSONField(default=list, blank=True)
    selected = models.PositiveIntegerField(default=0)
    changed = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} on {self.selected} traces of {self.project} by {self.user}"


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
        db_table = "annotate_goldlabelchange"  # kept from when this lived in annotate
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.step}: {self.old_value} -> {self.new_value}"
