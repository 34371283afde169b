"""Counts kept on a project's row (and per annotator) for its pages, counted again from the rows
that make them."""

from __future__ import annotations

from collections import Counter

from django.db import transaction
from django.db.models import F

from .models import Annotation, AnnotationStatus, AnnotatorProgress, Project


def submission_counted(*, project_id: int, trace_id: int, annotator_id: int) -> None:
    """Count a first submission of `annotator_id`'s pass over `trace_id` (its status already
    saved as submitted): the annotator's `done`; and, when the trace is filled (at least
    `overlap` submissions), their `done_filled`, with the project's `filled_count` and every
    other submitter's `done_filled` when this submission is the one that fills it.

    Called by services.annotation_submit inside its transaction. The project's row lock taken
    here counts a project's first submissions one after another (so the one that fills a trace,
    reaching the overlap, is known to exactly one of them) and orders every write of the
    project's progress rows (the fan-out to the trace's other submitters included), so two
    submissions never wait on each other's rows."""
    overlap = (
        Project.objects.select_for_update()
        .filter(pk=project_id)
        .values_list("overlap", flat=True)
        .get()
    )
    submitters = Annotation.objects.filter(trace_id=trace_id, status=AnnotationStatus.SUBMITTED)
    submissions = submitters.count()
    mine = AnnotatorProgress.objects.filter(project_id=project_id, annotator_id=annotator_id)
    filled_before = int(submissions > overlap)
    if not mine.update(done=F("done") + 1, done_filled=F("done_filled") + filled_before):
        AnnotatorProgress.objects.create(
            project_id=project_id, annotator_id=annotator_id, done=1, done_filled=filled_before
        )
    if submissions == overlap:  # this one fills the trace: each of its submitters has it filled
        Project.objects.filter(pk=project_id).update(filled_count=F("filled_count") + 1)
        AnnotatorProgress.objects.filter(
            project_id=project_id, annotator_id__in=submitters.values("annotator_id")
        ).update(done_filled=F("done_filled") + 1)


def project_filled_recount(*, project_id: int) -> None:
    """Count again the project's kept `filled_count` (its traces with at least `overlap`
    submitted annotations) and its annotators' progress rows (AnnotatorProgress): after writes
    that add or remove submissions in bulk or change the overlap (imports, deletions,
    project_update). A submission keeps them itself (submission_counted)."""
    with transaction.atomic():
        overlap = (
            Project.objects.select_for_update()
            .filter(pk=project_id)
            .values_list("overlap", flat=True)
            .first()
        )
        if overlap is None:
            return
        passes = list(
            Annotation.objects.filter(
                trace__project_id=project_id, status=AnnotationStatus.SUBMITTED
            ).values_list("trace_id", "annotator_id")
        )
        per_trace = Counter(trace_id for trace_id, _ in passes)
        filled = {trace_id for trace_id, n in per_trace.items() if n >= overlap}
        done = Counter(annotator_id for _, annotator_id in passes)
        done_filled = Counter(
            annotator_id for trace_id, annotator_id in passes if trace_id in filled
        )
        Project.objects.filter(pk=project_id).update(filled_count=len(filled))
        AnnotatorProgress.objects.filter(project_id=project_id).delete()
        AnnotatorProgress.objects.bulk_create(
            [
                AnnotatorProgress(
                    project_id=project_id,
                    annotator_id=annotator_id,
                    done=n,
                    done_filled=done_filled[annotator_id],
                )
                for annotator_id, n in sorted(done.items())
            ],
            batch_size=1000,
        )
