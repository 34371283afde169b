"""Django admin for scorers and their runs."""

from __future__ import annotations

from django.contrib import admin

from .models import Scorer, ScoreRun, StepScore, WorkerHeartbeat


@admin.register(Scorer)
class ScorerAdmin(admin.ModelAdmin):
    list_display = ["name", "backend", "model_path", "version", "threshold"]
    list_filter = ["backend"]
    filter_horizontal = ["projects"]
    readonly_fields = ["version"]


@admin.register(ScoreRun)
class ScoreRunAdmin(admin.ModelAdmin):
    list_display = ["id", "trace", "scorer", "scorer_version", "status", "queue", "duration_ms"]
    list_filter = ["status", "queue", "scorer"]
    raw_id_fields = ["trace"]


@admin.register(StepScore)
class StepScoreAdmin(admin.ModelAdmin):
    list_display = ["id", "run", "step", "score"]
    raw_id_fields = ["run", "step"]


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    list_display = ["hostname", "queues", "last_seen"]
