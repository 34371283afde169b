"""Template pieces of review that other apps' pages show (the trace page's skip form)."""

from __future__ import annotations

from typing import Any

from django import template

from annotate.models import Project
from review import services
from review.models import QueueStrategy, SkipReason

register = template.Library()


@register.inclusion_tag("review/_skip_form.html", takes_context=True)
def skip_form(context: template.Context, trace_id: int) -> dict[str, Any]:
    """The annotator's "skip this trace" form: a reason, an optional note, posted to review."""
    return {
        "trace_id": trace_id,
        "skip_reasons": SkipReason.choices,
        "csrf_token": context.get("csrf_token"),
    }


@register.inclusion_tag("review/_queue_settings_form.html", takes_context=True)
def queue_settings_form(context: template.Context, project: Project) -> dict[str, Any]:
    """The queue's settings (order, lease time) for the project's settings page, posted to review."""
    return {
        "project": project,
        "queue_settings": services.queue_settings_get(project=project),
        "strategies": [(v, label, services.STRATEGY_HELP[v]) for v, label in QueueStrategy.choices],
        "csrf_token": context.get("csrf_token"),
    }
