"""URLs of the exports pages (namespace `snapshots`); their paths are the ones they had before."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "snapshots"
urlpatterns = [
    path("p/<slug:slug>/exports/", views.exports_page, name="exports"),
    path("exports/<int:snapshot_id>/row/", views.export_row, name="export_row"),
    *(
        path(
            f"exports/<int:snapshot_id>/{action}/",
            views.export_action,
            {"action": action},
            name=f"export_{action}",
        )
        for action in ("cancel", "retry")
    ),
    path(
        "exports/<int:snapshot_id>/files/<path:filename>",
        views.export_download,
        name="export_download",
    ),
    path("p/<slug:slug>/training/", views.training_page, name="training"),
    path("p/<slug:slug>/training/demote/", views.live_scorer_demote, name="demote"),
    path("training/<int:training_run_id>/", views.training_run, name="training_run"),
    path(
        "training/<int:training_run_id>/status/", views.training_run_status, name="training_status"
    ),
    *(
        path(
            f"training/<int:training_run_id>/{action}/",
            views.training_run_action,
            {"action": action},
            name=f"training_{action}",
        )
        for action in ("cancel", "restart", "promote")
    ),
]
