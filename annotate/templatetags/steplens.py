"""Template filters of the labelling pages: safe Markdown + LaTeX, label values, durations."""

from __future__ import annotations

import json
from typing import Any

from django import template
from django.conf import settings
from django.urls import reverse
from django.utils.html import conditional_escape, escape
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


@register.simple_tag(takes_context=True)
def step_controls(context: template.Context, view: Any, oob: bool = False) -> SafeString:
    """One step's label controls (the labelling page's rows and htmx's out-of-band answer),
    re-rendered from the saved state after every change. A real form: without JavaScript each
    button posts and the page comes back; with it, keyboard.js records the change in the
    browser's change log, paints it here at once and sends it in order.

    Written in Python rather than as a template (it was annotate/partials/step_controls.html,
    whose output this reproduces byte for byte: tests/annotate/test_trace_page_html.py): a page
    renders it once per step, and the template's ~50 nodes a step were most of the page's
    rendering time (issue 16). Every value from outside is escaped."""
    idx = view.step.index
    num = idx + 1
    label = view.label
    value = label.value if label is not None else None
    flagged = bool(label.flagged) if label is not None else False
    source = (label.source if label is not None else "") or "hand"
    keys, names = context.get("keys") or {}, context.get("label_names") or {}
    url = escape(context.get("steps_url", ""))
    key = {
        name: escape(keys.get(name, ""))
        for name in ("plus", "zero", "minus", "first_error", "flag")
    }

    def pressed(on: bool) -> str:
        return "true" if on else "false"

    parts = [
        f'\n\n<form class="step-controls" id="step-{idx}-controls" method="post" '
        f'action="{url}{idx}/label/"\n'
        f'      data-value="{"" if value is None else escape(value)}" '
        f'data-source="{escape(source)}"{" data-flagged" if flagged else ""}'
        f"{' hx-swap-oob=' + chr(34) + 'true' + chr(34) if oob else ''}>\n"
        f"  {_csrf_input(context.get('csrf_token'))}\n  \n"
    ]
    if context.get("is_first_error"):
        badge = escape(signed(value))
        parts.append(
            f'    <span class="value-badge" aria-label="Step {num} label: {badge or "none"}">'
            f"{badge or '·'}</span>\n  \n"
        )
    else:
        parts.append(
            f'    <div class="label-group" role="group" aria-label="Label step {num}">\n'
            f'      <button type="submit" id="s{idx}-plus" class="lbl lbl-plus" data-action="plus" '
            f'data-label-value="1"\n'
            f'              name="value" value="{"" if value == 1 else "1"}"\n'
            f'              aria-pressed="{pressed(value == 1)}" aria-label="Step {num}: '
            f'{escape(names.get("plus", ""))} (+1)" aria-keyshortcuts="{key["plus"]}">+1</button>\n'
            f"      \n"
        )
        if context.get("is_ternary"):
            parts.append(
                f'      <button type="submit" id="s{idx}-zero" class="lbl lbl-zero" '
                f'data-action="zero" data-label-value="0"\n'
                f'              name="value" value="{"" if value == 0 else "0"}"\n'
                f'              aria-pressed="{pressed(value == 0)}" aria-label="Step {num}: '
                f'{escape(names.get("zero", ""))} (0)" aria-keyshortcuts="{key["zero"]}">0</button>\n'
                f"      \n"
            )
        parts.append(
            f'      <button type="submit" id="s{idx}-minus" class="lbl lbl-minus" '
            f'data-action="minus" data-label-value="-1"\n'
            f'              name="value" value="{"" if value == -1 else "-1"}"\n'
            f'              aria-pressed="{pressed(value == -1)}" aria-label="Step {num}: '
            f'{escape(names.get("minus", ""))} (\u22121)" aria-keyshortcuts="{key["minus"]}">'
            f"&minus;1</button>\n    </div>\n  \n"
        )
    filled = value is not None and source == "filled"
    first_error_here = context.get("first_error_index") == idx
    parts.append(
        f'  <span class="source-mark" title="Filled in by first-error / all-correct, not set by '
        f'hand"{"" if filled else " hidden"}>filled</span>\n'
        f'  <button type="submit" id="s{idx}-first-error" class="btn-small btn-first-error" '
        f'data-action="first-error"\n'
        f'          formaction="{url}{idx}/first-error/"\n'
        f'          aria-pressed="{pressed(first_error_here)}" aria-label="Step {num}: first wrong '
        f'step here" aria-keyshortcuts="{key["first_error"]}"\n'
        f'          title="First wrong step here: earlier steps +1, this one \u22121, later ones '
        f'cleared; labels you set by hand are kept ({key["first_error"]})">'
        f"{'First wrong step' if context.get('is_first_error') else 'First error'}</button>\n"
        f'  <button type="submit" id="s{idx}-flag" class="btn-small btn-flag" data-action="flag"\n'
        f'          name="flagged" value="{"0" if flagged else "1"}"\n'
        f'          aria-pressed="{pressed(flagged)}" aria-label="Step {num}: flag" '
        f'aria-keyshortcuts="{key["flag"]}"\n'
        f'          title="Flag this step ({key["flag"]})"><span aria-hidden="true">\u2691</span> '
        f"Flag</button>\n</form>\n\n"
    )
    return SafeString("".join(parts))


@register.simple_tag(takes_context=True)
def step_row(context: template.Context, view: Any) -> SafeString:
    """One step's row of the labelling page (annotate/partials/step_sections.html): its number,
    its text (HTML kept at import, `view.html`), the scores' place, the note and the controls.
    Written in Python for the reason `step_controls` is (a page renders it once per step; issue
    16), byte for byte what the template's loop body wrote (tests/annotate/
    test_trace_page_html.py). Every value from outside is escaped; `view.html` is the stored,
    sanitised HTML (annotate.rendering), kept as it is, as the template's `{{ view.html }}` did."""
    step = view.step
    idx = step.index
    num = idx + 1
    part = escape(step.part)
    note_key = escape((context.get("keys") or {}).get("note", ""))
    note = escape(view.label.note) if view.label is not None else ""
    return SafeString(
        f'\n<li class="step step-part-{part}" id="step-{idx}" data-index="{idx}" '
        f'data-part="{part}" tabindex="-1" aria-labelledby="step-{idx}-title">\n'
        f'  <div class="step-gutter"><span class="step-no" id="step-{idx}-title" '
        f'aria-label="Step {num}">{num}</span><span class="save-state" role="status" '
        f'aria-live="polite"></span></div>\n'
        f'  <div class="step-body">\n'
        f'    <div class="md step-text">{conditional_escape(view.html)}</div>\n'
        f'    <span id="step-scores-{step.pk}" class="step-scores"></span>\n'
        f'    <textarea class="note" name="note" id="note-{idx}" rows="1" maxlength="20000"\n'
        f'              placeholder="Note on step {num} ({note_key})" aria-label="Note on step '
        f'{num}" aria-keyshortcuts="{note_key}">{note}</textarea>\n'
        f"  </div>\n"
        f"  {step_controls(context, view)}\n</li>\n"
    )


def _csrf_input(token: Any) -> str:
    """What Django's {% csrf_token %} renders (django/template/defaulttags.py, CsrfTokenNode)."""
    if not token or token == "NOTPROVIDED":
        return ""
    return f'<input type="hidden" name="csrfmiddlewaretoken" value="{escape(token)}">'
