"""URLs of the REST API (session and token auth); the schema is at /api/schema/."""

from __future__ import annotations

from django.urls import include, path

from . import api

app_name = "api"
urlpatterns = [
    path("auth/token/", api.TokenCreateApi.as_view(), name="token"),
    path("projects/", api.ProjectListApi.as_view(), name="project-list"),
    path("projects/<slug:slug>/", api.ProjectDetailApi.as_view(), name="project-detail"),
    path("projects/<slug:slug>/traces/", api.TraceListApi.as_view(), name="trace-list"),
    path("projects/<slug:slug>/queue/next/", api.QueueNextApi.as_view(), name="queue-next"),
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
    path("traces/<int:trace_id>/all-correct/", api.AllCorrectApi.as_view(), name="all-correct"),
    path("traces/<int:trace_id>/submit/", api.SubmitApi.as_view(), name="submit"),
    path("traces/<int:trace_id>/heartbeat/", api.HeartbeatApi.as_view(), name="heartbeat"),
    path("imports/", api.ImportApi.as_view(), name="import"),
    path("", include("annotate.export_api_urls")),
    path("", include("annotate.review_api_urls")),
]
