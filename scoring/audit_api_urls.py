"""API routes of the PRM audit (included from scoring.api_urls, under /api/)."""

from __future__ import annotations

from django.urls import path

from . import audit_api

urlpatterns = [
    path("projects/<slug:slug>/audit/", audit_api.AuditReportApi.as_view(), name="api-audit"),
    path(
        "projects/<slug:slug>/audit/queue/",
        audit_api.AuditQueueApi.as_view(),
        name="api-audit-queue",
    ),
]
