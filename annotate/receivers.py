"""annotate's own reactions to Django's events (connected in AnnotateConfig.ready)."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.db.models import F
from django.db.models.signals import post_delete, post_save, pre_delete, pre_save
from django.dispatch import receiver

from . import counts, tokens
from .models import Annotation, AnnotationStatus, Project, Trace

# Set by writes that keep Project.trace_count themselves, one UPDATE for many traces
# (services.traces_delete); imports insert without Model.save, so send no signal at all.
counting_traces_in_bulk: ContextVar[bool] = ContextVar("counting_traces_in_bulk", default=False)


@receiver(pre_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="steplens-tokens-on-password")
def _revoke_tokens_on_password_change(sender: Any, instance: Any, **_: Any) -> None:
    """A new password ends every API token of the user (whoever knew the old one may hold one)."""
    if instance.pk is None:
        return
    old = sender.objects.filter(pk=instance.pk).values_list("password", flat=True).first()
    if old is not None and old != instance.password:
        tokens.api_tokens_revoke_all(user_id=instance.pk)


@receiver(post_save, sender=Trace, dispatch_uid="steplens-trace-count-add")
def _count_added_trace(sender: Any, instance: Trace, created: bool, **_: Any) -> None:
    """A trace saved one at a time (admin, tests' factories) counts in its project's trace_count."""
    if created:
        Project.objects.filter(pk=instance.project_id).update(trace_count=F("trace_count") + 1)


@receiver(post_delete, sender=Trace, dispatch_uid="steplens-trace-count-remove")
def _count_deleted_trace(sender: Any, instance: Trace, origin: Any = None, **_: Any) -> None:
    """A trace deleted one at a time leaves its project's count; a project's own deletion and
    traces_delete (which counts per project in one UPDATE) do not go through here."""
    if counting_traces_in_bulk.get() or isinstance(origin, Project):
        return
    Project.objects.filter(pk=instance.project_id).update(trace_count=F("trace_count") - 1)
    counts.project_filled_recount(project_id=instance.project_id)  # its submissions went with it


@receiver(pre_delete, sender=settings.AUTH_USER_MODEL, dispatch_uid="steplens-filled-user-1")
def _note_users_filled_projects(sender: Any, instance: Any, **_: Any) -> None:
    """A user's deletion takes their annotations with it: note the projects where they had
    submitted one, whose kept counts (filled traces, progress) are counted again once they are
    gone."""
    instance._steplens_submitted_in = set(
        Annotation.objects.filter(annotator_id=instance.pk, status=AnnotationStatus.SUBMITTED)
        .values_list("trace__project_id", flat=True)
        .distinct()
    )


@receiver(post_delete, sender=settings.AUTH_USER_MODEL, dispatch_uid="steplens-filled-user-2")
def _recount_users_filled_projects(sender: Any, instance: Any, **_: Any) -> None:
    for project_id in sorted(getattr(instance, "_steplens_submitted_in", ())):
        counts.project_filled_recount(project_id=project_id)
