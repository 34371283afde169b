"""URLs of the exports pages (included from annotate.urls, so named `annotate:exports` etc.)."""

from __future__ import annotations

from django.urls import path

from . import export_views

urlpatterns = [
    path("p/<slug:slug>/exports/", export_views.exports_page, name="exports"),
    path("exports/<int:snapshot_id>/row/", export_views.export_row, name="export_row"),
    path(
        "exports/<int:snapshot_id>/files/<str:filename>",
        export_views.export_download,
        name="export_download",
    ),
]
