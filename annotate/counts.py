"""Counts kept on a project's row for its pages, counted again from the rows that make them."""

from __future__ import annotations

from django.db.models import Count

from .models import Annotation, AnnotationStatus, Project


def project_filled_recount(*, project_id: int) -> None:
    """Count again the project's kept `filled_count` (its traces with at least `overlap`
    submitted annotations): after writes that add or remove submissions in bulk or change the
    overlap (imports, deletions, project_update). A submission keeps it itself
    (annotation_submit)."""
    overlap = Project.objects.filter(pk=project_id).values_list("overlap", flat=True).first()
    if overlap is None:
        return
    filled = (
        Annotation.objects.filter(trace__project_id=project_id, status=AnnotationStatus.SUBMITTED)
        .order_by()
        .values("trace_id")
        .annotate(n=Count("pk"))
        .filter(n__gte=overlap)
        .count()
    )
    Project.objects.filter(pk=project_id).update(filled_count=filled)
