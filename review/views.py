"""Review pages: the annotator's queue (next, skip) and the admin's strategy; the adjudication
queue and page and agreement (reviewers); the PRM audit and its queue of worst disagreements;
Best-of-N. Thin: each parses input, calls one service or selector and renders."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from rest_framework.exceptions import ValidationError as DRFValidationError

from annotate import selectors as annotate_selectors
from annotate import services as annotate_services
from annotate.images import with_project_images
from annotate.models import Role
from annotate.rendered import (
    ANSWER_EXCERPT_CHARS,
    QUEUE_EXCERPT_CHARS,
    excerpt,
    html_many,
    problem_texts,
)
from config.types import AuthedRequest
from scoring import services as scoring_services
from scoring.models import RunQueue
from scoring.prm.aggregate import RANKINGS
from scoring.selectors import scorers_for_project

from . import audit, browser, bulk, sampling, selectors, services
from .models import BulkActionKind, QueueStrategy, SkipReason
from .plots import calibration_svg, f1_svg, position_svg, roc_svg

GOLD_CHOICES = [("1", "+1 correct"), ("0", "0 neutral"), ("-1", "−1 wrong"), ("", "clear gold")]


class GoldForm(forms.Form):
    value = forms.ChoiceField(choices=GOLD_CHOICES, required=False)
    rationale = forms.CharField(max_length=5000, widget=forms.Textarea(attrs={"rows": 2}))

    def gold_value(self) -> int | None:
        raw = self.cleaned_data["value"]
        return int(raw) if raw != "" else None


class SkipForm(forms.Form):
    reason = forms.ChoiceField(choices=SkipReason.choices)
    note = forms.CharField(max_length=2000, required=False)


class StrategyForm(forms.Form):
    strategy = forms.ChoiceField(choices=QueueStrategy.choices)
    lease_minutes = forms.IntegerField(min_value=1, max_value=24 * 60, required=False)


def _errors(form: forms.Form) -> str:
    return " ".join(str(e) for errors in form.errors.values() for e in errors)


@login_required
@require_GET
def review_queue(request: AuthedRequest, slug: str) -> HttpResponse:
    """The adjudication queue: steps where submitted annotations disagree, widest splits first."""
    project = annotate_selectors.project_get_for_user(
        user=request.user, slug=slug, min_role=Role.REVIEWER
    )
    show_resolved = request.GET.get("resolved") == "1"
    rows = selectors.disagreement_list(project=project, include_resolved=show_resolved)
    return render(
        request,
        "review/disagreements.html",
        {"project": project, "rows": rows, "show_resolved": show_resolved},
    )


@login_required
@require_http_methods(["GET", "POST"])
def adjudicate(request: AuthedRequest, trace_id: int) -> HttpResponse:
    """Every annotator's labels, notes and time beside the PRM scores; the reviewer sets gold."""
    data = selectors.adjudication_for_user(user=request.user, trace_id=trace_id)
    error_step, error = None, ""
    if request.method == "POST":
        form = GoldForm(request.POST)
        try:
            index = int(request.POST.get("index", ""))
        except ValueError:
            index = -1
        step = annotate_selectors.step_get(trace=data.trace, index=index)
        if form.is_valid():
            try:
                services.gold_set(
                    user=request.user,
                    step=step,
                    value=form.gold_value(),
                    rationale=form.cleaned_data["rationale"],
                )
            except ValidationError as exc:
                error = " ".join(exc.messages)
            else:
                messages.success(request, f"Gold label of step {index + 1} saved.")
                return redirect(reverse("review:adjudicate", args=[trace_id]) + f"#step-{index}")
        else:
            error = _errors(form)
        error_step = index
    # The problem's and steps' HTML, rendered once and kept (annotate.rendered): one query.
    fragments = html_many(
        [
            *problem_texts(data.trace.problem, reference_solution=False),
            *(s.step.text for s in data.steps),
        ]
    )
    response = render(
        request,
        "review/adjudicate.html",
        {
            "a": data,
            "fragments": fragments,
            "gold_choices": GOLD_CHOICES,
            "error_step": error_step,
            "error": error,
        },
        status=400 if error else 200,
    )
    return with_project_images(response, data.project)


@login_required
@require_GET
def agreement(request: AuthedRequest, slug: str) -> HttpResponse:
    """Cohen's kappa per pair, Fleiss' kappa, Krippendorff's alpha, first-wrong-step agreement,
    and each annotator's pace and agreement with gold."""
    project, report = selectors.agreement_for_user(user=request.user, slug=slug)
    return render(
        request,
        "review/agreement.html",
        {
            "project": project,
            "r": report,
            "warning": sampling.agreement_warning(report.steps_multi),  # type: ignore[attr-defined]
        },
    )


@login_required
@require_POST
def trace_skip(request: AuthedRequest, trace_id: int) -> HttpResponse:
    """Skip a trace with a reason; its slot goes back to the queue and the next trace opens."""
    trace = annotate_selectors.trace_get_for_user(user=request.user, trace_id=trace_id)
    form = SkipForm(request.POST)
    if not form.is_valid():
        messages.error(request, _errors(form))
        return redirect("review:queue", slug=trace.project.slug)
    try:
        services.assignment_skip(
            user=request.user,
            trace=trace,
            reason=form.cleaned_data["reason"],
            note=form.cleaned_data["note"],
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("review:queue", slug=trace.project.slug)
    messages.success(request, f"Skipped trace {trace.external_id}.")
    return redirect(reverse("review:next", args=[trace.project.slug]) + f"?after={trace.pk}")


@login_required
@require_POST
def queue_strategy(request: AuthedRequest, slug: str) -> HttpResponse:
    """A project admin picks the order the labelling queue hands traces out in."""
    project = annotate_selectors.project_get_for_user(
        user=request.user, slug=slug, min_role=Role.ADMIN
    )
    form = StrategyForm(request.POST)
    if form.is_valid():
        services.strategy_set(
            project=project,
            strategy=form.cleaned_data["strategy"],
            lease_minutes=form.cleaned_data["lease_minutes"],
        )
        messages.success(request, "Queue settings saved.")
    else:
        messages.error(request, _errors(form))
    if request.POST.get("back") == "settings":
        return redirect("annotate:project_settings", slug=project.slug)
    return redirect("review:queue", slug=project.slug)


# --- the annotator's queue ---------------------------------------------------------------------


@login_required
@require_GET
def queue(request: AuthedRequest, slug: str) -> HttpResponse:
    project = annotate_selectors.project_get_for_user(user=request.user, slug=slug)
    role = annotate_selectors.project_role(user=request.user, project=project)
    upcoming = services.queue_preview(user=request.user, project=project, limit=30)
    submitted = annotate_selectors.queue_submitted(user=request.user, project=project)
    # The guidelines and the problems' excerpts, rendered once and kept: one query.
    fragments = html_many(
        [
            project.guidelines,
            *(excerpt(t.problem.text, QUEUE_EXCERPT_CHARS) for t in [*upcoming, *submitted]),
        ]
    )
    return render(
        request,
        "review/queue.html",
        {
            "project": project,
            "fragments": fragments,
            "progress": annotate_selectors.labelling_progress(user=request.user, project=project),
            "upcoming": upcoming,
            "submitted": submitted,
            "can_import": annotate_selectors.role_at_least(role, Role.ADMIN),
            "can_review": annotate_selectors.role_at_least(role, Role.REVIEWER),
            "queue_settings": services.queue_settings_get(project=project),
            "strategies": [
                (value, label, services.STRATEGY_HELP[value])
                for value, label in QueueStrategy.choices
            ],
            "skip_reasons": SkipReason.choices,
        },
    )


@login_required
@require_GET
def queue_next(request: AuthedRequest, slug: str) -> HttpResponse:
    """Open the annotator's next trace (one they hold or started, else the queue's best)."""
    project = annotate_selectors.project_get_for_user(user=request.user, slug=slug)
    after = request.GET.get("after")
    # Through the queue: a held or started trace, else the best open one, leasing nothing: the
    # slot is taken by the first label (services.lease_on_start), so browsing fills no slot.
    trace = services.next_trace_peek(
        user=request.user,
        project=project,
        after_trace_id=int(after) if after and after.isdigit() else None,
    )
    if trace is None:
        messages.success(request, "Your queue is empty: every trace assigned to you is done.")
        return redirect("review:queue", slug=project.slug)
    return redirect("annotate:trace", trace_id=trace.pk)


# --- the PRM audit -----------------------------------------------------------------------------


def _threshold(request: HttpRequest) -> float | None:
    try:
        value = float(request.GET.get("threshold", ""))
    except ValueError:
        return None
    return value if 0.0 <= value <= 1.0 else None


@login_required
@require_GET
def audit_page(request: HttpRequest, slug: str) -> HttpResponse:
    project, scorer, report = audit.audit_for_user(
        user=request.user,
        slug=slug,
        scorer_name=request.GET.get("scorer") or None,
        threshold=_threshold(request),
    )
    context: dict[str, Any] = {
        "project": project,
        "scorer": scorer,
        "scorers": list(scorers_for_project(project=project)),
        "r": report,
    }
    if report is not None:
        context["plots"] = [
            calibration_svg(report["calibration"], report["ece"]),
            roc_svg(report["roc"], report["auroc"]),
            f1_svg(report["f1_curve"], report["threshold"], report["best_threshold"]["threshold"]),
            position_svg(report["by_position"]),
        ]
        context["worst"] = report["worst"][:10]
        context["breakdowns"] = [
            ("generator", report["by_generator"]),
            ("subset", report["by_subset"]),
        ]
    return render(request, "review/audit.html", context)


@login_required
@require_GET
def audit_queue(request: HttpRequest, slug: str) -> HttpResponse:
    """The scorer's most confident mistakes on gold-labelled steps, each opening the trace."""
    project, scorer, report = audit.audit_for_user(
        user=request.user,
        slug=slug,
        scorer_name=request.GET.get("scorer") or None,
        threshold=_threshold(request),
    )
    return render(
        request,
        "review/audit_queue.html",
        {
            "project": project,
            "scorer": scorer,
            "r": report,
            "worst": report["worst"] if report else [],
        },
    )


# --- Best-of-N ---------------------------------------------------------------------------------


@login_required
@require_GET
def problem_best_of_n(request: HttpRequest, problem_id: int) -> HttpResponse:
    """A problem's N traces ranked by a scorer's aggregate score, next to the reference answer."""
    problem = annotate_selectors.problem_get_for_user(user=request.user, problem_id=problem_id)
    scorers = list(scorers_for_project(project=problem.project))
    name = request.GET.get("scorer") or (scorers[0].name if scorers else "")
    scorer = next((s for s in scorers if s.name == name), None)
    how = request.GET.get("how", "min")
    if how not in RANKINGS:
        how = "min"
    ranked: list[selectors.RankedTrace] = []
    if scorer is not None:
        problem, ranked = selectors.problem_best_of_n(
            user=request.user, problem_id=problem_id, scorer=scorer, how=how
        )
    role = annotate_selectors.project_role(user=request.user, project=problem.project)
    # The problem's and the final answers' HTML, rendered once and kept: one query.
    fragments = html_many(
        [
            problem.text,
            problem.reference_answer,
            *(excerpt(r.trace.final_answer, ANSWER_EXCERPT_CHARS) for r in ranked),
        ]
    )
    return render(
        request,
        "review/best_of_n.html",
        {
            "problem": problem,
            "fragments": fragments,
            "scorers": scorers,
            "scorer": scorer,
            "how": how,
            "aggregations": RANKINGS,
            "ranked": ranked,
            "sample": selectors.problem_best_of_n_sample(
                problem=problem, scorer=scorer, ranked=ranked
            )
            if scorer is not None
            else None,
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
        scorers_for_project(project=problem.project), name=request.POST.get("scorer", "")
    )
    scoring_services.score_runs_enqueue(
        traces=list(problem.traces.all()), scorers=[scorer], queue=RunQueue.INTERACTIVE
    )
    how = request.POST.get("how", "min")
    query = urlencode({"scorer": scorer.name, "how": how if how in RANKINGS else "min"})
    return redirect(f"{reverse('review:best_of_n', args=[problem.pk])}?{query}")


# --- the data browser -----------------------------------------------------------------------------


@login_required
@require_GET
def data_browser(request: AuthedRequest, slug: str) -> HttpResponse:
    """Every trace of the project, filtered by the URL's query (shareable), with bulk actions."""
    project = annotate_selectors.project_get_for_user(
        user=request.user, slug=slug, min_role=Role.REVIEWER
    )
    try:
        values = browser.filter_parse(request.GET)
    except DRFValidationError as exc:
        values, error = {}, exc.detail
    else:
        error = None
    page = browser.trace_page(project=project, values=values)
    role = annotate_selectors.project_role(user=request.user, project=project)
    return render(
        request,
        "review/data.html",
        {
            "project": project,
            "values": values,
            "error": error,
            "page": page,
            "query": browser.filter_query(values),
            "choices": browser.filter_choices(project=project),
            "statuses": browser.STATUS_CHOICES,
            "prm_choices": browser.PRM_CHOICES,
            "correct_choices": browser.CORRECT_CHOICES,
            "yes_no": browser.YES_NO,
            "sorts": list(browser.SORTS),
            "members": annotate_selectors.project_members(project=project),
            "scorers": scorers_for_project(project=project),
            "actions": [
                (kind.value, kind.label)
                for kind in BulkActionKind
                if annotate_selectors.role_at_least(role, bulk.MIN_ROLE[kind])
            ],
            "prev_query": browser.filter_query(values, page=page.page - 1),
            "next_query": browser.filter_query(values, page=page.page + 1),
        },
        status=400 if error else 200,
    )


@login_required
@require_POST
def data_bulk(request: AuthedRequest, slug: str) -> HttpResponse:
    """Apply a bulk action to the picked traces or the whole filter, then back to the browser."""
    project = annotate_selectors.project_get_for_user(
        user=request.user, slug=slug, min_role=Role.REVIEWER
    )
    query = request.POST.get("query", "")
    back = reverse("review:data", args=[project.slug]) + (f"?{query}" if query else "")
    try:
        ids = browser.bulk_targets(
            project=project,
            query=query,
            trace_ids=[int(i) for i in request.POST.getlist("trace") if i.isdigit()],
            whole_filter=request.POST.get("scope") == "filter",
        )
        done = bulk.traces_bulk(
            user=request.user,
            project=project,
            action=request.POST.get("action", ""),
            trace_ids=ids,
            query=query,
            options={
                k: request.POST.get(k, "")
                for k in ("annotator", "scorer", "confirm")
                if request.POST.get(k)
            },
        )
    except (ValidationError, DRFValidationError) as exc:
        detail = exc.messages if isinstance(exc, ValidationError) else [str(exc.detail)]
        messages.error(request, " ".join(detail))
    else:
        if done.action == BulkActionKind.EXPORT:
            # The exports page (snapshots) makes the snapshot of exactly the logged traces.
            return redirect(
                reverse("snapshots:exports", args=[project.slug]) + f"?selection={done.pk}"
            )
        messages.success(
            request,
            f"{done.get_action_display()}: {done.changed} of {done.selected} traces changed.",
        )
    return redirect(back)


# --- members --------------------------------------------------------------------------------------


class MemberForm(forms.Form):
    op = forms.ChoiceField(
        choices=[(op, op) for op in ("add", "create", "role", "remove", "deactivate", "activate")]
    )
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices, required=False)
    password = forms.CharField(required=False, widget=forms.PasswordInput)


@login_required
@require_http_methods(["GET", "POST"])
def members(request: AuthedRequest, slug: str) -> HttpResponse:
    """The project's members (admins): add existing accounts or create them, set roles, remove;
    each member's progress and agreement, so that a lead sees who needs help."""
    project = annotate_selectors.project_get_for_user(
        user=request.user, slug=slug, min_role=Role.ADMIN
    )
    if request.method == "POST":
        form = MemberForm(request.POST)
        if not form.is_valid():
            messages.error(request, _errors(form))
            return redirect("review:members", slug=project.slug)
        data = form.cleaned_data
        try:
            if data["op"] in ("add", "create"):
                annotate_services.member_add(
                    project=project,
                    username=data["username"],
                    role=data["role"] or Role.ANNOTATOR,
                    password=data["password"],
                    create=data["op"] == "create",
                )
                messages.success(request, f"{data['username']} is a member now.")
            else:
                member = get_object_or_404(
                    annotate_selectors.project_members(project=project),
                    user__username=data["username"],
                )
                if data["op"] in ("deactivate", "activate"):
                    if not annotate_selectors.user_is_site_admin(user=request.user):
                        raise PermissionDenied("Site admins only.")
                    annotate_services.account_set_active(
                        user=member.user, active=data["op"] == "activate"
                    )
                    messages.success(request, f"{data['username']}'s account is {data['op']}d.")
                elif data["op"] == "role":
                    annotate_services.membership_set(
                        project=project, user=member.user, role=data["role"] or Role.ANNOTATOR
                    )
                    messages.success(request, f"{data['username']} is {data['role']} now.")
                else:
                    annotate_services.member_remove(project=project, user=member.user)
                    messages.success(request, f"{data['username']} no longer sees the project.")
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        return redirect("review:members", slug=project.slug)
    return render(
        request,
        "review/members.html",
        {
            "project": project,
            "rows": selectors.member_progress(project=project),
            "roles": Role.choices,
            "is_site_admin": annotate_selectors.user_is_site_admin(user=request.user),
        },
    )
