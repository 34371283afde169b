"""API routes of exports (included from annotate.api_urls, so named `api:export-list` etc.)."""

from __future__ import annotations

from django.urls import path

from . import export_api

urlpatterns = [
    path("projects/<slug:slug>/exports/", export_api.ExportListApi.as_view(), name="export-list"),
    path("exports/<int:snapshot_id>/", export_api.ExportDetailApi.as_view(), name="export-detail"),
    path(
        "exports/<int:snapshot_id>/files/<str:filename>",
        export_api.ExportFileApi.as_view(),
        name="export-file",
    ),
]
