"""API routes of scoring (composed into the `api` namespace by config/api_urls.py)."""

from __future__ import annotations

from django.urls import path

from . import api

urlpatterns = [
    path("scorers/", api.ScorerListApi.as_view(), name="scorers"),
    path("traces/<int:trace_id>/scores/", api.TraceScoresApi.as_view(), name="trace-scores"),
    path(
        "traces/<int:trace_id>/scores/enqueue/",
        api.TraceScoresEnqueueApi.as_view(),
        name="trace-scores-enqueue",
    ),
    path("runs/<int:run_id>/retry/", api.RunRetryApi.as_view(), name="run-retry"),
    path("projects/<slug:slug>/score/", api.ProjectBackfillApi.as_view(), name="project-score"),
    path(
        "projects/<slug:slug>/coverage/", api.ProjectCoverageApi.as_view(), name="project-coverage"
    ),
    path(
        "projects/<slug:slug>/scorers/",
        api.ProjectScorersApi.as_view(),
        name="project-scorers",
    ),
    path("scores/import/", api.ScoresImportApi.as_view(), name="scores-import"),
]
