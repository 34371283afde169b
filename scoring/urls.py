"""URLs of the score panel, retry and a project's scorers (namespace `scoring`, under /scoring/)."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "scoring"
urlpatterns = [
    path("traces/<int:trace_id>/scores/open/", views.trace_scores_open, name="open"),
    path("traces/<int:trace_id>/scores/", views.trace_scores_panel, name="panel"),
    path("runs/<int:run_id>/retry/", views.score_run_retry, name="retry"),
    path("p/<slug:slug>/scorers/", views.project_scorers, name="project_scorers"),
    path("p/<slug:slug>/scorers/new/", views.project_scorer_new, name="project_scorer_new"),
    path("p/<slug:slug>/coverage/", views.project_coverage, name="project_coverage"),
    path("p/<slug:slug>/score-all/", views.project_score_all, name="project_score_all"),
]
