"""Review pages (reviewers): the adjudication queue and page, agreement and annotator statistics;
and the annotator's skip and the admin's queue strategy, which change the labelling queue."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import queues, selectors, services
from .models import QueueStrategy, Role, SkipReason
from .views import AuthedRequest

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


def _errors(form: forms.Form) -> str:
    return " ".join(str(e) for errors in form.errors.values() for e in errors)


@login_required
@require_GET
def review_queue(request: AuthedRequest, slug: str) -> HttpResponse:
    """The adjudication queue: steps where submitted annotations disagree, widest splits first."""
    project = selectors.project_get_for_user(user=request.user, slug=slug, min_role=Role.REVIEWER)
    show_resolved = request.GET.get("resolved") == "1"
    rows = selectors.disagreement_list(project=project, include_resolved=show_resolved)
    return render(
        request,
        "annotate/review/queue.html",
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
        step = selectors.step_get(trace=data.trace, index=index)
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
                return redirect(reverse("annotate:adjudicate", args=[trace_id]) + f"#step-{index}")
        else:
            error = _errors(form)
        error_step = index
    return render(
        request,
        "annotate/review/adjudicate.html",
        {
            "a": data,
            "gold_choices": GOLD_CHOICES,
            "error_step": error_step,
            "error": error,
        },
        status=400 if error else 200,
    )


@login_required
@require_GET
def agreement(request: AuthedRequest, slug: str) -> HttpResponse:
    """Cohen's kappa per pair, Fleiss' kappa, Krippendorff's alpha, first-wrong-step agreement,
    and each annotator's pace and agreement with gold."""
    project, report = selectors.agreement_for_user(user=request.user, slug=slug)
    return render(request, "annotate/review/agreement.html", {"project": project, "r": report})


@login_required
@require_POST
def trace_skip(request: AuthedRequest, trace_id: int) -> HttpResponse:
    """Skip a trace with a reason; its slot goes back to the queue and the next trace opens."""
    trace = selectors.trace_get_for_user(user=request.user, trace_id=trace_id)
    form = SkipForm(request.POST)
    if not form.is_valid():
        messages.error(request, _errors(form))
        return redirect("annotate:queue", slug=trace.project.slug)
    try:
        queues.assignment_skip(
            user=request.user,
            trace=trace,
            reason=form.cleaned_data["reason"],
            note=form.cleaned_data["note"],
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("annotate:queue", slug=trace.project.slug)
    messages.success(request, f"Skipped trace {trace.external_id}.")
    return redirect(reverse("annotate:next", args=[trace.project.slug]) + f"?after={trace.pk}")


@login_required
@require_POST
def queue_strategy(request: AuthedRequest, slug: str) -> HttpResponse:
    """A project admin picks the order the labelling queue hands traces out in."""
    project = selectors.project_get_for_user(user=request.user, slug=slug, min_role=Role.ADMIN)
    form = StrategyForm(request.POST)
    if form.is_valid():
        queues.strategy_set(project=project, strategy=form.cleaned_data["strategy"])
        messages.success(request, "Queue strategy saved.")
    else:
        messages.error(request, _errors(form))
    return redirect("annotate:queue", slug=project.slug)
