"""Browser views of the model side: the live score panel of the labelling page, Best-of-N, retry."""

from __future__ import annotations

import dataclasses
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from annotate import selectors as annotate_selectors
from annotate.models import Role

from . import selectors, services
from .models import Backend, RunQueue, ScoreRun
from .prm.params import BACKEND_PARAMS


def poll_delay_ms(poll: int) -> int:
    """How long the panel waits before asking again, by how often it has asked already.

    Soon at first (a tiny or tool PRM is done in tens of ms), then less often, so a slow
    generative PRM or a stopped worker costs one cheap request a second per open trace.
    """
    if poll < 3:
        return 100
    if poll < 20:
        return 250
    return 1000


def _panel(request: HttpRequest, trace_id: int, *, error: str = "") -> HttpResponse:
    view = selectors.trace_scores(user=request.user, trace_id=trace_id)
    try:
        poll = max(0, int(request.GET.get("poll", "0")))
    except ValueError:
        poll = 0
    return render(
        request,
        "scoring/panel.html",
        {"view": view, "next_poll": poll + 1, "delay_ms": poll_delay_ms(poll), "error": error},
    )


@login_required
@require_POST
def trace_scores_open(request: HttpRequest, trace_id: int) -> HttpResponse:
    """Opening a trace: enqueue what is missing on the interactive queue, render the panel."""
    trace = annotate_selectors.trace_get_for_user(user=request.user, trace_id=trace_id)
    scorers = list(selectors.scorers_for_project(project=trace.project))
    services.score_runs_enqueue(traces=[trace], scorers=scorers, queue=RunQueue.INTERACTIVE)
    return _panel(request, trace_id)


@login_required
@require_GET
def trace_scores_panel(request: HttpRequest, trace_id: int) -> HttpResponse:
    return _panel(request, trace_id)


@login_required
@require_POST
def score_run_retry(request: HttpRequest, run_id: int) -> HttpResponse:
    run = ScoreRun.objects.select_related("trace").filter(pk=run_id).first()
    trace_id = run.trace_id if run else 0
    # Through the permission selector: an outsider gets 404 whether or not the run exists.
    annotate_selectors.trace_get_for_user(user=request.user, trace_id=trace_id)
    error = ""
    try:
        services.score_run_retry(run=run)  # type: ignore[arg-type]
    except ValidationError as exc:
        error = "; ".join(exc.messages)
    return _panel(request, trace_id, error=error)


@login_required
def project_scorers(request: HttpRequest, slug: str) -> HttpResponse:
    """Project admins choose which registered scorers score their project."""
    project = annotate_selectors.project_get_for_user(
        user=request.user, slug=slug, min_role=Role.ADMIN
    )
    available = list(selectors.scorers_to_choose_from(user=request.user, project=project))
    if request.method == "POST":
        names = set(request.POST.getlist("scorer"))
        services.project_scorers_set(
            project=project, scorers=[s for s in available if s.name in names]
        )
        return redirect(reverse("scoring:project_scorers", args=[project.slug]))
    chosen = set(selectors.scorers_for_project(project=project).values_list("pk", flat=True))
    coverage = selectors.scorer_coverage(project=project)
    return render(
        request,
        "scoring/project_scorers.html",
        {
            "project": project,
            "rows": [(s, s.pk in chosen) for s in available],
            "coverage": coverage,
            "busy": any(c.busy for c in coverage),
        },
    )


class ScorerForm(forms.Form):
    """A new scorer for one project; the choice of backends is the visitor's
    (scoring.selectors.scorer_backends_for)."""

    name = forms.SlugField(
        max_length=100, help_text="Its name in pages, exports and commands, e.g. qwen-prm-7b."
    )
    backend = forms.ChoiceField(
        error_messages={
            "invalid_choice": "Only a site admin can register a %(value)s scorer (it loads a "
            "model or calls a server from the workers)."
        }
    )
    model_path = forms.CharField(
        required=False,
        max_length=500,
        label="Model path",
        help_text="The model's directory on the workers (read with from_pretrained, local files "
        "only; nothing is downloaded). A remote scorer: the served model's name.",
    )
    revision = forms.CharField(required=False, max_length=100)
    params = forms.JSONField(
        required=False,
        label="Parameters",
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text='A JSON object of the backend\'s parameters, e.g. {"pass_score": 0.8}; empty: '
        "the defaults. No secrets: a remote server's key stays in the workers' environment, "
        'and "api_key_env" names the variable.',
    )
    threshold = forms.FloatField(
        min_value=0, max_value=1, initial=0.5, help_text="A step scoring at or below this is wrong."
    )

    def __init__(self, *args: Any, backends: list[Backend], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["backend"].choices = [(b.value, b.label) for b in backends]

    def clean_params(self) -> dict[str, Any]:
        params = self.cleaned_data.get("params")
        if params in (None, ""):
            return {}
        if not isinstance(params, dict):
            raise ValidationError('A JSON object, e.g. {"pass_score": 0.8}.')
        return params


def _backend_params(backends: list[Backend]) -> list[tuple[str, list[tuple[str, str]]]]:
    """Each offered backend's parameters and defaults, for the form's reference table."""
    rows = []
    for backend in backends:
        cls = BACKEND_PARAMS.get(backend.value)
        fields = dataclasses.fields(cls) if cls else ()
        rows.append((backend.value, [(f.name, repr(f.default)) for f in fields]))
    return rows


@login_required
def project_scorer_new(request: HttpRequest, slug: str) -> HttpResponse:
    """Register a new scorer and attach it to this project (project admins: the backends that
    run no model; site admins: every backend)."""
    project = annotate_selectors.project_get_for_user(
        user=request.user, slug=slug, min_role=Role.ADMIN
    )
    backends = selectors.scorer_backends_for(user=request.user, project=project)
    form = ScorerForm(request.POST or None, backends=backends)
    if request.method == "POST" and form.is_valid():
        try:
            scorer = services.scorer_create(**form.cleaned_data, projects=[project])
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(request, f"Registered {scorer.name}; it now scores this project.")
            return redirect(reverse("scoring:project_scorers", args=[project.slug]))
    return render(
        request,
        "scoring/scorer_new.html",
        {
            "project": project,
            "form": form,
            "backend_params": _backend_params(backends),
            "every_backend": len(backends) == len(Backend),
        },
    )


@login_required
@require_GET
def project_coverage(request: HttpRequest, slug: str) -> HttpResponse:
    """The coverage table alone (htmx polls it while runs are queued)."""
    project = annotate_selectors.project_get_for_user(
        user=request.user, slug=slug, min_role=Role.ADMIN
    )
    coverage = selectors.scorer_coverage(project=project)
    busy = any(c.busy for c in coverage)
    response = render(
        request, "scoring/_coverage.html", {"project": project, "coverage": coverage, "busy": busy}
    )
    if not busy:
        response.status_code = HttpResponseStopPolling.status_code
    return response


@login_required
@require_POST
def project_score_all(request: HttpRequest, slug: str) -> HttpResponse:
    """ "Score all": enqueue the scorer's missing (and failed) runs of every trace on the bulk queue."""
    project = annotate_selectors.project_get_for_user(
        user=request.user, slug=slug, min_role=Role.ADMIN
    )
    scorer = get_object_or_404(
        selectors.scorers_for_project(project=project), name=request.POST.get("scorer", "")
    )
    runs = services.project_backfill(project=project, scorer=scorer, retry_failed=True)
    messages.success(request, f"{len(runs)} traces queued for {scorer.name} on the bulk queue.")
    return redirect(reverse("scoring:project_scorers", args=[project.slug]))
