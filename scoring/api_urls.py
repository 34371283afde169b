"""URLs of the scoring REST API (included under /api/)."""

from __future__ import annotations

from django.urls import include, path

from . import api

urlpatterns = [
    path("scorers/", api.ScorerListApi.as_view(), name="api-scorers"),
    path("traces/<int:trace_id>/scores/", api.TraceScoresApi.as_view(), name="api-trace-scores"),
    path(
        "traces/<int:trace_id>/scores/enqueue/",
        api.TraceScoresEnqueueApi.as_view(),
        name="api-trace-scores-enqueue",
    ),
    path("runs/<int:run_id>/retry/", api.RunRetryApi.as_view(), name="api-run-retry"),
    path("projects/<slug:slug>/score/", api.ProjectBackfillApi.as_view(), name="api-project-score"),
    path(
        "projects/<slug:slug>/scorers/",
        api.ProjectScorersApi.as_view(),
        name="api-project-scorers",
    ),
    path("scores/import/", api.ScoresImportApi.as_view(), name="api-scores-import"),
    path("problems/<int:problem_id>/best-of-n/", api.BestOfNApi.as_view(), name="api-best-of-n"),
    path(
        "problems/<int:problem_id>/best-of-n/score/",
        api.BestOfNScoreApi.as_view(),
        name="api-best-of-n-score",
    ),
    path("", include("scoring.audit_api_urls")),
]
