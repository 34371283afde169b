"""Output shapes of the REST API shared by several endpoints (inputs live beside their views)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .models import (
    AnnotationStatus,
    FinishReason,
    GoldSource,
    LabelScheme,
    LabelSource,
    Role,
    StepPart,
)
from .rendering import short_trace_id
from .selectors import MY_STATUS_NEW, TraceDetail

MY_STATUS_CHOICES = [(MY_STATUS_NEW, "Not started"), *AnnotationStatus.choices]
# -1 wrong, 0 neutral (ternary scheme only), +1 correct; null: not rated.
LABEL_VALUE_CHOICES = [(-1, "wrong"), (0, "neutral"), (1, "correct")]


class ShortIdField(serializers.CharField):
    """A trace's short id as the pages show it (annotate.rendering.short_trace_id), read from its
    external id: `ShortIdField(source="external_id")` beside the `external_id` field."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("read_only", True)
        kwargs.setdefault(
            "help_text",
            "The trace's id as the pages show it: the source's id when short, else its first "
            "8 and last 4 characters around an ellipsis (`external_id` is the full one).",
        )
        super().__init__(**kwargs)

    def to_representation(self, value: object) -> str:
        return short_trace_id(str(value))


class ProgressSerializer(serializers.Serializer):
    done = serializers.IntegerField(help_text="Traces this user submitted in the project.")
    assigned = serializers.IntegerField(help_text="Done plus what the user's queue still holds.")
    percent = serializers.IntegerField()


class ProjectSerializer(serializers.Serializer):
    slug = serializers.SlugField()
    name = serializers.CharField()
    label_scheme = serializers.ChoiceField(choices=LabelScheme.choices)
    overlap = serializers.IntegerField(help_text="Annotators per trace.")
    blind = serializers.BooleanField(help_text="PRM scores hidden until the annotator submits.")
    my_role = serializers.ChoiceField(choices=Role.choices)


class ProjectDetailSerializer(ProjectSerializer):
    guidelines = serializers.CharField(help_text="Markdown.")
    image_hosts = serializers.ListField(
        child=serializers.CharField(), help_text="https hosts its problem images may load from."
    )
    trace_count = serializers.IntegerField()
    my_progress = ProgressSerializer()


class TraceListItemSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    source = serializers.CharField(help_text="Import format, e.g. processbench.")
    subset = serializers.CharField()
    external_id = serializers.CharField()
    short_id = ShortIdField(source="external_id")
    generator = serializers.CharField()
    step_count = serializers.IntegerField()
    problem_excerpt = serializers.SerializerMethodField()
    status = serializers.ChoiceField(
        source="my_status", choices=MY_STATUS_CHOICES, help_text="Your own status on the trace."
    )

    def get_problem_excerpt(self, trace: object) -> str:
        text: str = trace.problem.text  # type: ignore[attr-defined]
        return text if len(text) <= 200 else text[:199] + "…"


class ProblemSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    text = serializers.CharField(help_text="Markdown with LaTeX; untrusted, render safely.")
    reference_answer = serializers.CharField()
    images = serializers.ListField(child=serializers.CharField())
    table = serializers.JSONField(allow_null=True)


class StepSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="0-based position in the trace.")
    part = serializers.ChoiceField(choices=StepPart.choices)
    text = serializers.CharField(help_text="Markdown with LaTeX; untrusted model output.")


class GoldLabelSerializer(serializers.Serializer):
    step_index = serializers.IntegerField()
    value = serializers.ChoiceField(choices=LABEL_VALUE_CHOICES)
    source = serializers.ChoiceField(choices=GoldSource.choices)
    rationale = serializers.CharField()


class GoldSerializer(serializers.Serializer):
    """What only reviewers and admins see: it would bias an annotator."""

    final_answer_correct = serializers.BooleanField(allow_null=True)
    reference_solution = serializers.CharField()
    labels = GoldLabelSerializer(many=True)


class TraceDetailSerializer(serializers.Serializer):
    """Built from selectors.TraceDetail."""

    id = serializers.IntegerField(source="trace.id")
    project = serializers.SlugField(source="project.slug")
    label_scheme = serializers.ChoiceField(
        source="project.label_scheme", choices=LabelScheme.choices
    )
    source = serializers.CharField(source="trace.source")
    subset = serializers.CharField(source="trace.subset")
    external_id = serializers.CharField(source="trace.external_id")
    short_id = ShortIdField(source="trace.external_id")
    generator = serializers.CharField(source="trace.generator")
    final_answer = serializers.CharField(source="trace.final_answer")
    metadata = serializers.JSONField(
        allow_null=True,
        help_text="The source record's other fields; null unless you are a reviewer or admin "
        "(it can hold the imported answer key).",
    )
    problem = ProblemSerializer()
    steps = StepSerializer(many=True)
    gold = serializers.SerializerMethodField(
        help_text="Gold labels and answer correctness; null unless you are a reviewer or admin."
    )

    class Meta:
        ref_name = "TraceDetail"

    @extend_schema_field(GoldSerializer(allow_null=True))
    def get_gold(self, detail: TraceDetail) -> dict | None:
        if detail.gold is None:
            return None
        return GoldSerializer(
            {
                "final_answer_correct": detail.trace.final_answer_correct,
                "reference_solution": detail.problem.reference_solution,
                "labels": detail.gold,
            }
        ).data


class StepLabelSerializer(serializers.Serializer):
    """A StepLabel fetched with a `step_index` annotation (see selectors)."""

    step_index = serializers.IntegerField()
    value = serializers.ChoiceField(choices=LABEL_VALUE_CHOICES, allow_null=True)
    source = serializers.ChoiceField(
        choices=LabelSource.choices,
        help_text="Who chose the value: by hand, the step marked as first wrong, or filled in "
        "by first-error / all-correct.",
    )
    flagged = serializers.BooleanField()
    note = serializers.CharField()
    # An integer, not the value enum: one enum under two names is a schema warning.
    blind_value = serializers.IntegerField(
        min_value=-1,
        max_value=1,
        allow_null=True,
        help_text="Blind projects: the value as first submitted, before scores were revealed.",
    )
    updated_at = serializers.DateTimeField()


class AnnotationSerializer(serializers.Serializer):
    """An Annotation with labels prefetched by the selectors (or a not-started stand-in)."""

    id = serializers.IntegerField(allow_null=True, help_text="null until the first label.")
    trace = serializers.IntegerField(source="trace_id")
    annotator = serializers.CharField(source="annotator.username")
    status = serializers.ChoiceField(choices=MY_STATUS_CHOICES)
    finish_reason = serializers.ChoiceField(choices=FinishReason.choices, allow_blank=True)
    active_seconds = serializers.FloatField()
    imported = serializers.BooleanField()
    started_at = serializers.DateTimeField(allow_null=True)
    submitted_at = serializers.DateTimeField(allow_null=True)
    revealed_at = serializers.DateTimeField(
        allow_null=True, help_text="Blind projects: when PRM scores were first shown."
    )
    labels = StepLabelSerializer(many=True)
