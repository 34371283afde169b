"""API routes of the queue and review (included from annotate.api_urls, so named `api:queue` etc.)."""

from __future__ import annotations

from django.urls import path

from . import review_api

urlpatterns = [
    path("projects/<slug:slug>/queue/", review_api.QueueApi.as_view(), name="queue"),
    path("projects/<slug:slug>/queue/take/", review_api.QueueTakeApi.as_view(), name="queue-take"),
    path(
        "projects/<slug:slug>/queue/strategy/",
        review_api.QueueStrategyApi.as_view(),
        name="queue-strategy",
    ),
    path("traces/<int:trace_id>/skip/", review_api.TraceSkipApi.as_view(), name="trace-skip"),
    path(
        "projects/<slug:slug>/disagreements/",
        review_api.DisagreementListApi.as_view(),
        name="disagreement-list",
    ),
    path("projects/<slug:slug>/agreement/", review_api.AgreementApi.as_view(), name="agreement"),
    path(
        "traces/<int:trace_id>/adjudication/",
        review_api.AdjudicationApi.as_view(),
        name="adjudication",
    ),
    path(
        "traces/<int:trace_id>/steps/<int:index>/gold/",
        review_api.GoldSetApi.as_view(),
        name="gold-set",
    ),
]
