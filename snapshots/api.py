"""REST API of snapshots: exports (create, list, detail, download a file) and training runs
(start, progress, cancel, restart, promote; the live scorer and its log)."""

from __future__ import annotations

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response

from annotate.api import ApiView
from annotate.formats.exporters.base import NEUTRAL_CHOICES
from annotate.models import Role

from . import selectors, services, training
from .models import (
    ExportFileFormat,
    ExportFormat,
    ExportSnapshot,
    ExportStatus,
    LabelPolicy,
    ScorerPromotion,
    TrainingRun,
    TrainingStatus,
)

TAG_EXPORTS = "exports"


class ExportFileSerializer(serializers.Serializer):
    name = serializers.CharField()
    split = serializers.CharField()
    rows = serializers.IntegerField()
    bytes = serializers.IntegerField()
    sha256 = serializers.CharField()

    class Meta:
        ref_name = "ExportFile"


class ExportSnapshotSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    # Plain strings here (the values are in the help): as enums they would collide with other
    # `format` / `status` choice sets of the API in the schema's enum names.
    format = serializers.CharField(
        read_only=True, help_text=f"One of: {', '.join(ExportFormat.values)}."
    )
    status = serializers.CharField(
        read_only=True, help_text=f"One of: {', '.join(ExportStatus.values)}."
    )
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    files = ExportFileSerializer(many=True, read_only=True)
    row_counts = serializers.DictField(child=serializers.IntegerField(), read_only=True)
    stats = serializers.DictField(read_only=True, help_text="Counts, label balance, agreement.")
    filters = serializers.DictField(read_only=True)
    options = serializers.DictField(read_only=True)

    class Meta:
        model = ExportSnapshot
        ref_name = "ExportSnapshot"
        fields = [
            "id",
            "project",
            "name",
            "version",
            "format",
            "file_format",
            "labels",
            "min_agreement",
            "neutral",
            "test_fraction",
            "seed",
            "filters",
            "options",
            "identities",
            "status",
            "progress_done",
            "progress_total",
            "row_counts",
            "stats",
            "files",
            "sha256",
            "card",
            "error",
            "created_by",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields


class ExportListApi(ApiView):
    """A project's export snapshots, newest first (reviewers and admins); POST queues a new one."""

    class InputSerializer(serializers.Serializer):
        name = serializers.SlugField(
            max_length=100, help_text="Reusing a name makes a new version."
        )
        format = serializers.ChoiceField(choices=ExportFormat.choices)
        file_format = serializers.ChoiceField(
            choices=ExportFileFormat.choices, default=ExportFileFormat.JSONL
        )
        labels = serializers.ChoiceField(choices=LabelPolicy.choices, default=LabelPolicy.GOLD)
        min_agreement = serializers.FloatField(min_value=0.0, max_value=1.0, default=0.0)
        neutral = serializers.ChoiceField(
            choices=[c for c in NEUTRAL_CHOICES if c],
            required=False,
            help_text="How neutral (0) labels map; required when there are any and the format "
            "has no neutral value.",
        )
        test_fraction = serializers.FloatField(min_value=0.0, max_value=0.99, default=0.0)
        seed = serializers.IntegerField(min_value=0, max_value=2**31 - 1, default=0)
        subsets = serializers.ListField(child=serializers.CharField(), required=False)
        sources = serializers.ListField(child=serializers.CharField(), required=False)
        include_flagged = serializers.BooleanField(default=False)
        traces = serializers.ListField(
            child=serializers.IntegerField(min_value=1),
            required=False,
            help_text="Only these trace ids (e.g. a data browser selection: "
            "GET /api/projects/{slug}/data/ with the filter).",
        )
        identities = serializers.BooleanField(
            default=False,
            help_text="Opt in: the exporter's name in the card, annotators' submission times and "
            "active seconds in the rows (withheld by default; docs/exports.md).",
        )
        options = serializers.DictField(
            required=False,
            help_text="sft only: {select: labels|scorer, scorer, aggregation, top_k}.",
        )

        class Meta:
            ref_name = "ExportCreateInput"

    @extend_schema(tags=[TAG_EXPORTS], responses=ExportSnapshotSerializer(many=True))
    def get(self, request: Request, slug: str) -> Response:
        project = selectors.project_for_export(user=request.user, slug=slug)
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(
            selectors.export_list_for_user(user=request.user, project=project), request, view=self
        )
        return paginator.get_paginated_response(ExportSnapshotSerializer(page, many=True).data)

    @extend_schema(
        tags=[TAG_EXPORTS],
        request=InputSerializer,
        responses={
            202: ExportSnapshotSerializer,
            400: OpenApiResponse(description="Refused, e.g. neutral labels and no `neutral`."),
            403: OpenApiResponse(description="An annotator of the project."),
            404: OpenApiResponse(description="No such project (or not yours)."),
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        project = selectors.project_for_export(user=request.user, slug=slug)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        filters = {
            key: values.pop(key)
            for key in ("subsets", "sources", "include_flagged", "traces")
            if key in values
        }
        snapshot = services.export_snapshot_create(
            project=project, user=request.user, filters=filters, **values
        )
        return Response(ExportSnapshotSerializer(snapshot).data, status=status.HTTP_202_ACCEPTED)


class ExportDetailApi(ApiView):
    """One snapshot: status and progress while it builds; files, sha256 and card once done."""

    @extend_schema(tags=[TAG_EXPORTS], responses=ExportSnapshotSerializer)
    def get(self, request: Request, snapshot_id: int) -> Response:
        snapshot = selectors.export_get_for_user(user=request.user, snapshot_id=snapshot_id)
        return Response(ExportSnapshotSerializer(snapshot).data)


class ExportActionApi(ApiView):
    """cancel: stop a queued or running build (it ends failed, "cancelled"); retry: build a failed
    one again (the same version). The project's reviewers and admins."""

    @extend_schema(tags=[TAG_EXPORTS], request=None, responses=ExportSnapshotSerializer)
    def post(self, request: Request, snapshot_id: int, action: str) -> Response:
        snapshot = selectors.export_get_for_user(user=request.user, snapshot_id=snapshot_id)
        if action == "cancel":
            snapshot = services.export_snapshot_cancel(snapshot=snapshot, user=request.user)
        else:
            snapshot = services.export_snapshot_retry(snapshot=snapshot)
        return Response(ExportSnapshotSerializer(snapshot).data)


class ExportFileApi(ApiView):
    """Download one file of a finished snapshot: a data file, an image file its rows reference
    (`images/<sha256>.<ext>`, listed in SHA256SUMS), README.md or SHA256SUMS."""

    @extend_schema(
        tags=[TAG_EXPORTS],
        responses={
            (200, "application/octet-stream"): OpenApiTypes.BINARY,
            404: OpenApiResponse(description="No such file, or the export is not done."),
        },
    )
    def get(self, request: Request, snapshot_id: int, filename: str) -> FileResponse:
        snapshot = selectors.export_get_for_user(user=request.user, snapshot_id=snapshot_id)
        path = selectors.export_file_path(snapshot=snapshot, filename=filename)
        name = selectors.export_download_name(snapshot=snapshot, filename=filename)
        return FileResponse(path.open("rb"), as_attachment=True, filename=name)


# --- training PRMs (docs/training.md) -------------------------------------------------------------

TAG_TRAINING = "training"


class TrainingRunSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    snapshot = serializers.SerializerMethodField()
    status = serializers.CharField(
        read_only=True, help_text=f"One of: {', '.join(TrainingStatus.values)}."
    )
    scorer = serializers.SlugRelatedField(slug_field="name", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    stale = serializers.SerializerMethodField(help_text="Running, but its worker stopped.")
    params = serializers.DictField(read_only=True)
    loss_curve = serializers.ListField(child=serializers.DictField(), read_only=True)
    metrics = serializers.DictField(read_only=True, help_text="test (and previous) figures.")
    learning_curve = serializers.ListField(child=serializers.DictField(), read_only=True)
    result = serializers.DictField(read_only=True)

    def get_snapshot(self, run: TrainingRun) -> str:
        return f"{run.snapshot.name}@{run.snapshot.version}"

    def get_stale(self, run: TrainingRun) -> bool:
        return training.is_stale(run)

    class Meta:
        model = TrainingRun
        ref_name = "TrainingRun"
        fields = [
            "id",
            "project",
            "snapshot",
            "base",
            "scorer_name",
            "params",
            "curve",
            "status",
            "stale",
            "cancel_requested",
            "progress_done",
            "progress_total",
            "loss_curve",
            "log",
            "error",
            "result",
            "metrics",
            "learning_curve",
            "output_path",
            "scorer",
            "scorer_version",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class TrainingRunListApi(ApiView):
    """A project's training runs (reviewers and admins); start one (admins)."""

    class InputSerializer(serializers.Serializer):
        snapshot = serializers.CharField(help_text="NAME or NAME@VERSION of a TRL JSONL snapshot.")
        base = serializers.CharField(help_text="'tiny' or an absolute local model directory.")
        scorer = serializers.SlugField(help_text="The scorer the result becomes a version of.")
        params = serializers.DictField(
            required=False,
            default=dict,
            help_text="epochs, learning_rate, batch_tokens, max_length, seed, head "
            "(token_classification | qwen_extra0), ... (docs/training.md).",
        )
        curve = serializers.BooleanField(default=False, help_text="Also 25/50/75% of train.")

        class Meta:
            ref_name = "TrainingRunCreateInput"

    @extend_schema(tags=[TAG_TRAINING], responses=TrainingRunSerializer(many=True))
    def get(self, request: Request, slug: str) -> Response:
        project = training.project_for_training(
            user=request.user, slug=slug, min_role=Role.REVIEWER
        )
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(
            training.training_run_list_for_user(user=request.user, project=project),
            request,
            view=self,
        )
        return paginator.get_paginated_response(TrainingRunSerializer(page, many=True).data)

    @extend_schema(
        tags=[TAG_TRAINING],
        request=InputSerializer,
        responses={202: TrainingRunSerializer, 400: OpenApiResponse(description="Refused.")},
    )
    def post(self, request: Request, slug: str) -> Response:
        project = training.project_for_training(user=request.user, slug=slug)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        run = training.training_run_create(
            user=request.user,
            project=project,
            snapshot=values["snapshot"],
            base=values["base"],
            scorer_name=values["scorer"],
            params=values["params"],
            curve=values["curve"],
        )
        return Response(TrainingRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class TrainingRunDetailApi(ApiView):
    """One run: status, progress and loss curve while it trains; figures and scorer once done."""

    @extend_schema(tags=[TAG_TRAINING], responses=TrainingRunSerializer)
    def get(self, request: Request, training_run_id: int) -> Response:
        run = training.training_run_get_for_user(user=request.user, run_id=training_run_id)
        return Response(TrainingRunSerializer(run).data)


class TrainingRunActionApi(ApiView):
    """cancel or restart a run (project admins); promote its scorer version (reviewers, admins)."""

    @extend_schema(
        tags=[TAG_TRAINING],
        request=None,
        responses={200: TrainingRunSerializer, 201: TrainingRunSerializer},
    )
    def post(self, request: Request, training_run_id: int, action: str) -> Response:
        run = training.training_run_get_for_user(user=request.user, run_id=training_run_id)
        if action == "promote":
            training.project_for_training(
                user=request.user, slug=run.project.slug, min_role=training.PROMOTE_MIN_ROLE
            )
            if run.scorer is None:
                raise serializers.ValidationError({"run": "this run produced no scorer version"})
            training.scorer_promote(
                project=run.project, scorer=run.scorer, user=request.user, run=run
            )
            return Response(TrainingRunSerializer(run).data)
        training.project_for_training(user=request.user, slug=run.project.slug)
        if action == "cancel":
            return Response(TrainingRunSerializer(training.training_run_cancel(run=run)).data)
        if action == "restart":
            new = training.training_run_restart(run=run, user=request.user)
            return Response(TrainingRunSerializer(new).data, status=status.HTTP_201_CREATED)
        raise NotFound("No such action (cancel, restart, promote).")


class PromotionSerializer(serializers.ModelSerializer):
    scorer = serializers.SlugRelatedField(slug_field="name", read_only=True)
    by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    metrics = serializers.DictField(read_only=True)

    class Meta:
        model = ScorerPromotion
        ref_name = "ScorerPromotion"
        fields = ["id", "scorer", "scorer_version", "action", "training_run", "metrics", "by", "at"]
        read_only_fields = fields


class LiveScorerApi(ApiView):
    """The project's live scorer and its promotion log (GET); demote it (DELETE)."""

    @extend_schema(tags=[TAG_TRAINING], responses=PromotionSerializer(many=True))
    def get(self, request: Request, slug: str) -> Response:
        project = training.project_for_training(
            user=request.user, slug=slug, min_role=Role.REVIEWER
        )
        return Response(PromotionSerializer(project.promotions.all()[:100], many=True).data)

    @extend_schema(tags=[TAG_TRAINING], request=None, responses=PromotionSerializer)
    def delete(self, request: Request, slug: str) -> Response:
        project = training.project_for_training(
            user=request.user, slug=slug, min_role=training.PROMOTE_MIN_ROLE
        )
        return Response(
            PromotionSerializer(training.scorer_demote(project=project, user=request.user)).data
        )
