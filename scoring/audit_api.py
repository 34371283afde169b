"""REST API of the PRM audit (reviewers): a scorer's report against gold, and the audit queue."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from annotate.api import ApiView

from . import audit


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
    step_index = serializers.IntegerField()
    gold = serializers.IntegerField()
    score = serializers.FloatField()
    severity = serializers.FloatField()


class AuditReportSerializer(serializers.Serializer):
    project = serializers.CharField()
    scorer = serializers.CharField()
    scorer_version = serializers.IntegerField()
    threshold = serializers.FloatField()
    traces = serializers.IntegerField()
    steps = serializers.IntegerField()
    gold_steps = serializers.IntegerField()
    processbench = ProcessBenchSerializer()
    prmbench = PRMBenchSerializer()
    auroc = serializers.FloatField(allow_null=True)
    ece = serializers.FloatField(allow_null=True)
    calibration = serializers.ListField(child=serializers.DictField())
    roc = serializers.DictField(child=serializers.ListField(child=serializers.FloatField()))
    best_threshold = BestThresholdSerializer()
    f1_curve = serializers.DictField(
        child=serializers.ListField(child=serializers.FloatField(allow_null=True))
    )
    best_of_n = serializers.DictField(child=serializers.DictField())
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
