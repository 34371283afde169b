"""REST API of review: the queue (next, take a lease, skip, strategy), adjudication, agreement,
the PRM audit and Best-of-N."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from annotate import selectors as annotate_selectors
from annotate import services as annotate_services
from annotate.api import ApiView, trace_detail_response
from annotate.models import Role
from annotate.serializers import ShortIdField, TraceDetailSerializer
from scoring import services as scoring_services
from scoring.models import RunQueue, Scorer
from scoring.prm.aggregate import RANKINGS
from scoring.selectors import scorers_for_project

from . import audit, browser, bulk, sampling, selectors, services
from .models import Assignment, AssignmentStatus, BulkActionKind, QueueStrategy, SkipReason

TAG_QUEUE = "queue"
TAG_REVIEW = "review"


class StrategySerializer(serializers.Serializer):
    value = serializers.CharField()
    label = serializers.CharField()
    help = serializers.CharField()


class LeaseSerializer(serializers.Serializer):
    trace_id = serializers.IntegerField()
    external_id = serializers.CharField()
    short_id = ShortIdField(source="external_id")
    slot = serializers.IntegerField(allow_null=True)
    status = serializers.CharField()
    leased_until = serializers.DateTimeField()


class QueueSerializer(serializers.Serializer):
    strategy = serializers.CharField()
    strategies = StrategySerializer(many=True)
    overlap = serializers.IntegerField()
    lease_minutes = serializers.IntegerField()
    my_leases = LeaseSerializer(many=True)


def _lease(assignment: Assignment) -> dict[str, Any]:
    return {
        "trace_id": assignment.trace_id,
        "external_id": assignment.trace.external_id,
        "slot": assignment.slot,
        "status": assignment.status,
        "leased_until": assignment.leased_until,
    }


class QueueApi(ApiView):
    """The project's queue strategy (each explained), the overlap, and the leases you hold."""

    @extend_schema(tags=[TAG_QUEUE], responses=QueueSerializer)
    def get(self, request: Request, slug: str) -> Response:
        project = annotate_selectors.project_get_for_user(user=request.user, slug=slug)
        settings = services.queue_settings_get(project=project)
        leases = Assignment.objects.filter(
            project=project, annotator_id=request.user.pk, status=AssignmentStatus.LEASED
        ).select_related("trace")
        return Response(
            QueueSerializer(
                {
                    "strategy": settings.strategy,
                    "strategies": [
                        {"value": v, "label": label, "help": services.STRATEGY_HELP[v]}
                        for v, label in QueueStrategy.choices
                    ],
                    "overlap": project.overlap,
                    "lease_minutes": settings.lease_minutes,
                    "my_leases": [_lease(a) for a in leases],
                }
            ).data
        )


class QueueTakeApi(ApiView):
    """Take your next trace: one you hold or started, else a lease on the best open one."""

    class InputSerializer(serializers.Serializer):
        after = serializers.IntegerField(
            required=False, help_text="Do not hand back this trace id (the one you just left)."
        )

        class Meta:
            ref_name = "QueueTakeInput"

    @extend_schema(
        tags=[TAG_QUEUE],
        request=InputSerializer,
        responses={200: LeaseSerializer, 204: OpenApiResponse(description="Your queue is empty.")},
    )
    def post(self, request: Request, slug: str) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        project = annotate_selectors.project_get_for_user(user=request.user, slug=slug)
        trace = services.lease_next(
            user=request.user, project=project, after_trace_id=data.validated_data.get("after")
        )
        if trace is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        assignment = Assignment.objects.filter(trace=trace, annotator_id=request.user.pk).first()
        return Response(
            LeaseSerializer(
                {
                    "trace_id": trace.pk,
                    "external_id": trace.external_id,
                    "slot": assignment.slot if assignment else None,
                    "status": assignment.status if assignment else "unassigned",
                    "leased_until": assignment.leased_until if assignment else None,
                }
            ).data
        )


class QueueStrategyApi(ApiView):
    """Order the project's queue by another strategy, and set its lease time (project admins)."""

    class InputSerializer(serializers.Serializer):
        strategy = serializers.ChoiceField(choices=QueueStrategy.choices)
        lease_minutes = serializers.IntegerField(
            required=False,
            min_value=1,
            max_value=24 * 60,
            help_text="How long a trace handed out stays its annotator's.",
        )

        class Meta:
            ref_name = "QueueStrategyInput"

    @extend_schema(tags=[TAG_QUEUE], request=InputSerializer, responses=QueueSerializer)
    def put(self, request: Request, slug: str) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        project = annotate_selectors.project_get_for_user(
            user=request.user, slug=slug, min_role=Role.ADMIN
        )
        services.strategy_set(
            project=project,
            strategy=data.validated_data["strategy"],
            lease_minutes=data.validated_data.get("lease_minutes"),
        )
        return QueueApi().get(request, slug)


class TraceSkipApi(ApiView):
    """Skip a trace with a reason: its slot goes back to the queue; it is not offered to you again."""

    class InputSerializer(serializers.Serializer):
        reason = serializers.ChoiceField(choices=SkipReason.choices)
        note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)

        class Meta:
            ref_name = "TraceSkipInput"

    class OutputSerializer(serializers.Serializer):
        trace_id = serializers.IntegerField()
        status = serializers.CharField()
        reason = serializers.CharField()
        note = serializers.CharField()

        class Meta:
            ref_name = "TraceSkipOutput"

    @extend_schema(tags=[TAG_QUEUE], request=InputSerializer, responses=OutputSerializer)
    def post(self, request: Request, trace_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        trace = annotate_selectors.trace_get_for_user(user=request.user, trace_id=trace_id)
        assignment = services.assignment_skip(user=request.user, trace=trace, **data.validated_data)
        return Response(
            self.OutputSerializer(
                {
                    "trace_id": trace.pk,
                    "status": assignment.status,
                    "reason": assignment.skip_reason,
                    "note": assignment.skip_note,
                }
            ).data
        )


# --- review ---------------------------------------------------------------------------------------


class DisagreementSerializer(serializers.Serializer):
    trace_id = serializers.IntegerField()
    external_id = serializers.CharField()
    short_id = ShortIdField(source="external_id")
    step_index = serializers.IntegerField()
    values = serializers.ListField(child=serializers.IntegerField())
    gold = serializers.IntegerField(allow_null=True)
    gold_source = serializers.CharField()


class DisagreementListApi(ApiView):
    """The adjudication queue: steps where submitted annotations disagree (reviewers)."""

    class FilterSerializer(serializers.Serializer):
        resolved = serializers.BooleanField(
            required=False, default=False, help_text="Include steps already adjudicated."
        )

        class Meta:
            ref_name = "DisagreementFilter"

    @extend_schema(
        tags=[TAG_REVIEW],
        parameters=[FilterSerializer],
        responses=DisagreementSerializer(many=True),
    )
    def get(self, request: Request, slug: str) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        project = annotate_selectors.project_get_for_user(
            user=request.user, slug=slug, min_role=Role.REVIEWER
        )
        rows = selectors.disagreement_list(
            project=project, include_resolved=filters.validated_data["resolved"]
        )
        return Response(DisagreementSerializer(rows, many=True).data)


class AdjLabelSerializer(serializers.Serializer):
    annotator = serializers.CharField()
    status = serializers.CharField()
    value = serializers.IntegerField(allow_null=True)
    blind_value = serializers.IntegerField(allow_null=True)
    flagged = serializers.BooleanField()
    note = serializers.CharField()
    updated_at = serializers.DateTimeField()
    active_seconds = serializers.FloatField(help_text="The annotator's active time on the trace.")


class AdjGoldSerializer(serializers.Serializer):
    value = serializers.IntegerField()
    source = serializers.CharField()
    set_by = serializers.CharField(allow_null=True)
    rationale = serializers.CharField()
    updated_at = serializers.DateTimeField()


class GoldChangeSerializer(serializers.Serializer):
    old_value = serializers.IntegerField(allow_null=True)
    new_value = serializers.IntegerField(allow_null=True)
    old_source = serializers.CharField()
    new_source = serializers.CharField()
    changed_by = serializers.CharField(allow_null=True)
    rationale = serializers.CharField()
    created_at = serializers.DateTimeField()


class AdjScoreSerializer(serializers.Serializer):
    scorer = serializers.CharField()
    score = serializers.FloatField(allow_null=True)
    details = serializers.DictField(help_text="e.g. generative critiques and sampled verdicts.")


class AdjStepSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    text = serializers.CharField()
    disagree = serializers.BooleanField()
    labels = AdjLabelSerializer(many=True)
    gold = AdjGoldSerializer(allow_null=True)
    history = GoldChangeSerializer(many=True)
    scores = AdjScoreSerializer(many=True)


class AdjudicationSerializer(serializers.Serializer):
    trace_id = serializers.IntegerField()
    external_id = serializers.CharField()
    short_id = ShortIdField(source="external_id")
    steps = AdjStepSerializer(many=True)


def _username(user: Any) -> str | None:
    return user.get_username() if user is not None else None


def _adjudication(request: Request, trace_id: int) -> dict[str, Any]:
    data = selectors.adjudication_for_user(user=request.user, trace_id=trace_id)
    return {
        "trace_id": data.trace.pk,
        "external_id": data.trace.external_id,
        "steps": [
            {
                "index": s.step.index,
                "text": s.step.text,
                "disagree": s.disagree,
                "labels": [vars(label) for label in s.labels],
                "gold": None
                if s.gold is None
                else {
                    "value": s.gold.value,
                    "source": s.gold.source,
                    "set_by": _username(s.gold.set_by),
                    "rationale": s.gold.rationale,
                    "updated_at": s.gold.updated_at,
                },
                "history": [
                    {
                        "old_value": c.old_value,  # type: ignore[attr-defined]
                        "new_value": c.new_value,  # type: ignore[attr-defined]
                        "old_source": c.old_source,  # type: ignore[attr-defined]
                        "new_source": c.new_source,  # type: ignore[attr-defined]
                        "changed_by": _username(c.changed_by),  # type: ignore[attr-defined]
                        "rationale": c.rationale,  # type: ignore[attr-defined]
                        "created_at": c.created_at,  # type: ignore[attr-defined]
                    }
                    for c in s.history
                ],
                "scores": [
                    {
                        "scorer": scorer.name,  # type: ignore[attr-defined]
                        "score": score.score if score else None,  # type: ignore[attr-defined]
                        "details": score.details if score else {},  # type: ignore[attr-defined]
                    }
                    for scorer, score in s.scores
                ],
            }
            for s in data.steps
        ],
    }


class AdjudicationApi(ApiView):
    """A trace as a reviewer settles it: every annotator's labels, notes and time per step, the
    PRM scores and critiques, the gold label and its change log (reviewers)."""

    @extend_schema(tags=[TAG_REVIEW], responses=AdjudicationSerializer)
    def get(self, request: Request, trace_id: int) -> Response:
        return Response(AdjudicationSerializer(_adjudication(request, trace_id)).data)


class GoldSetApi(ApiView):
    """Set (or, with value null, clear) a step's gold label, with a rationale (reviewers); the
    change is written to the audit log."""

    class InputSerializer(serializers.Serializer):
        value = serializers.IntegerField(
            min_value=-1, max_value=1, allow_null=True, help_text="-1, 0 or 1; null clears gold."
        )
        rationale = serializers.CharField(max_length=5000)

        class Meta:
            ref_name = "GoldSetInput"

    @extend_schema(tags=[TAG_REVIEW], request=InputSerializer, responses=AdjudicationSerializer)
    def put(self, request: Request, trace_id: int, index: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        trace = annotate_selectors.trace_get_for_user(
            user=request.user, trace_id=trace_id, min_role=Role.REVIEWER
        )
        step = annotate_selectors.step_get(trace=trace, index=index)
        services.gold_set(user=request.user, step=step, **data.validated_data)
        return Response(AdjudicationSerializer(_adjudication(request, trace_id)).data)


class PairSerializer(serializers.Serializer):
    a = serializers.CharField()
    b = serializers.CharField()
    steps = serializers.IntegerField()
    kappa = serializers.FloatField(allow_null=True)
    percent = serializers.FloatField(allow_null=True)


class AnnotatorStatsSerializer(serializers.Serializer):
    user_id = serializers.IntegerField()
    username = serializers.CharField()
    traces_submitted = serializers.IntegerField()
    steps_labelled = serializers.IntegerField()
    steps_filled = serializers.IntegerField(
        help_text="Of steps_labelled: filled in by first-error / all-correct, not judged."
    )
    active_seconds = serializers.FloatField()
    traces_per_hour = serializers.FloatField(allow_null=True)
    seconds_per_step = serializers.FloatField(allow_null=True)
    gold_steps = serializers.IntegerField()
    gold_agreement = serializers.FloatField(allow_null=True)
    kappa_with_gold = serializers.FloatField(allow_null=True)
    mean_pair_kappa = serializers.FloatField(allow_null=True)


class FirstErrorAgreementSerializer(serializers.Serializer):
    traces = serializers.IntegerField()
    pairwise = serializers.FloatField(allow_null=True)
    unanimous = serializers.FloatField(allow_null=True)


class JudgedAgreementSerializer(serializers.Serializer):
    steps_multi = serializers.IntegerField()
    fleiss_kappa = serializers.FloatField(allow_null=True)
    krippendorff_alpha = serializers.FloatField(allow_null=True)


class AgreementSerializer(serializers.Serializer):
    annotators = serializers.IntegerField()
    traces_multi = serializers.IntegerField()
    steps_multi = serializers.IntegerField()
    fleiss_kappa = serializers.FloatField(allow_null=True)
    krippendorff_alpha = serializers.FloatField(allow_null=True, help_text="Ordinal, -1 < 0 < +1.")
    first_error = FirstErrorAgreementSerializer()
    judged = JudgedAgreementSerializer(
        help_text="The same over judged labels only: labels set by hand and the steps marked as "
        "first wrong; the +1s first-error / all-correct filled in are left out."
    )
    pairs = PairSerializer(many=True)
    annotators_stats = AnnotatorStatsSerializer(many=True)
    warning = serializers.CharField(
        allow_null=True, help_text='Set when the kappas rest on few steps ("Kappa from 4 steps").'
    )


class AgreementApi(ApiView):
    """Agreement over submitted labels and each annotator's statistics (reviewers)."""

    @extend_schema(tags=[TAG_REVIEW], responses=AgreementSerializer)
    def get(self, request: Request, slug: str) -> Response:
        _, report = selectors.agreement_for_user(user=request.user, slug=slug)
        data = report.as_dict()  # type: ignore[attr-defined]
        data["warning"] = sampling.agreement_warning(data["steps_multi"])
        return Response(AgreementSerializer(data).data)


# --- the annotator's next trace --------------------------------------------------------------


class QueueNextApi(ApiView):
    """The next trace of your queue: the one you started, else the first still short of labels."""

    class FilterSerializer(serializers.Serializer):
        after = serializers.IntegerField(
            required=False, help_text="Skip this trace id (e.g. the one you just left)."
        )

        class Meta:
            ref_name = "QueueNextFilter"

    @extend_schema(
        tags=["traces"],
        parameters=[FilterSerializer],
        responses={
            200: TraceDetailSerializer,
            204: OpenApiResponse(description="Your queue is empty."),
        },
    )
    def get(self, request: Request, slug: str) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        project = annotate_selectors.project_get_for_user(user=request.user, slug=slug)
        # What POST .../queue/take/ would lease, in the project's strategy order; leases nothing.
        after = filters.validated_data.get("after")
        upcoming = services.queue_preview(user=request.user, project=project, limit=2)
        trace = next((t for t in upcoming if t.pk != after), None)
        if trace is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        trace.project = project
        return trace_detail_response(request, trace)


# --- the PRM audit -----------------------------------------------------------------------------


class AuditFilterSerializer(serializers.Serializer):
    scorer = serializers.CharField(required=False, help_text="Default: the project's first scorer.")
    threshold = serializers.FloatField(
        required=False, min_value=0.0, max_value=1.0, help_text="Default: the scorer's threshold."
    )

    class Meta:
        ref_name = "AuditFilter"


class ProcessBenchSerializer(serializers.Serializer):
    acc_error = serializers.FloatField(allow_null=True)
    acc_correct = serializers.FloatField(allow_null=True)
    f1 = serializers.FloatField(allow_null=True)
    n_error = serializers.IntegerField()
    n_correct = serializers.IntegerField()
    mean_f1_over_subsets = serializers.FloatField(allow_null=True)
    by_subset = serializers.DictField(child=serializers.DictField())


class PRMBenchSerializer(serializers.Serializer):
    score = serializers.FloatField(allow_null=True)
    f1_correct = serializers.FloatField(allow_null=True)
    f1_error = serializers.FloatField(allow_null=True)
    accuracy = serializers.FloatField(allow_null=True)
    n_steps = serializers.IntegerField()


class BestThresholdSerializer(serializers.Serializer):
    threshold = serializers.FloatField(allow_null=True)
    f1 = serializers.FloatField(allow_null=True)


class WorstSerializer(serializers.Serializer):
    trace_id = serializers.IntegerField()
    external_id = serializers.CharField()
    short_id = ShortIdField(source="external_id")
    step_index = serializers.IntegerField()
    gold = serializers.IntegerField()
    score = serializers.FloatField()
    severity = serializers.FloatField()


class AuditSampleSerializer(serializers.Serializer):
    traces_with_gold = serializers.IntegerField()
    traces_with_error = serializers.IntegerField()
    traces_correct = serializers.IntegerField()
    gold_steps = serializers.IntegerField()
    f1_interval = serializers.ListField(
        child=serializers.FloatField(),
        allow_null=True,
        help_text="95% percentile bootstrap over traces.",
    )
    auroc_interval = serializers.ListField(child=serializers.FloatField(), allow_null=True)
    warning = serializers.CharField(allow_null=True, help_text="Set when the sample is too small.")


class AuditNoVerdictSerializer(serializers.Serializer):
    steps = serializers.IntegerField(
        help_text='Steps the scorer gave no verdict on (score details.verdict "unknown": the '
        'tool backend\'s "no check"), left out of every figure.'
    )
    gold_steps = serializers.IntegerField(help_text="Of those, the gold-labelled ones.")
    traces_without_any = serializers.IntegerField(
        help_text="Traces with no verdict on any step: left out of ProcessBench and of "
        "Best-of-N's step aggregations."
    )


class AuditTrajectorySerializer(serializers.Serializer):
    traces = serializers.IntegerField(help_text="Traces with the score and a known final answer.")
    right = serializers.IntegerField(help_text="Of those, the ones whose final answer is right.")
    auroc = serializers.FloatField(allow_null=True)


class AuditReportSerializer(serializers.Serializer):
    project = serializers.CharField()
    scorer = serializers.CharField()
    scorer_version = serializers.IntegerField()
    threshold = serializers.FloatField()
    threshold_rule = serializers.CharField(
        help_text="How a score is compared with the threshold, the same in every figure."
    )
    traces = serializers.IntegerField()
    steps = serializers.IntegerField()
    gold_steps = serializers.IntegerField(help_text="Gold-labelled steps with a verdict.")
    no_verdict = AuditNoVerdictSerializer()
    trajectory = AuditTrajectorySerializer(
        allow_null=True,
        help_text="The trajectory score (whole trace) against final-answer correctness; null "
        "when the scorer gives none.",
    )
    response = AuditTrajectorySerializer(
        allow_null=True,
        help_text="The response-level score (a trajectory-response trace's response part "
        "alone) against final-answer correctness; null when the scorer gives none.",
    )
    processbench = ProcessBenchSerializer()
    prmbench = PRMBenchSerializer()
    auroc = serializers.FloatField(allow_null=True)
    ece = serializers.FloatField(
        allow_null=True,
        help_text="Positive-class ECE: the score against whether the step is correct (the "
        "calibration bins' definition).",
    )
    ece_top_label = serializers.FloatField(
        allow_null=True,
        help_text="Top-label ECE (Guo et al. 2017): max(score, 1 - score) against whether the "
        "predicted class is right.",
    )
    calibration = serializers.ListField(child=serializers.DictField())
    roc = serializers.DictField(child=serializers.ListField(child=serializers.FloatField()))
    best_threshold = BestThresholdSerializer()
    f1_curve = serializers.DictField(
        child=serializers.ListField(child=serializers.FloatField(allow_null=True))
    )
    best_of_n = serializers.DictField(child=serializers.DictField())
    best_of_n_warning = serializers.CharField(
        allow_null=True, help_text="Set when Best-of-N rests on too few problems."
    )
    sample = AuditSampleSerializer(help_text="What F1 and AUROC rest on, with 95% intervals.")
    by_generator = serializers.DictField(child=serializers.DictField())
    by_subset = serializers.DictField(child=serializers.DictField())
    by_position = serializers.ListField(child=serializers.DictField())
    consistency = serializers.DictField(child=serializers.DictField())
    worst = WorstSerializer(many=True)


class AuditReportApi(ApiView):
    """A scorer against the project's gold labels: ProcessBench and PRMBench metrics, AUROC,
    calibration with ECE, the best threshold, Best-of-N, breakdowns, consistency checks and the
    worst disagreements. Rates are fractions in [0, 1]; null where there is nothing to measure."""

    @extend_schema(
        operation_id="project_audit",
        tags=["review"],
        parameters=[AuditFilterSerializer],
        responses={
            200: AuditReportSerializer,
            204: OpenApiResponse(description="No scorer is attached to the project."),
        },
    )
    def get(self, request: Request, slug: str) -> Response:
        filters = AuditFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        _, _, report = audit.audit_for_user(
            user=request.user,
            slug=slug,
            scorer_name=filters.validated_data.get("scorer"),
            threshold=filters.validated_data.get("threshold"),
        )
        if report is None:
            return Response(status=204)
        return Response(AuditReportSerializer(report).data)


class AuditQueueApi(ApiView):
    """The audit queue: gold-labelled steps the scorer gets wrong, most confident mistakes first."""

    @extend_schema(
        operation_id="project_audit_queue",
        tags=["review"],
        parameters=[AuditFilterSerializer],
        responses=WorstSerializer(many=True),
    )
    def get(self, request: Request, slug: str) -> Response:
        filters = AuditFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        _, _, report = audit.audit_for_user(
            user=request.user,
            slug=slug,
            scorer_name=filters.validated_data.get("scorer"),
            threshold=filters.validated_data.get("threshold"),
        )
        return Response(WorstSerializer(report["worst"] if report else [], many=True).data)


# --- Best-of-N ---------------------------------------------------------------------------------


class RankedTraceSerializer(serializers.Serializer):
    trace_id = serializers.IntegerField()
    external_id = serializers.CharField()
    short_id = ShortIdField(source="external_id")
    generator = serializers.CharField()
    final_answer = serializers.CharField()
    final_answer_correct = serializers.BooleanField(
        allow_null=True, help_text="Reviewers and admins only (null for annotators)."
    )
    aggregate = serializers.FloatField(allow_null=True)
    steps_scored = serializers.IntegerField()
    status = serializers.CharField(
        allow_null=True,
        help_text="This scorer version's run: queued/running/done/failed; null: none",
    )
    hidden = serializers.BooleanField(
        help_text="A blind project's scores, hidden until you submit this trace."
    )

    class Meta:
        ref_name = "RankedTrace"


def _best_of_n(request: Request, problem_id: int, name: str, how: str) -> tuple[Any, Scorer, Any]:
    problem = annotate_selectors.problem_get_for_user(user=request.user, problem_id=problem_id)
    scorer = get_object_or_404(scorers_for_project(project=problem.project), name=name)
    if how not in RANKINGS:
        raise serializers.ValidationError({"how": f"choose one of {', '.join(RANKINGS)}"})
    return problem, scorer, how


def _ranking(request: Request, problem: Any, scorer: Scorer, how: str) -> list[dict[str, Any]]:
    _, ranked = selectors.problem_best_of_n(
        user=request.user, problem_id=problem.pk, scorer=scorer, how=how
    )
    role = annotate_selectors.project_role(user=request.user, project=problem.project)
    show_correctness = annotate_selectors.role_at_least(role, Role.REVIEWER)
    return RankedTraceSerializer(
        [
            {
                "trace_id": r.trace.pk,
                "external_id": r.trace.external_id,
                "generator": r.trace.generator,
                "final_answer": r.trace.final_answer,
                "final_answer_correct": r.trace.final_answer_correct if show_correctness else None,
                "aggregate": r.aggregate,
                "steps_scored": r.step_count,
                "status": r.status,
                "hidden": r.hidden,
            }
            for r in ranked
        ],
        many=True,
    ).data


class BestOfNApi(ApiView):
    @extend_schema(
        operation_id="problem_best_of_n",
        parameters=[
            OpenApiParameter("scorer", str, required=True),
            OpenApiParameter("how", str, enum=list(RANKINGS), required=False),
        ],
        responses=RankedTraceSerializer(many=True),
    )
    def get(self, request: Request, problem_id: int) -> Response:
        problem, scorer, how = _best_of_n(
            request,
            problem_id,
            request.query_params.get("scorer", ""),
            request.query_params.get("how", "min"),
        )
        return Response(_ranking(request, problem, scorer, how))


class BestOfNSampleSerializer(serializers.Serializer):
    traces = serializers.IntegerField(help_text="The problem's traces.")
    scored = serializers.IntegerField(help_text="Those the ranking rests on (scored, not hidden).")
    project_problems = serializers.IntegerField(
        help_text="The project's problems with two or more scored candidates of known "
        "correctness: what the scorer's Best-of-N accuracy (the audit's) rests on."
    )
    warning = serializers.CharField(
        allow_null=True,
        help_text="Nothing to rank yet (fewer than two scored), or too few problems to mean "
        "much (the audit's Best-of-N warning); null when neither.",
    )


class BestOfNSampleApi(ApiView):
    @extend_schema(
        operation_id="problem_best_of_n_sample",
        parameters=[
            OpenApiParameter("scorer", str, required=True),
            OpenApiParameter("how", str, enum=list(RANKINGS), required=False),
        ],
        responses=BestOfNSampleSerializer,
        description="What the problem's ranking rests on, with the page's warning.",
    )
    def get(self, request: Request, problem_id: int) -> Response:
        problem, scorer, how = _best_of_n(
            request,
            problem_id,
            request.query_params.get("scorer", ""),
            request.query_params.get("how", "min"),
        )
        _, ranked = selectors.problem_best_of_n(
            user=request.user, problem_id=problem.pk, scorer=scorer, how=how
        )
        return Response(
            BestOfNSampleSerializer(
                selectors.problem_best_of_n_sample(problem=problem, scorer=scorer, ranked=ranked)
            ).data
        )


class BestOfNScoreApi(ApiView):
    class InputSerializer(serializers.Serializer):
        scorer = serializers.CharField()
        how = serializers.ChoiceField(choices=list(RANKINGS), default="min")

    @extend_schema(
        operation_id="problem_best_of_n_score",
        request=InputSerializer,
        responses={202: RankedTraceSerializer(many=True)},
        description="Enqueue the scorer's missing runs for every trace of the problem on the "
        "interactive queue; returns the ranking (poll GET until no run is queued or running).",
    )
    def post(self, request: Request, problem_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        problem, scorer, how = _best_of_n(
            request, problem_id, data.validated_data["scorer"], data.validated_data["how"]
        )
        scoring_services.score_runs_enqueue(
            traces=list(problem.traces.all()), scorers=[scorer], queue=RunQueue.INTERACTIVE
        )
        return Response(_ranking(request, problem, scorer, how), status=status.HTTP_202_ACCEPTED)


# --- the data browser -----------------------------------------------------------------------------

TAG_DATA = "data"


class BrowserRowSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="trace.pk")
    short_id = ShortIdField(source="trace.external_id")
    external_id = serializers.CharField(source="trace.external_id")
    source = serializers.CharField(source="trace.source")
    subset = serializers.CharField(source="trace.subset")
    generator = serializers.CharField(source="trace.generator")
    final_answer_correct = serializers.BooleanField(
        source="trace.final_answer_correct", allow_null=True
    )
    steps = serializers.IntegerField()
    prm_min = serializers.FloatField(allow_null=True)
    prm_wrong = serializers.BooleanField(allow_null=True)
    status = serializers.CharField()
    skipped = serializers.BooleanField()


class BrowserPageSerializer(serializers.Serializer):
    count = serializers.IntegerField(
        source="total", help_text="Exact up to 10,000; beyond it 10,001 and `exact` is false."
    )
    exact = serializers.BooleanField()
    has_next = serializers.BooleanField()
    page = serializers.IntegerField()
    pages = serializers.IntegerField()
    results = BrowserRowSerializer(source="rows", many=True)


class BulkActionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    action = serializers.CharField()
    query = serializers.CharField()
    options = serializers.DictField()
    selected = serializers.IntegerField()
    changed = serializers.IntegerField()
    created_at = serializers.DateTimeField()


class DataBrowserApi(ApiView):
    """The project's traces through the data browser's filter (reviewers and admins): the same
    query parameters as the page's URL, 50 a page."""

    @extend_schema(
        tags=[TAG_DATA], parameters=[browser.TraceFilterSerializer], responses=BrowserPageSerializer
    )
    def get(self, request: Request, slug: str) -> Response:
        project = annotate_selectors.project_get_for_user(
            user=request.user, slug=slug, min_role=Role.REVIEWER
        )
        values = browser.filter_parse(request.query_params)
        return Response(
            BrowserPageSerializer(browser.trace_page(project=project, values=values)).data
        )


class DataBulkApi(ApiView):
    """A bulk action on picked traces or on every trace of a filter, logged (assign, skip and
    unskip, flag: reviewers; score, delete: admins; delete needs `confirm` = the trace count)."""

    class InputSerializer(serializers.Serializer):
        action = serializers.ChoiceField(choices=BulkActionKind.choices)
        traces = serializers.ListField(
            child=serializers.IntegerField(),
            required=False,
            default=list,
            help_text="Trace ids (ignored with whole_filter).",
        )
        whole_filter = serializers.BooleanField(
            default=False, help_text="Every trace of `query`, not only `traces`."
        )
        query = serializers.CharField(
            required=False,
            allow_blank=True,
            default="",
            help_text="The filter as a URL query, e.g. prm=wrong&status=unlabelled.",
        )
        annotator = serializers.CharField(required=False, help_text="assign: a member's username.")
        scorer = serializers.CharField(required=False, help_text="score: a scorer of the project.")
        confirm = serializers.CharField(required=False, help_text="delete: the number of traces.")

        class Meta:
            ref_name = "DataBulkInput"

    @extend_schema(tags=[TAG_DATA], request=InputSerializer, responses=BulkActionSerializer)
    def post(self, request: Request, slug: str) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        project = annotate_selectors.project_get_for_user(
            user=request.user, slug=slug, min_role=Role.REVIEWER
        )
        given = data.validated_data
        ids = browser.bulk_targets(
            project=project,
            query=given["query"],
            trace_ids=given["traces"],
            whole_filter=given["whole_filter"],
        )
        done = bulk.traces_bulk(
            user=request.user,
            project=project,
            action=given["action"],
            trace_ids=ids,
            query=given["query"],
            options={k: given[k] for k in ("annotator", "scorer", "confirm") if k in given},
        )
        return Response(BulkActionSerializer(done).data)


# --- members --------------------------------------------------------------------------------------

TAG_MEMBERS = "members"


class MemberSerializer(serializers.Serializer):
    username = serializers.CharField(source="membership.user.username")
    active = serializers.BooleanField(source="membership.user.is_active")
    role = serializers.CharField(source="membership.role")
    assigned = serializers.IntegerField()
    in_progress = serializers.IntegerField()
    done = serializers.IntegerField()
    skipped = serializers.IntegerField()
    seconds_per_trace = serializers.FloatField(allow_null=True)
    gold_steps = serializers.IntegerField(help_text="Steps the kappa with gold rests on.")
    kappa_with_gold = serializers.FloatField(allow_null=True)
    mean_pair_kappa = serializers.FloatField(allow_null=True)


def _member_rows(project: Any, username: str | None = None) -> list[Any]:
    rows = selectors.member_progress(project=project)
    return [r for r in rows if username is None or r.membership.user.username == username]


class MemberListApi(ApiView):
    """The project's members with their progress and agreement (admins); add or create one."""

    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        role = serializers.ChoiceField(choices=Role.choices, default=Role.ANNOTATOR)
        create = serializers.BooleanField(
            default=False, help_text="Make the account first (with `password`)."
        )
        password = serializers.CharField(required=False, default="", write_only=True)

        class Meta:
            ref_name = "MemberInput"

    @extend_schema(tags=[TAG_MEMBERS], responses=MemberSerializer(many=True))
    def get(self, request: Request, slug: str) -> Response:
        project = annotate_selectors.project_get_for_user(
            user=request.user, slug=slug, min_role=Role.ADMIN
        )
        return Response(MemberSerializer(_member_rows(project), many=True).data)

    @extend_schema(tags=[TAG_MEMBERS], request=InputSerializer, responses={201: MemberSerializer})
    def post(self, request: Request, slug: str) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        project = annotate_selectors.project_get_for_user(
            user=request.user, slug=slug, min_role=Role.ADMIN
        )
        given = data.validated_data
        annotate_services.member_add(
            project=project,
            username=given["username"],
            role=given["role"],
            password=given["password"],
            create=given["create"],
        )
        row = _member_rows(project, given["username"].strip())[0]
        return Response(MemberSerializer(row).data, status=status.HTTP_201_CREATED)


class MemberDetailApi(ApiView):
    """One member of the project (admins): change the role, or take them off the project."""

    class InputSerializer(serializers.Serializer):
        role = serializers.ChoiceField(choices=Role.choices, required=False)
        active = serializers.BooleanField(
            required=False,
            help_text="Deactivate (false) or reactivate the account: site admins only.",
        )

        class Meta:
            ref_name = "MemberRoleInput"

    def _member(self, request: Request, slug: str, username: str) -> Any:
        project = annotate_selectors.project_get_for_user(
            user=request.user, slug=slug, min_role=Role.ADMIN
        )
        member = get_object_or_404(
            annotate_selectors.project_members(project=project), user__username=username
        )
        return project, member

    @extend_schema(tags=[TAG_MEMBERS], request=InputSerializer, responses=MemberSerializer)
    def patch(self, request: Request, slug: str, username: str) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        project, member = self._member(request, slug, username)
        given = data.validated_data
        if "active" in given:
            if not annotate_selectors.user_is_site_admin(user=request.user):
                raise PermissionDenied("Site admins only.")
            annotate_services.account_set_active(user=member.user, active=given["active"])
        if "role" in given:
            annotate_services.membership_set(project=project, user=member.user, role=given["role"])
        return Response(MemberSerializer(_member_rows(project, username)[0]).data)

    @extend_schema(tags=[TAG_MEMBERS], responses={204: None})
    def delete(self, request: Request, slug: str, username: str) -> Response:
        project, member = self._member(request, slug, username)
        annotate_services.member_remove(project=project, user=member.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
