"""URLs of the REST API (session and token auth); the schema is at /api/schema/."""

from __future__ import annotations

from django.urls import path

urlpatterns: list = []
