"""Django admin of snapshots: snapshots are immutable, so the admin shows them read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin

from .models import ExportSnapshot


@admin.register(ExportSnapshot)
class ExportSnapshotAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "name", "version", "format", "labels", "status", "created_at"]
    list_filter = ["status", "format", "labels"]
    search_fields = ["name"]

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False
