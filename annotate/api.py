"""REST API views: one small APIView per operation, each parsing input and calling one service."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.http import Http404
from django.middleware.csrf import get_token
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from . import import_jobs, imports, selectors, services, tokens
from .models import (
    Annotation,
    FinishReason,
    ImportJob,
    ImportStatus,
    LabelScheme,
    Project,
    Role,
    Trace,
)
from .rendering import render_markdown, short_trace_id
from .selectors import MY_STATUS_NEW
from .serializers import (
    LABEL_VALUE_CHOICES,
    MY_STATUS_CHOICES,
    AnnotationSerializer,
    ProjectDetailSerializer,
    ProjectSerializer,
    StepLabelSerializer,
    TraceDetailSerializer,
    TraceListItemSerializer,
)
from .tokens import HashedTokenAuthentication


def _validation_detail(exc: DjangoValidationError) -> Any:
    return exc.message_dict if hasattr(exc, "error_dict") else exc.messages


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus: a service's django ValidationError is the client's mistake (400)."""
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(detail=_validation_detail(exc))
    return drf_exception_handler(exc, context)


class ApiView(APIView):
    """Base of every steplens API view (IsAuthenticated by default: see settings)."""

    # Token first: an anonymous client is answered 401 with `WWW-Authenticate: Token`, not 403.
    # Session authentication still enforces CSRF on every write.
    authentication_classes = [HashedTokenAuthentication, SessionAuthentication]

    def get_exception_handler(self) -> Any:
        return exception_handler


def _paginated(view: APIView, request: Request, queryset: Any, serializer: type) -> Response:
    paginator = LimitOffsetPagination()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer(page, many=True).data)


def trace_detail_response(request: Request, trace: Trace) -> Response:
    detail = selectors.trace_detail_for_user(user=request.user, trace=trace)
    return Response(TraceDetailSerializer(detail).data)


def _my_annotation(request: Request, trace: Trace) -> Response:
    annotation = selectors.annotation_mine(user=request.user, trace=trace)
    if annotation is None:
        # Reading must not create a row: a stand-in with the shape of a fresh annotation.
        annotation = SimpleNamespace(
            id=None,
            trace_id=trace.pk,
            annotator=request.user,
            status=MY_STATUS_NEW,
            finish_reason="",
            active_seconds=0.0,
            imported=False,
            started_at=None,
            submitted_at=None,
            revealed_at=None,
            labels=[],
        )
    return Response(AnnotationSerializer(annotation).data)


# Sections of the docs page.
TAG_AUTH = "auth"
TAG_PROJECTS = "projects"
TAG_TRACES = "traces"
TAG_LABELS = "labels"
TAG_IMPORTS = "imports"


# --- auth -----------------------------------------------------------------------------------------


class TokenCreateApi(ApiView):
    """Exchange a username and password for a new API token (shown this once; it expires after
    STEPLENS_API_TOKEN_DAYS, and a password change revokes it)."""

    authentication_classes: list = []  # a password, not a session: no CSRF dance for scripts
    permission_classes = [AllowAny]

    class InputSerializer(serializers.Serializer):
        username = serializers.CharField()
        password = serializers.CharField(style={"input_type": "password"}, trim_whitespace=False)
        name = serializers.CharField(
            required=False, default="api", max_length=100, help_text="To tell tokens apart."
        )

        class Meta:
            ref_name = "TokenCreateInput"

    class OutputSerializer(serializers.Serializer):
        token = serializers.CharField(help_text="Send as `Authorization: Token <token>`.")

        class Meta:
            ref_name = "TokenCreateOutput"

    @extend_schema(
        tags=[TAG_AUTH],
        auth=[],
        request=InputSerializer,
        responses={200: OutputSerializer, 400: OpenApiResponse(description="Wrong credentials.")},
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        name = values.pop("name")
        user = authenticate(request=request._request, **values)
        if user is None:  # inactive users (imported labelers) are refused here too
            raise exceptions.ValidationError({"detail": "Unable to log in with these credentials."})
        return Response({"token": tokens.api_token_create(user=user, name=name)})


class TokenSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    key_prefix = serializers.CharField(help_text="The token's first characters, to recognise it.")
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "ApiToken"


class TokenListApi(ApiView):
    """Your API tokens (never the tokens themselves: steplens keeps their hashes only)."""

    @extend_schema(tags=[TAG_AUTH], responses=TokenSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(
            TokenSerializer(tokens.api_token_list_for_user(user=request.user), many=True).data
        )


class TokenDetailApi(ApiView):
    @extend_schema(
        tags=[TAG_AUTH], responses={204: None, 404: OpenApiResponse(description="Not yours.")}
    )
    def delete(self, request: Request, token_id: int) -> Response:
        """Revoke one of your tokens."""
        tokens.api_token_revoke(user=request.user, token_id=token_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- projects -------------------------------------------------------------------------------------


class ProjectListApi(ApiView):
    """The projects you are a member of (all of them for a site admin), with your role."""

    pagination_class = LimitOffsetPagination

    @extend_schema(tags=[TAG_PROJECTS], responses=ProjectSerializer(many=True))
    def get(self, request: Request) -> Response:
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(
            selectors.project_list_for_user(user=request.user), request, view=self
        )
        roles = selectors.project_roles_for_user(user=request.user, projects=page)
        for project in page:
            project.my_role = roles.get(project.pk)
        return paginator.get_paginated_response(ProjectSerializer(page, many=True).data)

    class CreateSerializer(serializers.Serializer):
        slug = serializers.SlugField(max_length=100)
        name = serializers.CharField(max_length=200, required=False, default="")
        guidelines = serializers.CharField(required=False, allow_blank=True, default="")
        label_scheme = serializers.ChoiceField(
            choices=LabelScheme.choices, default=LabelScheme.TERNARY
        )
        overlap = serializers.IntegerField(min_value=1, max_value=20, default=1)
        blind = serializers.BooleanField(default=False)

        class Meta:
            ref_name = "ProjectCreateInput"

    @extend_schema(
        tags=[TAG_PROJECTS], request=CreateSerializer, responses={201: ProjectDetailSerializer}
    )
    def post(self, request: Request) -> Response:
        """Create a project (site admins)."""
        if not selectors.user_is_site_admin(user=request.user):
            raise PermissionDenied("Site admins only.")
        data = self.CreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        project = services.project_create(**data.validated_data)
        return Response(_project_detail(request, project).data, status=status.HTTP_201_CREATED)


def _project_detail(request: Request, project: Project) -> ProjectDetailSerializer:
    project.my_role = selectors.project_role(user=request.user, project=project)
    project.my_progress = selectors.labelling_progress(user=request.user, project=project)
    # The kept count (annotate.counts), read afresh: counting the project's traces here cost a
    # scan of every trace (125,000 rows a call on the million-step database).
    project.trace_count = (
        Project.objects.filter(pk=project.pk).values_list("trace_count", flat=True).get()
    )
    return ProjectDetailSerializer(project)


class ProjectDetailApi(ApiView):
    """A project: label scheme, overlap, blind flag, guidelines, your role and your progress."""

    @extend_schema(tags=[TAG_PROJECTS], responses=ProjectDetailSerializer)
    def get(self, request: Request, slug: str) -> Response:
        project = selectors.project_get_for_user(user=request.user, slug=slug)
        return Response(_project_detail(request, project).data)

    class UpdateSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200, required=False)
        guidelines = serializers.CharField(required=False, allow_blank=True)
        label_scheme = serializers.ChoiceField(
            choices=LabelScheme.choices,
            required=False,
            help_text="Refused (400) once the project has labels.",
        )
        overlap = serializers.IntegerField(min_value=1, max_value=20, required=False)
        blind = serializers.BooleanField(required=False)
        hotkeys = serializers.JSONField(
            required=False,
            help_text='{"keys": {action: key}, "names": {"1"|"0"|"-1": name}}; {} for defaults.',
        )
        image_hosts = serializers.ListField(
            child=serializers.CharField(max_length=253),
            required=False,
            max_length=20,
            help_text="https hosts this project's problem images may load from (host names; [] "
            "for none, the default).",
        )

        class Meta:
            ref_name = "ProjectUpdateInput"

    @extend_schema(tags=[TAG_PROJECTS], request=UpdateSerializer, responses=ProjectDetailSerializer)
    def patch(self, request: Request, slug: str) -> Response:
        """Change the project's settings (its admins)."""
        project = selectors.project_get_for_user(user=request.user, slug=slug, min_role=Role.ADMIN)
        data = self.UpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.project_update(project=project, **data.validated_data)
        return Response(_project_detail(request, project).data)


class PreviewLegendSerializer(serializers.Serializer):
    action = serializers.CharField()
    key = serializers.CharField()
    description = serializers.CharField()

    class Meta:
        ref_name = "AnnotatorPreviewLegendRow"


class PreviewStepSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    part = serializers.CharField()
    text = serializers.CharField()
    html = serializers.CharField(help_text="Sanitised HTML, as the labelling page shows it.")

    class Meta:
        ref_name = "AnnotatorPreviewStep"


class PreviewTraceSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    short_id = serializers.CharField()
    problem = serializers.CharField()
    problem_html = serializers.CharField()
    reference_answer = serializers.CharField(allow_blank=True)
    final_answer = serializers.CharField(allow_blank=True)
    steps = PreviewStepSerializer(many=True)
    next_trace = serializers.IntegerField(
        allow_null=True, help_text="The project's next trace, to preview another."
    )

    class Meta:
        ref_name = "AnnotatorPreviewTrace"


class AnnotatorPreviewApi(ApiView):
    """What an annotator sees with the project's current settings (reviewers and admins): the
    guidelines, the label scheme with its names and keys, the keyboard legend, and a trace of the
    project as the labelling page shows it to an annotator who has not started it. Reads only: no
    label, annotation, lease or score run is made."""

    class QuerySerializer(serializers.Serializer):
        trace = serializers.IntegerField(
            required=False, min_value=1, help_text="A trace of the project (default: its first)."
        )

        class Meta:
            ref_name = "AnnotatorPreviewQuery"

    class OutputSerializer(serializers.Serializer):
        project = serializers.CharField()
        label_scheme = serializers.ChoiceField(choices=LabelScheme.choices)
        overlap = serializers.IntegerField()
        blind = serializers.BooleanField(help_text="PRM scores hidden until the annotator submits.")
        guidelines = serializers.CharField(allow_blank=True)
        guidelines_html = serializers.CharField(allow_blank=True)
        keys = serializers.DictField(child=serializers.CharField(), help_text="{action: key}")
        label_names = serializers.DictField(
            child=serializers.CharField(), help_text="{plus|zero|minus: name}"
        )
        legend = PreviewLegendSerializer(many=True)
        trace = PreviewTraceSerializer(allow_null=True, help_text="null when the project has none.")

        class Meta:
            ref_name = "AnnotatorPreview"

    @extend_schema(tags=[TAG_PROJECTS], parameters=[QuerySerializer], responses=OutputSerializer)
    def get(self, request: Request, slug: str) -> Response:
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        preview = selectors.annotator_preview(
            user=request.user, slug=slug, trace_id=query.validated_data.get("trace")
        )
        project = preview.project
        sample = preview.sample
        trace = None
        if sample is not None:
            trace = {
                "id": sample.trace.pk,
                "short_id": short_trace_id(sample.trace.external_id),
                "problem": sample.problem.text,
                "problem_html": str(render_markdown(sample.problem.text)),
                "reference_answer": sample.problem.reference_answer,
                "final_answer": sample.trace.final_answer,
                "steps": [
                    {
                        "index": view.step.index,
                        "part": view.step.part,
                        "text": view.step.text,
                        "html": str(render_markdown(view.step.text)),
                    }
                    for view in sample.steps
                ],
                "next_trace": preview.next_sample_id,
            }
        hotkeys = preview.hotkeys
        return Response(
            {
                "project": project.slug,
                "label_scheme": project.label_scheme,
                "overlap": project.overlap,
                "blind": project.blind,
                "guidelines": project.guidelines,
                "guidelines_html": str(render_markdown(project.guidelines)),
                "keys": hotkeys["keys"],
                "label_names": hotkeys["label_names"],
                "legend": [
                    {"action": action, "key": key, "description": what}
                    for action, key, what in hotkeys["legend"]
                ],
                "trace": trace,
            }
        )


# --- traces ---------------------------------------------------------------------------------------


class TraceListApi(ApiView):
    """A project's traces, in import order, with your own status on each."""

    pagination_class = LimitOffsetPagination

    class FilterSerializer(serializers.Serializer):
        subset = serializers.CharField(required=False, help_text="e.g. gsm8k, math.")
        source = serializers.CharField(required=False, help_text="Import format.")
        status = serializers.ChoiceField(
            choices=MY_STATUS_CHOICES, required=False, help_text="Your own status on the trace."
        )

        class Meta:
            ref_name = "TraceListFilter"

    @extend_schema(
        tags=[TAG_TRACES],
        parameters=[FilterSerializer],
        responses=TraceListItemSerializer(many=True),
    )
    def get(self, request: Request, slug: str) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        project = selectors.project_get_for_user(user=request.user, slug=slug)
        traces = selectors.trace_list_for_annotator(
            user=request.user, project=project, **filters.validated_data
        )
        return _paginated(self, request, traces, TraceListItemSerializer)


class TraceDetailApi(ApiView):
    """A trace: problem, reference answer, steps; gold labels for reviewers and admins only."""

    @extend_schema(tags=[TAG_TRACES], responses=TraceDetailSerializer)
    def get(self, request: Request, trace_id: int) -> Response:
        trace = selectors.trace_get_for_user(user=request.user, trace_id=trace_id)
        return trace_detail_response(request, trace)


# --- labels ---------------------------------------------------------------------------------------


class AnnotationMineApi(ApiView):
    """Your own annotation of the trace with its labels (status "new" before the first label)."""

    @extend_schema(
        tags=[TAG_LABELS],
        responses=AnnotationSerializer,
    )
    def get(self, request: Request, trace_id: int) -> Response:
        trace = selectors.trace_get_for_user(user=request.user, trace_id=trace_id)
        return _my_annotation(request, trace)


class StepLabelApi(ApiView):
    """Save your label of one step at once; the fields you do not send keep their saved value."""

    class InputSerializer(serializers.Serializer):
        value = serializers.ChoiceField(
            choices=LABEL_VALUE_CHOICES,
            allow_null=True,
            required=False,
            help_text="-1 wrong, 0 neutral (ternary only), 1 correct, null clears the rating.",
        )
        flagged = serializers.BooleanField(required=False)
        note = serializers.CharField(
            required=False, allow_blank=True, trim_whitespace=False, max_length=10_000
        )

        class Meta:
            ref_name = "StepLabelInput"

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if not attrs:
                raise serializers.ValidationError("Send at least one of value, flagged, note.")
            return attrs

    def _save(self, request: Request, trace_id: int, index: int) -> Response:
        # partial: a form-encoded body must not turn a missing `flagged` into False
        data = self.InputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        trace = selectors.trace_get_for_user(user=request.user, trace_id=trace_id)
        step = selectors.step_get(trace=trace, index=index)
        label = services.label_set(user=request.user, step=step, **data.validated_data)
        label.step_index = step.index
        return Response(StepLabelSerializer(label).data)

    @extend_schema(tags=[TAG_LABELS], request=InputSerializer, responses=StepLabelSerializer)
    def put(self, request: Request, trace_id: int, index: int) -> Response:
        return self._save(request, trace_id, index)

    @extend_schema(tags=[TAG_LABELS], request=InputSerializer, responses=StepLabelSerializer)
    def patch(self, request: Request, trace_id: int, index: int) -> Response:
        return self._save(request, trace_id, index)


class FirstErrorApi(ApiView):
    """Mark the first wrong step: earlier steps +1, this one -1, later ratings cleared; a label
    set by hand is kept (each label's `source` says who set it)."""

    class InputSerializer(serializers.Serializer):
        step_index = serializers.IntegerField(min_value=0)

        class Meta:
            ref_name = "FirstErrorInput"

    @extend_schema(tags=[TAG_LABELS], request=InputSerializer, responses=AnnotationSerializer)
    def post(self, request: Request, trace_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        trace = selectors.trace_get_for_user(user=request.user, trace_id=trace_id)
        try:
            step = selectors.step_get(trace=trace, index=data.validated_data["step_index"])
        except Http404 as exc:  # the step named in the body is wrong, not the URL
            raise exceptions.ValidationError({"step_index": [str(exc)]}) from exc
        services.label_first_error(user=request.user, step=step)
        return _my_annotation(request, trace)


class LabelChangesApi(ApiView):
    """Apply a list of label changes in order, each once (what the labelling page sends).

    Each change carries `seq`, increasing per `client`; changes already applied for that client
    are skipped, so a client resends everything not yet confirmed after a failure or a restart.
    First-error and all-correct keep labels set by hand (listed in `kept`). GET answers who you
    are and a fresh CSRF token (a page checks it after a new log-in).
    """

    class ChangeSerializer(serializers.Serializer):
        seq = serializers.IntegerField(min_value=1)
        op = serializers.ChoiceField(choices=[(op, op) for op in services.CHANGE_OPS])
        index = serializers.IntegerField(
            required=False, min_value=0, help_text="label, first_error."
        )
        value = serializers.IntegerField(
            required=False, allow_null=True, min_value=-1, max_value=1, help_text="label."
        )
        flagged = serializers.BooleanField(required=False, help_text="label.")
        note = serializers.CharField(
            required=False, allow_blank=True, trim_whitespace=False, max_length=20_000
        )
        labels = serializers.ListField(
            child=serializers.DictField(),
            required=False,
            help_text='restore: [{"index", "value", "source"}], the labels as they were.',
        )

        class Meta:
            ref_name = "LabelChange"

    class InputSerializer(serializers.Serializer):
        client = serializers.CharField(max_length=64, help_text="Names this client's change log.")
        changes = serializers.ListField(
            child=serializers.DictField(), max_length=services.MAX_CHANGES_PER_REQUEST
        )

        class Meta:
            ref_name = "LabelChangesInput"

    class OutputSerializer(serializers.Serializer):
        applied = serializers.ListField(child=serializers.IntegerField())
        skipped = serializers.ListField(
            child=serializers.IntegerField(), help_text="Applied by an earlier request."
        )
        kept = serializers.ListField(
            child=serializers.IntegerField(),
            help_text="Steps whose hand-set label first-error / all-correct left alone.",
        )
        labels = StepLabelSerializer(many=True, help_text="The saved state of the steps touched.")
        labelled = serializers.IntegerField(help_text="Steps of the trace with a value.")
        step_count = serializers.IntegerField()

        class Meta:
            ref_name = "LabelChangesOutput"

    class WhoSerializer(serializers.Serializer):
        username = serializers.CharField()
        csrf_token = serializers.CharField()

        class Meta:
            ref_name = "LabelChangesWho"

    @extend_schema(tags=[TAG_LABELS], responses=WhoSerializer)
    def get(self, request: Request, trace_id: int) -> Response:
        selectors.trace_get_for_user(user=request.user, trace_id=trace_id)
        return Response(
            {"username": request.user.get_username(), "csrf_token": get_token(request._request)}
        )

    @extend_schema(
        tags=[TAG_LABELS],
        request=InputSerializer,
        responses={
            200: OutputSerializer,
            400: OpenApiResponse(description="Names what and where."),
        },
    )
    def post(self, request: Request, trace_id: int) -> Response:
        # The body is checked by label_changes_apply itself, field by field, naming the change
        # and the field (tests/annotate/test_services.py): the serializers above document it.
        # Running them too cost the page's hottest request some 0.7 ms (deep copies of their
        # fields, issue 16) for checks made twice.
        body = request.data
        if not isinstance(body, dict):
            raise exceptions.ValidationError({"non_field_errors": ["A JSON object."]})
        trace = selectors.trace_get_for_label(user=request.user, trace_id=trace_id)
        result = services.label_changes_apply(
            user=request.user, trace=trace, client=body.get("client"), changes=body.get("changes")
        )
        # The answer as OutputSerializer would write it (its schema is the documented one), built
        # directly: the page's hottest request instantiated ~15 serializer fields for it (issue
        # 16). tests/annotate/test_api.py compares the two on every op.
        return Response(
            {
                "applied": result.applied,
                "skipped": result.skipped,
                "kept": result.kept,
                "labels": [_step_label_data(label) for label in result.labels],
                "labelled": result.labelled,
                "step_count": result.step_count,
            }
        )


_DATETIME = serializers.DateTimeField()


def _step_label_data(label: Any) -> dict[str, Any]:
    """StepLabelSerializer(label).data for a label of `label_changes_apply`'s result."""
    return {
        "step_index": label.step.index,
        "value": label.value,
        "source": label.source,
        "flagged": bool(label.flagged),
        "note": str(label.note),
        "blind_value": label.blind_value,
        "updated_at": None
        if label.updated_at is None
        else _DATETIME.to_representation(label.updated_at),
    }


class AllCorrectApi(ApiView):
    """Every step +1 (the "no wrong step" answer), except labels set by hand."""

    @extend_schema(tags=[TAG_LABELS], request=None, responses=AnnotationSerializer)
    def post(self, request: Request, trace_id: int) -> Response:
        trace = selectors.trace_get_for_user(user=request.user, trace_id=trace_id)
        services.label_all_correct(user=request.user, trace=trace)
        return _my_annotation(request, trace)


class SubmitApi(ApiView):
    """Submit your pass; without a finish reason it is inferred from the labels."""

    class InputSerializer(serializers.Serializer):
        finish_reason = serializers.ChoiceField(
            choices=FinishReason.choices, required=False, allow_blank=True
        )

        class Meta:
            ref_name = "SubmitInput"

    @extend_schema(
        tags=[TAG_LABELS],
        request=InputSerializer,
        responses={200: AnnotationSerializer, 400: OpenApiResponse(description="Not finished.")},
    )
    def post(self, request: Request, trace_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        trace = selectors.trace_get_for_user(user=request.user, trace_id=trace_id)
        services.annotation_submit(
            user=request.user,
            trace=trace,
            finish_reason=data.validated_data.get("finish_reason") or None,
        )
        return _my_annotation(request, trace)


class HeartbeatApi(ApiView):
    """Add active time to your annotation (capped per heartbeat by the service)."""

    class InputSerializer(serializers.Serializer):
        seconds = serializers.FloatField(min_value=0, max_value=3600)

        class Meta:
            ref_name = "HeartbeatInput"

    class OutputSerializer(serializers.Serializer):
        active_seconds = serializers.FloatField()

        class Meta:
            ref_name = "HeartbeatOutput"

    @extend_schema(tags=[TAG_LABELS], request=InputSerializer, responses=OutputSerializer)
    def post(self, request: Request, trace_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        trace = selectors.trace_get_for_user(user=request.user, trace_id=trace_id)
        annotation: Annotation = services.annotation_add_active_time(
            user=request.user, trace=trace, seconds=data.validated_data["seconds"]
        )
        return Response(self.OutputSerializer(annotation).data)


class TraceAnnotationListApi(ApiView):
    """Every annotation of the trace for reviewers and admins; annotators see only their own."""

    @extend_schema(
        tags=[TAG_LABELS],
        responses=AnnotationSerializer(many=True),
    )
    def get(self, request: Request, trace_id: int) -> Response:
        trace = selectors.trace_get_for_user(user=request.user, trace_id=trace_id)
        annotations = selectors.annotation_list_with_labels(user=request.user, trace=trace)
        return Response(AnnotationSerializer(annotations, many=True).data)


# --- imports ---------------------------------------------------------------------------------------

# Multipart framing around the file (boundaries, the other fields) on top of the file's own bytes.
_MULTIPART_SLACK_BYTES = 64 * 1024


def _import_max_bytes() -> int:
    return int(getattr(settings, "IMPORT_MAX_BYTES", 200 * 1024 * 1024))


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"


def _too_large(size: int) -> PayloadTooLarge:
    limit = _import_max_bytes()
    return PayloadTooLarge(
        f"The upload is {filesizeformat(size)}; imports are limited to {filesizeformat(limit)} "
        f"({limit} bytes). Split the file, or import it with `manage.py import_traces`."
    )


class ImportJobSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.CharField(help_text="This job in the API.")
    page = serializers.CharField(help_text="Its page in the browser (a progress bar).")
    project = serializers.SlugField(source="project_slug")
    filename = serializers.CharField()
    format = serializers.CharField()
    size = serializers.IntegerField(help_text="Bytes.")
    status = serializers.CharField(help_text=f"One of: {', '.join(ImportStatus.values)}.")
    phase = serializers.CharField(
        help_text="queued, check (reading every record), write, done, failed."
    )
    done = serializers.IntegerField(help_text="Bytes checked, or records written.")
    total = serializers.IntegerField()
    percent = serializers.IntegerField()
    result = serializers.DictField(help_text="As the synchronous import's answer, once done.")
    error = serializers.DictField(help_text="detail, file, line, field: once failed.")
    can_retry = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "ImportJob"


def _job_data(job: ImportJob, request: Request) -> dict[str, Any]:
    progress = import_jobs.import_job_progress(job=job)
    return ImportJobSerializer(
        {
            **{f: getattr(job, f) for f in ("id", "project_slug", "filename", "format", "size")},
            **{f: getattr(job, f) for f in ("status", "result", "error", "created_at")},
            "finished_at": job.finished_at,
            "url": request.build_absolute_uri(reverse("api:import-job", args=[job.pk])),
            "page": request.build_absolute_uri(reverse("annotate:import_job", args=[job.pk])),
            "phase": progress.phase,
            "done": progress.done,
            "total": progress.total,
            "percent": progress.percent,
            "can_retry": import_jobs.import_job_can_retry(job=job),
        }
    ).data


class ImportJobApi(ApiView):
    """A large import's state: queued, running (checking, then writing), done or failed."""

    @extend_schema(
        tags=[TAG_IMPORTS],
        responses={
            200: ImportJobSerializer,
            403: OpenApiResponse(description="A member, but not an admin, of the project."),
            404: OpenApiResponse(description="No such import (or not yours)."),
        },
    )
    def get(self, request: Request, job_id: int) -> Response:
        job = import_jobs.import_job_get_for_user(user=request.user, job_id=job_id)
        return Response(_job_data(job, request))


class ImportJobRetryApi(ApiView):
    """Queue a failed import again, when its file is still kept (its worker died)."""

    @extend_schema(
        tags=[TAG_IMPORTS],
        request=None,
        responses={
            202: ImportJobSerializer,
            400: OpenApiResponse(description="Not failed, or its file was refused and removed."),
            404: OpenApiResponse(description="No such import (or not yours)."),
        },
    )
    def post(self, request: Request, job_id: int) -> Response:
        job = import_jobs.import_job_get_for_user(user=request.user, job_id=job_id)
        try:
            job = import_jobs.import_job_retry(job=job)
        except DjangoValidationError as err:
            raise exceptions.ValidationError({"detail": err.messages}) from None
        return Response(_job_data(job, request), status=status.HTTP_202_ACCEPTED)


class ImportApi(ApiView):
    """Import a file of traces into a project: its admins, or a site admin (who may create it).

    All or nothing: a malformed file is refused with the line and field at fault, and nothing is
    written. Importing the same file again adds nothing.
    """

    parser_classes = [MultiPartParser, FormParser]

    class InputSerializer(serializers.Serializer):
        project = serializers.SlugField(help_text="Slug of the project to import into.")
        format = serializers.ChoiceField(choices=[(name, name) for name in imports.FORMATS])
        file = serializers.FileField(help_text="The file, as your pipeline wrote it (JSONL).")
        subset = serializers.CharField(
            required=False, allow_blank=True, max_length=100, help_text="e.g. gsm8k, math."
        )

        class Meta:
            ref_name = "ImportInput"

    class OutputSerializer(serializers.Serializer):
        project = serializers.SlugField(source="result.project.slug")
        project_created = serializers.BooleanField()
        format = serializers.CharField(source="result.format")
        traces_created = serializers.IntegerField(source="result.traces_created")
        traces_skipped = serializers.IntegerField(
            source="result.traces_skipped", help_text="Already imported (same source and id)."
        )
        problems_created = serializers.IntegerField(source="result.problems_created")
        problems_shared = serializers.IntegerField(
            source="result.problems_shared",
            help_text="Problems of the new traces that the project held already (same text, "
            "images and table).",
        )
        steps_created = serializers.IntegerField(source="result.steps_created")
        annotations_created = serializers.IntegerField(source="result.annotations_created")
        gold_labels_created = serializers.IntegerField(source="result.gold_labels_created")
        summary = serializers.CharField(source="result.summary")

        class Meta:
            ref_name = "ImportOutput"

    class FileErrorSerializer(serializers.Serializer):
        detail = serializers.CharField()
        file = serializers.CharField()
        line = serializers.IntegerField(allow_null=True)
        field = serializers.CharField(allow_null=True)

        class Meta:
            ref_name = "ImportFileError"

    @extend_schema(
        tags=[TAG_IMPORTS],
        request={"multipart/form-data": InputSerializer},
        responses={
            201: OutputSerializer,
            202: OpenApiResponse(
                ImportJobSerializer,
                description="A file over STEPLENS_IMPORT_SYNC_MAX_BYTES: queued for a worker. "
                "Follow `url` (GET /api/imports/jobs/{id}/) until its status is done or failed.",
            ),
            400: OpenApiResponse(
                FileErrorSerializer, description="Malformed file; nothing written."
            ),
            403: OpenApiResponse(description="A member, but not an admin, of the project."),
            404: OpenApiResponse(description="No such project (or not yours)."),
            413: OpenApiResponse(description="The upload is larger than IMPORT_MAX_BYTES."),
        },
    )
    def post(self, request: Request) -> Response:
        # Refuse an oversized upload on its declared length, before reading the body.
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
        if declared > _import_max_bytes() + _MULTIPART_SLACK_BYTES:
            raise _too_large(declared)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        slug = data.validated_data["project"]
        existing = selectors.project_import_target(user=request.user, slug=slug)
        upload = data.validated_data["file"]
        if upload.size > _import_max_bytes():
            raise _too_large(upload.size)
        if import_jobs.import_is_large(size=upload.size):
            job = import_jobs.import_job_create(
                user=request.user,
                project=existing,
                project_slug=slug,
                upload=upload,
                format=data.validated_data["format"],
                subset=data.validated_data.get("subset", ""),
            )
            return Response(_job_data(job, request), status=status.HTTP_202_ACCEPTED)
        try:
            # One transaction: a project created for a file that is then refused goes with it.
            with transaction.atomic():
                project, created = (
                    (existing, False)
                    if existing is not None
                    else imports.project_for_import(slug=slug)
                )
                result = imports.traces_import(
                    project=project,
                    stream=upload,
                    filename=upload.name,
                    format=data.validated_data["format"],
                    subset=data.validated_data.get("subset", ""),
                )
        except imports.ImportFileError as err:
            return Response(
                err.as_dict(),
                status=status.HTTP_400_BAD_REQUEST,
            )
        output = self.OutputSerializer({"result": result, "project_created": created})
        return Response(output.data, status=status.HTTP_201_CREATED)
