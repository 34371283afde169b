"""Template pieces of review that other apps' pages show (the trace page's skip form)."""

from __future__ import annotations

from typing import Any

from django import template

from review.models import SkipReason

register = template.Library()


@register.inclusion_tag("review/_skip_form.html", takes_context=True)
def skip_form(context: template.Context, trace_id: int) -> dict[str, Any]:
    """The annotator's "skip this trace" form: a reason, an optional note, posted to review."""
    return {
        "trace_id": trace_id,
        "skip_reasons": SkipReason.choices,
        "csrf_token": context.get("csrf_token"),
    }
