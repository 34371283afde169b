"""API routes of review (composed into the `api` namespace by config/api_urls.py)."""

from __future__ import annotations

from django.urls import path

from . import api

urlpatterns = [
    path("projects/<slug:slug>/queue/", api.QueueApi.as_view(), name="queue"),
    path("projects/<slug:slug>/queue/next/", api.QueueNextApi.as_view(), name="queue-next"),
    path("projects/<slug:slug>/queue/take/", api.QueueTakeApi.as_view(), name="queue-take"),
    path(
        "projects/<slug:slug>/queue/strategy/",
        api.QueueStrategyApi.as_view(),
        name="queue-strategy",
    ),
    path("traces/<int:trace_id>/skip/", api.TraceSkipApi.as_view(), name="trace-skip"),
    path(
        "projects/<slug:slug>/disagreements/",
        api.DisagreementListApi.as_view(),
        name="disagreement-list",
    ),
    path("projects/<slug:slug>/agreement/", api.AgreementApi.as_view(), name="agreement"),
    path(
        "traces/<int:trace_id>/adjudication/",
        api.AdjudicationApi.as_view(),
        name="adjudication",
    ),
    path(
        "traces/<int:trace_id>/steps/<int:index>/gold/",
        api.GoldSetApi.as_view(),
        name="gold-set",
    ),
    path("projects/<slug:slug>/members/", api.MemberListApi.as_view(), name="member-list"),
    path(
        "projects/<slug:slug>/members/<str:username>/",
        api.MemberDetailApi.as_view(),
        name="member-detail",
    ),
    path("projects/<slug:slug>/data/", api.DataBrowserApi.as_view(), name="data"),
    path("projects/<slug:slug>/data/bulk/", api.DataBulkApi.as_view(), name="data-bulk"),
    path("projects/<slug:slug>/audit/", api.AuditReportApi.as_view(), name="audit"),
    path("projects/<slug:slug>/audit/queue/", api.AuditQueueApi.as_view(), name="audit-queue"),
    path("problems/<int:problem_id>/best-of-n/", api.BestOfNApi.as_view(), name="best-of-n"),
    path(
        "problems/<int:problem_id>/best-of-n/sample/",
        api.BestOfNSampleApi.as_view(),
        name="best-of-n-sample",
    ),
    path(
        "problems/<int:problem_id>/best-of-n/score/",
        api.BestOfNScoreApi.as_view(),
        name="best-of-n-score",
    ),
]
