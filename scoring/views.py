"""Browser views of the model side: the live score panel of the labelling page, Best-of-N, retry."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from annotate import selectors as annotate_selectors
from annotate.models import Role

from . import selectors, services
from .models import RunQueue, ScoreRun
from .prm.aggregate import AGGREGATIONS


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
@require_GET
def problem_best_of_n(request: HttpRequest, problem_id: int) -> HttpResponse:
    """A problem's N traces ranked by a scorer's aggregate score, next to the reference answer."""
    problem = annotate_selectors.problem_get_for_user(user=request.user, problem_id=problem_id)
    scorers = list(selectors.scorers_for_project(project=problem.project))
    name = request.GET.get("scorer") or (scorers[0].name if scorers else "")
    scorer = next((s for s in scorers if s.name == name), None)
    how = request.GET.get("how", "min")
    if how not in AGGREGATIONS:
        how = "min"
    ranked: list[selectors.RankedTrace] = []
    if scorer is not None:
        problem, ranked = selectors.problem_best_of_n(
            user=request.user, problem_id=problem_id, scorer=scorer, how=how
        )
    role = annotate_selectors.project_role(user=request.user, project=problem.project)
    return render(
        request,
        "scoring/best_of_n.html",
        {
            "problem": problem,
            "scorers": scorers,
            "scorer": scorer,
            "how": how,
            "aggregations": AGGREGATIONS,
            "ranked": ranked,
            "unscored": sum(1 for r in ranked if r.status is None),
            "pending": any(r.pending for r in ranked),
            "show_correctness": annotate_selectors.role_at_least(role, Role.REVIEWER),
        },
    )


@login_required
@require_POST
def problem_best_of_n_score(request: HttpRequest, problem_id: int) -> HttpResponse:
    """Score the problem's traces that this scorer has not scored yet (interactive queue: a
    person is waiting on the page), then back to the ranking, which refreshes until done."""
    problem = annotate_selectors.problem_get_for_user(user=request.user, problem_id=problem_id)
    scorer = get_object_or_404(
        selectors.scorers_for_project(project=problem.project), name=request.POST.get("scorer", "")
    )
    services.score_runs_enqueue(
        traces=list(problem.traces.all()), scorers=[scorer], queue=RunQueue.INTERACTIVE
    )
    how = request.POST.get("how", "min")
    query = urlencode({"scorer": scorer.name, "how": how if how in AGGREGATIONS else "min"})
    return redirect(f"{reverse('scoring:best_of_n', args=[problem.pk])}?{query}")


@login_required
def project_scorers(request: HttpRequest, slug: str) -> HttpResponse:
    """Project admins choose which registered scorers score their project."""
    project = annotate_selectors.project_get_for_user(
        user=request.user, slug=slug, min_role=Role.ADMIN
    )
    available = list(selectors.scorer_list_for_user(user=request.user))
    if request.method == "POST":
        names = set(request.POST.getlist("scorer"))
        services.project_scorers_set(
            project=project, scorers=[s for s in available if s.name in names]
        )
        return redirect(reverse("scoring:project_scorers", args=[project.slug]))
    chosen = set(selectors.scorers_for_project(project=project).values_list("pk", flat=True))
    return render(
        request,
        "scoring/project_scorers.html",
        {"project": project, "rows": [(s, s.pk in chosen) for s in available]},
    )
