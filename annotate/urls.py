"""URLs of the labelling pages (browser, htmx)."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "annotate"
urlpatterns = [
    path("", views.home, name="home"),
    path("import/", views.import_traces, name="import"),
    path("projects/new/", views.project_new, name="project_new"),
    path("docs/<slug:name>/", views.doc_page, name="doc"),
    path("p/<slug:slug>/settings/", views.project_settings, name="project_settings"),
    path("p/<slug:slug>/images/<str:image_name>", views.problem_image, name="problem_image"),
    path("p/<slug:slug>/settings/preview/", views.guidelines_preview, name="guidelines_preview"),
    path("p/<slug:slug>/annotator-view/", views.annotator_preview, name="annotator_preview"),
    path("import/jobs/<int:job_id>/", views.import_job, name="import_job"),
    path("import/jobs/<int:job_id>/retry/", views.import_job_retry, name="import_job_retry"),
    path("account/tokens/", views.account_tokens, name="tokens"),
    path("account/tokens/<int:token_id>/revoke/", views.account_token_revoke, name="token_revoke"),
    path("t/<int:trace_id>/", views.trace, name="trace"),
    path("t/<int:trace_id>/steps/<int:index>/label/", views.step_label, name="step_label"),
    path(
        "t/<int:trace_id>/steps/<int:index>/first-error/",
        views.step_first_error,
        name="step_first_error",
    ),
    path("t/<int:trace_id>/all-correct/", views.trace_all_correct, name="all_correct"),
    path("t/<int:trace_id>/submit/", views.trace_submit, name="submit"),
    path("t/<int:trace_id>/heartbeat/", views.trace_heartbeat, name="heartbeat"),
]
