"""Django admin for managing projects, members and the corpus."""

from __future__ import annotations

from django.contrib import admin

from .models import Annotation, GoldLabel, Membership, Problem, Project, Step, StepLabel, Trace


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "label_scheme", "overlap", "blind", "created_at"]
    search_fields = ["slug", "name"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["project", "user", "role"]
    list_filter = ["role", "project"]


@admin.register(Problem)
class ProblemAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "text", "reference_answer"]
    list_filter = ["project"]
    search_fields = ["text"]


class StepInline(admin.TabularInline):
    model = Step
    extra = 0
    fields = ["index", "part", "text"]
    readonly_fields = ["index", "part", "text"]


@admin.register(Trace)
class TraceAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "source", "subset", "external_id", "generator"]
    list_filter = ["project", "source", "subset"]
    search_fields = ["external_id", "generator"]
    raw_id_fields = ["problem"]
    inlines = [StepInline]


@admin.register(Annotation)
class AnnotationAdmin(admin.ModelAdmin):
    list_display = ["id", "trace", "annotator", "status", "finish_reason", "active_seconds"]
    list_filter = ["status", "finish_reason", "imported"]
    raw_id_fields = ["trace"]


@admin.register(StepLabel)
class StepLabelAdmin(admin.ModelAdmin):
    list_display = ["id", "annotation", "step", "value", "flagged"]
    raw_id_fields = ["annotation", "step"]


@admin.register(GoldLabel)
class GoldLabelAdmin(admin.ModelAdmin):
    list_display = ["id", "step", "value", "source", "set_by"]
    list_filter = ["source"]
    raw_id_fields = ["step"]
