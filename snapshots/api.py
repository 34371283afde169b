"""REST API of exports: create a snapshot (queued, built by a worker), list, detail, download a file."""

from __future__ import annotations

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response

from annotate.api import ApiView
from annotate.formats.exporters.base import NEUTRAL_CHOICES

from . import selectors, services
from .models import ExportFileFormat, ExportFormat, ExportSnapshot, ExportStatus, LabelPolicy

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
        seed = serializers.IntegerField(min_value=0, default=0)
        subsets = serializers.ListField(child=serializers.CharField(), required=False)
        sources = serializers.ListField(child=serializers.CharField(), required=False)
        include_flagged = serializers.BooleanField(default=False)
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
            for key in ("subsets", "sources", "include_flagged")
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


class ExportFileApi(ApiView):
    """Download one file of a finished snapshot: a data file, README.md or SHA256SUMS."""

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
        name = f"{snapshot.project.slug}-{snapshot.name}-v{snapshot.version}-{filename}"
        return FileResponse(path.open("rb"), as_attachment=True, filename=name)
