"""URLs of the exports pages (namespace `snapshots`); their paths are the ones they had before."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "snapshots"
urlpatterns = [
    path("p/<slug:slug>/exports/", views.exports_page, name="exports"),
    path("exports/<int:snapshot_id>/row/", views.export_row, name="export_row"),
    path(
        "exports/<int:snapshot_id>/files/<str:filename>",
        views.export_download,
        name="export_download",
    ),
]
