"""API routes of snapshots (composed into the `api` namespace by config/api_urls.py)."""

from __future__ import annotations

from django.urls import path

from . import api

urlpatterns = [
    path("projects/<slug:slug>/exports/", api.ExportListApi.as_view(), name="export-list"),
    path("exports/<int:snapshot_id>/", api.ExportDetailApi.as_view(), name="export-detail"),
    path(
        "exports/<int:snapshot_id>/files/<str:filename>",
        api.ExportFileApi.as_view(),
        name="export-file",
    ),
]
