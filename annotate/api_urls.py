"""API routes of annotate (composed into the `api` namespace by config/api_urls.py)."""

from __future__ import annotations

from django.urls import path

from . import api

urlpatterns = [
    path("auth/token/", api.TokenCreateApi.as_view(), name="token"),
    path("auth/tokens/", api.TokenListApi.as_view(), name="token-list"),
    path("auth/tokens/<int:token_id>/", api.TokenDetailApi.as_view(), name="token-detail"),
    path("projects/", api.ProjectListApi.as_view(), name="project-list"),
    path("projects/<slug:slug>/", api.ProjectDetailApi.as_view(), name="project-detail"),
    path(
        "projects/<slug:slug>/annotator-preview/",
        api.AnnotatorPreviewApi.as_view(),
        name="annotator-preview",
    ),
    path("projects/<slug:slug>/traces/", api.TraceListApi.as_view(), name="trace-list"),
    path("traces/<int:trace_id>/", api.TraceDetailApi.as_view(), name="trace-detail"),
    path(
        "traces/<int:trace_id>/annotation/",
        api.AnnotationMineApi.as_view(),
        name="annotation-mine",
    ),
    path(
        "traces/<int:trace_id>/annotations/",
        api.TraceAnnotationListApi.as_view(),
        name="annotation-list",
    ),
    path(
        "traces/<int:trace_id>/steps/<int:index>/label/",
        api.StepLabelApi.as_view(),
        name="step-label",
    ),
    path("traces/<int:trace_id>/first-error/", api.FirstErrorApi.as_view(), name="first-error"),
    path("traces/<int:trace_id>/changes/", api.LabelChangesApi.as_view(), name="label-changes"),
    path("traces/<int:trace_id>/all-correct/", api.AllCorrectApi.as_view(), name="all-correct"),
    path("traces/<int:trace_id>/submit/", api.SubmitApi.as_view(), name="submit"),
    path("traces/<int:trace_id>/heartbeat/", api.HeartbeatApi.as_view(), name="heartbeat"),
    path("imports/", api.ImportApi.as_view(), name="import"),
    path("imports/jobs/<int:job_id>/", api.ImportJobApi.as_view(), name="import-job"),
    path(
        "imports/jobs/<int:job_id>/retry/", api.ImportJobRetryApi.as_view(), name="import-job-retry"
    ),
]
