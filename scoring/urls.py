"""URLs of the score panel and the Best-of-N page."""

from __future__ import annotations

from django.urls import include, path

from . import views

app_name = "scoring"
urlpatterns = [
    path("traces/<int:trace_id>/scores/open/", views.trace_scores_open, name="open"),
    path("traces/<int:trace_id>/scores/", views.trace_scores_panel, name="panel"),
    path("runs/<int:run_id>/retry/", views.score_run_retry, name="retry"),
    path("problems/<int:problem_id>/best-of-n/", views.problem_best_of_n, name="best_of_n"),
    path(
        "problems/<int:problem_id>/best-of-n/score/",
        views.problem_best_of_n_score,
        name="best_of_n_score",
    ),
    path("p/<slug:slug>/scorers/", views.project_scorers, name="project_scorers"),
    path("", include("scoring.audit_urls")),
]
