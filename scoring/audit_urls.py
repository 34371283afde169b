"""URLs of the PRM audit pages (included from scoring.urls, so named `scoring:audit` etc.)."""

from __future__ import annotations

from django.urls import path

from . import audit_views

urlpatterns = [
    path("audit/p/<slug:slug>/", audit_views.audit_page, name="audit"),
    path("audit/p/<slug:slug>/queue/", audit_views.audit_queue, name="audit_queue"),
]
