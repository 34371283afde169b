"""API routes of snapshots (composed into the `api` namespace by config/api_urls.py)."""

from __future__ import annotations

from django.urls import path

from . import api

urlpatterns = [
    path("projects/<slug:slug>/exports/", api.ExportListApi.as_view(), name="export-list"),
    path("exports/<int:snapshot_id>/", api.ExportDetailApi.as_view(), name="export-detail"),
    *(
        path(
            f"exports/<int:snapshot_id>/{action}/",
            api.ExportActionApi.as_view(),
            {"action": action},
            name=f"export-{action}",
        )
        for action in ("cancel", "retry")
    ),
    path(
        "exports/<int:snapshot_id>/files/<path:filename>",
        api.ExportFileApi.as_view(),
        name="export-file",
    ),
    path(
        "projects/<slug:slug>/training-runs/",
        api.TrainingRunListApi.as_view(),
        name="training-run-list",
    ),
    path(
        "training-runs/<int:training_run_id>/",
        api.TrainingRunDetailApi.as_view(),
        name="training-run",
    ),
    *(
        path(
            f"training-runs/<int:training_run_id>/{action}/",
            api.TrainingRunActionApi.as_view(),
            {"action": action},
            name=f"training-run-{action}",
        )
        for action in ("cancel", "restart", "promote")
    ),
    path("projects/<slug:slug>/live-scorer/", api.LiveScorerApi.as_view(), name="live-scorer"),
]
