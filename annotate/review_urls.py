"""URLs of the review pages (included from annotate.urls, so named `annotate:review` etc.)."""

from __future__ import annotations

from django.urls import path

from . import review_views

urlpatterns = [
    path("p/<slug:slug>/review/", review_views.review_queue, name="review"),
    path("p/<slug:slug>/agreement/", review_views.agreement, name="agreement"),
    path("p/<slug:slug>/strategy/", review_views.queue_strategy, name="queue_strategy"),
    path("review/t/<int:trace_id>/", review_views.adjudicate, name="adjudicate"),
    path("t/<int:trace_id>/skip/", review_views.trace_skip, name="skip"),
]
