"""REST API of the model side: scorers, a trace's live scores, enqueue/retry/backfill, imported scores."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from annotate import selectors as annotate_selectors
from annotate.api import ApiView
from annotate.models import Role, StepPart

from . import selectors, services
from .models import Backend, RunQueue, Scorer, ScoreRun


class ScorerSerializer(serializers.ModelSerializer):
    """A scorer as `context["user"]` may see it: parameters for site admins only (null for others),
    and only the projects the user is a member of."""

    projects = serializers.SerializerMethodField()
    params = serializers.SerializerMethodField()

    def get_projects(self, scorer: Scorer) -> list[str]:
        return selectors.scorer_projects_visible(user=self.context["user"], scorer=scorer)

    def get_params(self, scorer: Scorer) -> dict[str, Any] | None:
        if annotate_selectors.user_is_site_admin(user=self.context["user"]):
            return scorer.params
        return None

    class Meta:
        model = Scorer
        fields = [
            "id",
            "name",
            "backend",
            "model_path",
            "revision",
            "params",
            "version",
            "threshold",
            "projects",
        ]
        read_only_fields = fields


class StepScoreOutSerializer(serializers.Serializer):
    step_index = serializers.IntegerField()
    part = serializers.ChoiceField(
        choices=StepPart.choices, help_text="The step's part of the trace."
    )
    score = serializers.FloatField()
    details = serializers.DictField()


class RunOutSerializer(serializers.Serializer):
    scorer = serializers.CharField()
    scorer_version = serializers.IntegerField()
    run_id = serializers.IntegerField(allow_null=True)
    status = serializers.CharField(
        help_text="missing, not imported (an external scorer without scores for this trace), "
        "queued, running, done or failed"
    )
    error = serializers.CharField()
    trajectory_score = serializers.FloatField(
        allow_null=True, help_text="The scorer's score of the whole trace, if it gives one."
    )
    response_score = serializers.FloatField(
        allow_null=True,
        help_text="Of a trajectory-response trace: the score of its response part alone, "
        "if the scorer gives one.",
    )
    steps = StepScoreOutSerializer(many=True)


class TraceScoresOutSerializer(serializers.Serializer):
    trace_id = serializers.IntegerField()
    hidden = serializers.BooleanField(help_text="Blind project: hidden until you submit.")
    finished = serializers.BooleanField()
    workers_alive = serializers.IntegerField()
    runs = RunOutSerializer(many=True)


def _require_site_admin(request: Request) -> None:
    if not annotate_selectors.user_is_site_admin(user=request.user):
        raise PermissionDenied("Only a site admin can register or change scorers.")


def _scores_payload(request: Request, trace_id: int) -> dict[str, Any]:
    view = selectors.trace_scores(user=request.user, trace_id=trace_id)
    index = {step.pk: step.index for step in view.steps}
    part = {step.pk: step.part for step in view.steps}
    return {
        "trace_id": view.trace.pk,
        "hidden": view.hidden,
        "finished": view.finished,
        "workers_alive": len(view.workers),
        "runs": [
            {
                "scorer": p.scorer.name,
                "scorer_version": p.scorer.version,
                "run_id": p.run.pk if p.run else None,
                "status": p.status,
                "error": p.run.error if p.run else "",
                "trajectory_score": None if (view.hidden or not p.run) else p.run.trajectory_score,
                "response_score": None if (view.hidden or not p.run) else p.run.response_score,
                "steps": sorted(
                    (
                        {
                            "step_index": index[s.step_id],
                            "part": part[s.step_id],
                            "score": s.score,
                            "details": s.details,
                        }
                        for s in p.scores.values()
                    ),
                    key=lambda row: row["step_index"],
                ),
            }
            for p in view.panels
        ],
    }


class ScorerListApi(ApiView):
    class InputSerializer(serializers.Serializer):
        name = serializers.SlugField()
        backend = serializers.ChoiceField(choices=Backend.choices)
        model_path = serializers.CharField(required=False, default="", allow_blank=True)
        revision = serializers.CharField(required=False, default="", allow_blank=True)
        params = serializers.DictField(required=False, default=dict)
        threshold = serializers.FloatField(required=False, default=0.5, min_value=0, max_value=1)
        projects = serializers.ListField(
            child=serializers.SlugField(), required=False, default=list
        )

        class Meta:
            ref_name = "ScorerCreateInput"

    @extend_schema(operation_id="scorers_list", responses=ScorerSerializer(many=True))
    def get(self, request: Request) -> Response:
        scorers = selectors.scorer_list_for_user(user=request.user)
        return Response(ScorerSerializer(scorers, many=True, context={"user": request.user}).data)

    @extend_schema(
        operation_id="scorers_create", request=InputSerializer, responses={201: ScorerSerializer}
    )
    def post(self, request: Request) -> Response:
        _require_site_admin(request)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        payload = dict(data.validated_data)
        projects = [
            annotate_selectors.project_get_for_user(user=request.user, slug=slug)
            for slug in payload.pop("projects")
        ]
        scorer = services.scorer_create(**payload, projects=projects)
        return Response(
            ScorerSerializer(scorer, context={"user": request.user}).data,
            status=status.HTTP_201_CREATED,
        )


class TraceScoresApi(ApiView):
    @extend_schema(operation_id="trace_scores", responses=TraceScoresOutSerializer)
    def get(self, request: Request, trace_id: int) -> Response:
        return Response(TraceScoresOutSerializer(_scores_payload(request, trace_id)).data)


class TraceScoresEnqueueApi(ApiView):
    @extend_schema(
        operation_id="trace_scores_enqueue",
        request=None,
        responses={202: TraceScoresOutSerializer},
        description="Enqueue the project's missing score runs for this trace on the interactive queue.",
    )
    def post(self, request: Request, trace_id: int) -> Response:
        trace = annotate_selectors.trace_get_for_user(user=request.user, trace_id=trace_id)
        scorers = list(selectors.scorers_for_project(project=trace.project))
        services.score_runs_enqueue(traces=[trace], scorers=scorers, queue=RunQueue.INTERACTIVE)
        return Response(
            TraceScoresOutSerializer(_scores_payload(request, trace_id)).data,
            status=status.HTTP_202_ACCEPTED,
        )


class RunRetryApi(ApiView):
    @extend_schema(
        operation_id="score_run_retry", request=None, responses={202: TraceScoresOutSerializer}
    )
    def post(self, request: Request, run_id: int) -> Response:
        run = get_object_or_404(ScoreRun, pk=run_id)
        annotate_selectors.trace_get_for_user(user=request.user, trace_id=run.trace_id)
        services.score_run_retry(run=run)
        return Response(
            TraceScoresOutSerializer(_scores_payload(request, run.trace_id)).data,
            status=status.HTTP_202_ACCEPTED,
        )


class ProjectBackfillApi(ApiView):
    class InputSerializer(serializers.Serializer):
        scorer = serializers.CharField()
        retry_failed = serializers.BooleanField(required=False, default=False)

        class Meta:
            ref_name = "BackfillInput"

    class OutputSerializer(serializers.Serializer):
        enqueued = serializers.IntegerField()

        class Meta:
            ref_name = "BackfillOutput"

    @extend_schema(
        operation_id="project_score_backfill",
        request=InputSerializer,
        responses={202: OutputSerializer},
    )
    def post(self, request: Request, slug: str) -> Response:
        project = annotate_selectors.project_get_for_user(
            user=request.user, slug=slug, min_role=Role.ADMIN
        )
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        scorer = get_object_or_404(
            selectors.scorers_for_project(project=project), name=data.validated_data["scorer"]
        )
        runs = services.project_backfill(
            project=project, scorer=scorer, retry_failed=data.validated_data["retry_failed"]
        )
        return Response({"enqueued": len(runs)}, status=status.HTTP_202_ACCEPTED)


class ScoresImportApi(ApiView):
    """Scores computed elsewhere, all or nothing (project admins). A scorer name not registered
    yet becomes an external scorer of the project: never run here, versioned by import."""

    parser_classes = [MultiPartParser, FormParser]

    class InputSerializer(serializers.Serializer):
        project = serializers.SlugField()
        scorer = serializers.CharField(
            help_text="A registered scorer, or a new name (registered as an external scorer)."
        )
        file = serializers.FileField()

        class Meta:
            ref_name = "ScoresImportInput"

    class OutputSerializer(serializers.Serializer):
        runs_written = serializers.IntegerField()
        steps_scored = serializers.IntegerField()
        scorer = serializers.CharField()
        scorer_version = serializers.IntegerField(
            help_text="The version the scores were written to."
        )

        class Meta:
            ref_name = "ScoresImportOutput"

    @extend_schema(
        operation_id="scores_import",
        request={"multipart/form-data": InputSerializer},
        responses={
            201: OutputSerializer,
            400: OpenApiResponse(description="Malformed file; nothing written."),
        },
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        project = annotate_selectors.project_get_for_user(
            user=request.user, slug=data.validated_data["project"], min_role=Role.ADMIN
        )
        upload = data.validated_data["file"]
        try:
            result = services.scores_import_by_name(
                project=project,
                scorer_name=data.validated_data["scorer"],
                stream=upload,
                filename=upload.name,
            )
        except services.ScoresFileError as exc:
            return Response(
                {"detail": str(exc), "file": exc.file, "line": exc.line, "field": exc.field},
                status=status.HTTP_400_BAD_REQUEST,
            )
        assert result.scorer is not None
        return Response(
            {
                "runs_written": result.runs_written,
                "steps_scored": result.steps_scored,
                "scorer": result.scorer.name,
                "scorer_version": result.scorer.version,
            },
            status=status.HTTP_201_CREATED,
        )


class ScorerRegisterSerializer(serializers.Serializer):
    """A new scorer for one project: the Scorers page's form, `POST /api/projects/{slug}/scorers/`."""

    name = serializers.SlugField()
    backend = serializers.ChoiceField(choices=Backend.choices)
    model_path = serializers.CharField(required=False, default="", allow_blank=True)
    revision = serializers.CharField(required=False, default="", allow_blank=True)
    params = serializers.DictField(
        required=False,
        default=dict,
        help_text="The backend's parameters (docs/engine.md), checked by the backend's own "
        "parser; no secrets (a remote server's key: `api_key_env` names the workers' "
        "environment variable).",
    )
    threshold = serializers.FloatField(required=False, default=0.5, min_value=0, max_value=1)

    class Meta:
        ref_name = "ProjectScorerCreateInput"


class ProjectScorersApi(ApiView):
    class InputSerializer(serializers.Serializer):
        scorers = serializers.ListField(child=serializers.CharField())

        class Meta:
            ref_name = "ProjectScorersInput"

    @extend_schema(operation_id="project_scorers_list", responses=ScorerSerializer(many=True))
    def get(self, request: Request, slug: str) -> Response:
        project = annotate_selectors.project_get_for_user(user=request.user, slug=slug)
        return Response(
            ScorerSerializer(
                selectors.scorers_for_project(project=project),
                many=True,
                context={"user": request.user},
            ).data
        )

    @extend_schema(
        operation_id="project_scorers_set",
        request=InputSerializer,
        responses=ScorerSerializer(many=True),
        description="Project admins: choose the scorers of this project (replaces the choice).",
    )
    def put(self, request: Request, slug: str) -> Response:
        project = annotate_selectors.project_get_for_user(
            user=request.user, slug=slug, min_role=Role.ADMIN
        )
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        names = data.validated_data["scorers"]
        available = selectors.scorers_to_choose_from(user=request.user, project=project)
        found = {s.name: s for s in available.filter(name__in=names)}
        missing = sorted(set(names) - set(found))
        if missing:
            raise serializers.ValidationError({"scorers": f"unknown scorers: {', '.join(missing)}"})
        chosen = services.project_scorers_set(project=project, scorers=found.values())
        return Response(ScorerSerializer(chosen, many=True, context={"user": request.user}).data)

    @extend_schema(
        operation_id="project_scorers_create",
        request=ScorerRegisterSerializer,
        responses={201: ScorerSerializer},
        description="Project admins register a `tool` or `external` scorer for the project; "
        "site admins any backend. A 400 names the parameter at fault.",
    )
    def post(self, request: Request, slug: str) -> Response:
        project = annotate_selectors.project_get_for_user(
            user=request.user, slug=slug, min_role=Role.ADMIN
        )
        data = ScorerRegisterSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        selectors.scorer_backend_check(
            user=request.user, project=project, backend=data.validated_data["backend"]
        )
        scorer = services.scorer_create(**data.validated_data, projects=[project])
        return Response(
            ScorerSerializer(scorer, context={"user": request.user}).data,
            status=status.HTTP_201_CREATED,
        )


class CoverageSerializer(serializers.Serializer):
    scorer = serializers.CharField(source="scorer.name")
    version = serializers.IntegerField(source="scorer.version")
    traces = serializers.IntegerField()
    done = serializers.IntegerField()
    queued = serializers.IntegerField(help_text="Queued or running.")
    failed = serializers.IntegerField()
    not_yet = serializers.IntegerField()


class ProjectCoverageApi(ApiView):
    """Per scorer of the project (admins): traces scored, queued or running, failed, not yet.
    `POST /api/projects/{slug}/score/` is the "Score all" that fills the gaps."""

    @extend_schema(responses=CoverageSerializer(many=True))
    def get(self, request: Request, slug: str) -> Response:
        project = annotate_selectors.project_get_for_user(
            user=request.user, slug=slug, min_role=Role.ADMIN
        )
        return Response(
            CoverageSerializer(selectors.scorer_coverage(project=project), many=True).data
        )
