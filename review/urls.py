"""URLs of the review pages (namespace `review`); their paths are the ones they had before."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "review"
urlpatterns = [
    # The annotator's queue.
    path("p/<slug:slug>/", views.queue, name="queue"),
    path("p/<slug:slug>/next/", views.queue_next, name="next"),
    path("t/<int:trace_id>/skip/", views.trace_skip, name="skip"),
    path("p/<slug:slug>/strategy/", views.queue_strategy, name="queue_strategy"),
    # Members and their progress (project admins).
    path("p/<slug:slug>/members/", views.members, name="members"),
    # The data browser and its bulk actions.
    path("p/<slug:slug>/data/", views.data_browser, name="data"),
    path("p/<slug:slug>/data/bulk/", views.data_bulk, name="data_bulk"),
    # Adjudication and agreement.
    path("p/<slug:slug>/review/", views.review_queue, name="review"),
    path("p/<slug:slug>/agreement/", views.agreement, name="agreement"),
    path("review/t/<int:trace_id>/", views.adjudicate, name="adjudicate"),
    # The PRM audit and Best-of-N (under /scoring/, where they were first served).
    path("scoring/audit/p/<slug:slug>/", views.audit_page, name="audit"),
    path("scoring/audit/p/<slug:slug>/queue/", views.audit_queue, name="audit_queue"),
    path(
        "scoring/problems/<int:problem_id>/best-of-n/",
        views.problem_best_of_n,
        name="best_of_n",
    ),
    path(
        "scoring/problems/<int:problem_id>/best-of-n/score/",
        views.problem_best_of_n_score,
        name="best_of_n_score",
    ),
]
