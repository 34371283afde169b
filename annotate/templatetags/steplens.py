"""Template filters of the labelling pages: safe Markdown + LaTeX, label values, durations."""

from __future__ import annotations

import json
from typing import Any

from django import template
from django.conf import settings
from django.urls import reverse
from django.utils.safestring import SafeString

from annotate.images import ImageAddress, image_address
from annotate.models import Project
from annotate.rendering import render_markdown, short_trace_id, table_markdown
from annotate.tables import Table, table_or_none

register = template.Library()


@register.filter
def fragment(text: str | None, fragments: dict[str, SafeString] | None) -> SafeString:
    """Untrusted Markdown + LaTeX as sanitised HTML (the only way data reaches a page as HTML):
    from the fragments its view read (annotate.rendered.html_many, one query for the page), or
    rendered here if the view did not ask for this text."""
    text = text or ""
    found = fragments.get(text) if isinstance(fragments, dict) else None
    return found if found is not None else render_markdown(text)


@register.filter
def table_html(table: Table, fragments: dict[str, SafeString] | None = None) -> SafeString:
    """A table's grid as sanitised HTML (its cells are untrusted Markdown + LaTeX), from the
    view's fragments when it asked for it (annotate.rendered.problem_texts)."""
    return fragment(table_markdown(table.header, table.rows), fragments)


@register.filter
def table_grid(value: Any) -> Table | None:
    """A problem's table as header and rows (annotate.tables), None if it is not in the schema."""
    return table_or_none(value)


@register.filter
def as_json(value: Any) -> str:
    """Stored JSON as readable text (escaped by the template like any text)."""
    return json.dumps(value, indent=1, ensure_ascii=False)


@register.filter
def short_id(trace: object) -> str:
    """A trace's short id (annotate.rendering.short_trace_id); its full id goes in a title."""
    return short_trace_id(str(getattr(trace, "external_id", trace)))


@register.filter
def get_item(mapping: object, key: str) -> object:
    """mapping[key] in a template, None when absent."""
    return mapping.get(key) if isinstance(mapping, dict) else None


@register.filter
def signed(value: int | None) -> str:
    """A label value as annotators read it: +1, 0, −1 (typographic minus), or an empty string."""
    if value is None:
        return ""
    return {1: "+1", 0: "0", -1: "\u22121"}.get(value, str(value))


@register.filter
def duration(seconds: float | None) -> str:
    """Active time as m:ss (or h:mm:ss)."""
    total = int(seconds or 0)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


@register.filter
def image(address: object, project: Project | None = None) -> ImageAddress:
    """A problem image's address: what the page loads (`src`), or why it does not (`refused`).
    Remote hosts: the site's STEPLENS_IMAGE_HOSTS and the project's own; an image bundled with
    an import is served by the project's image route."""
    hosts = [*settings.STEPLENS_IMAGE_HOSTS, *(project.image_hosts if project else [])]
    return image_address(
        address,
        allowed_hosts=hosts,
        bundle_url=(
            (lambda name: reverse("annotate:problem_image", args=[project.slug, name]))
            if project is not None
            else None
        ),
    )
