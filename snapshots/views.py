"""Browser views of exports: the page (create, list), its polled progress partial, file downloads."""

from __future__ import annotations

import json
import re

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotate import selectors as annotate_selectors
from annotate.models import Role

from . import selectors, services, training
from .models import ExportFileFormat, ExportFormat, LabelPolicy, NeutralMapping
from .plots import curve_svg, loss_svg

# How often the progress partial asks again while a build runs.
POLL_MS = 1000


class ExportForm(forms.Form):
    name = forms.SlugField(
        max_length=100, help_text="A new version is made each time you reuse a name."
    )
    format = forms.ChoiceField(choices=ExportFormat.choices)
    file_format = forms.ChoiceField(
        choices=ExportFileFormat.choices,
        initial=ExportFileFormat.JSONL,
        help_text=f"Parquet for {', '.join(services.PARQUET_FORMATS)}.",
    )
    labels = forms.ChoiceField(choices=LabelPolicy.choices, initial=LabelPolicy.GOLD)
    min_agreement = forms.FloatField(
        min_value=0.0,
        max_value=1.0,
        initial=0.0,
        help_text="majority / all: a step whose annotators agree less than this is left unlabelled.",
    )
    neutral = forms.ChoiceField(choices=NeutralMapping.choices, required=False)
    test_fraction = forms.FloatField(
        min_value=0.0, max_value=0.99, initial=0.0, help_text="Share of problems in the test split."
    )
    seed = forms.IntegerField(min_value=0, max_value=2**31 - 1, initial=0)
    subsets = forms.CharField(required=False, help_text="Comma-separated; empty: all subsets.")
    select = forms.ChoiceField(
        choices=[("labels", "All-correct human labels"), ("scorer", "A PRM's top k")],
        required=False,
        help_text="sft only.",
    )
    scorer = forms.CharField(required=False, help_text="sft by PRM: the scorer's name.")
    top_k = forms.IntegerField(min_value=1, required=False, help_text="sft: traces per problem.")
    selection = forms.IntegerField(required=False, widget=forms.HiddenInput)
    identities = forms.BooleanField(
        required=False,
        label="Include identities",
        help_text="Your name in the dataset card, and annotators' submission times and active "
        "seconds in the rows. Off: annotators are pseudonyms and their times are withheld.",
    )

    # Fields that only some formats read. The page shows a format's own fields and hides the
    # others as the format changes (static/steplens/forms.js: in the page, so nothing typed is
    # redrawn away); a POST validates only the chosen format's fields.
    SFT_ONLY = ("select", "scorer", "top_k")

    def __init__(self, *args: object, format: str = ExportFormat.TRL, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        chosen = format if format in ExportFormat.values else ExportFormat.TRL
        self.fields["format"].initial = chosen
        parquet = ",".join(str(f) for f in services.PARQUET_FORMATS)
        self.fields["file_format"].widget.attrs["data-shown-when"] = f"format={parquet}"
        for name in self.SFT_ONLY:
            self.fields[name].widget.attrs["data-shown-when"] = f"format={ExportFormat.SFT}"
        if self.is_bound:
            if chosen not in services.PARQUET_FORMATS:
                del self.fields["file_format"]
            if chosen != ExportFormat.SFT:
                for name in self.SFT_ONLY:
                    del self.fields[name]


# The services' messages name the command's flags and the API's fields; the page names its own
# fields instead (the labels a person sees on this form).
_PAGE_WORDS = [
    (re.compile(r" \(the `\w+` field(?: in the API and on the page)?\)"), ""),
    (re.compile(r"--labels (gold|majority|all)"), lambda m: f"Labels “{LabelPolicy(m[1]).label}”"),
    (re.compile(r"--labels all / majority / gold"), "another Labels choice"),
    (re.compile(r"--neutral positive\|negative\|drop"), "the Neutral field"),
    (re.compile(r"--neutral (\w+)"), lambda m: f"Neutral “{NeutralMapping(m[1]).label}”"),
    (re.compile(r"--split test=FRACTION"), "Test fraction"),
    (re.compile(r"--seed"), "Seed"),
    (re.compile(r"--include-flagged \(include_flagged\)"), "flagged problems are included"),
    (re.compile(r"--user"), "a user"),
]


def page_words(message: str) -> str:
    """A service's message as the exports page says it (its field labels, not CLI flags).

    >>> page_words("so --labels gold would write no rows: --labels all (every annotator's "
    ...            "pass) gives rows (the `labels` field in the API and on the page).")
    "so Labels “Gold labels (imported or adjudicated)” would write no rows: Labels “Every annotator (one row each, pseudonymised)” (every annotator's pass) gives rows."
    """
    for pattern, replacement in _PAGE_WORDS:
        message = pattern.sub(replacement, message)  # type: ignore[arg-type]
    return message


def _options(data: dict[str, object]) -> dict[str, object]:
    if data["format"] != ExportFormat.SFT:
        return {}
    keys = ("select", "scorer", "top_k")
    return {key: data[key] for key in keys if data.get(key) not in (None, "")}


@login_required
@require_http_methods(["GET", "POST"])
def exports_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = selectors.project_for_export(user=request.user, slug=slug)
    chosen = (request.POST or request.GET).get("format", ExportFormat.TRL)
    # A link may preset fields (?format=sft&name=...).
    form = ExportForm(
        request.POST or None,
        format=chosen,
        initial={k: v for k, v in request.GET.items() if k != "csrfmiddlewaretoken"},
    )
    raw = (request.POST or request.GET).get("selection", "")
    selection = (
        selectors.export_selection(project=project, selection_id=int(raw))
        if raw.isdigit()
        else None
    )
    if selection is not None:
        form.fields["selection"].initial = selection.pk
    else:
        del form.fields["selection"]
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            snapshot = services.export_snapshot_create(
                project=project,
                user=request.user,
                name=data["name"],
                format=data["format"],
                file_format=data.get("file_format") or ExportFileFormat.JSONL,
                labels=data["labels"],
                min_agreement=data["min_agreement"],
                neutral=data["neutral"] or "",
                test_fraction=data["test_fraction"],
                seed=data["seed"],
                filters={
                    "subsets": data["subsets"],
                    **({"traces": selection.trace_ids} if selection else {}),
                },
                options=_options(data),
                identities=data["identities"],
            )
        except ValidationError as err:
            for field, errors in err.message_dict.items():
                form.add_error(
                    field if field in form.fields else None, [page_words(e) for e in errors]
                )
        else:
            messages.success(request, f"Export {snapshot.name} v{snapshot.version} queued.")
            return redirect("snapshots:exports", slug=project.slug)
    snapshots = selectors.export_list_for_user(user=request.user, project=project)[:50]
    return render(
        request,
        "snapshots/exports.html",
        {
            "project": project,
            "form": form,
            "snapshots": snapshots,
            "poll_ms": POLL_MS,
            "selection": selection,
        },
        status=400 if form.errors else 200,
    )


@login_required
@require_GET
def export_row(request: HttpRequest, snapshot_id: int) -> HttpResponse:
    """One snapshot's row; while it builds, it carries the trigger that polls it again."""
    snapshot = selectors.export_get_for_user(user=request.user, snapshot_id=snapshot_id)
    return render(request, "snapshots/exports_row.html", {"snapshot": snapshot, "poll_ms": POLL_MS})


@login_required
@require_POST
def export_action(request: HttpRequest, snapshot_id: int, action: str) -> HttpResponse:
    """Cancel a queued or running build, or retry a failed one (the project's reviewers)."""
    snapshot = selectors.export_get_for_user(user=request.user, snapshot_id=snapshot_id)
    try:
        if action == "cancel":
            services.export_snapshot_cancel(snapshot=snapshot, user=request.user)
        else:
            services.export_snapshot_retry(snapshot=snapshot)
    except ValidationError as err:
        messages.error(request, " ".join(err.messages))
    return redirect("snapshots:exports", slug=snapshot.project.slug)


@login_required
@require_GET
def export_download(request: HttpRequest, snapshot_id: int, filename: str) -> FileResponse:
    snapshot = selectors.export_get_for_user(user=request.user, snapshot_id=snapshot_id)
    path = selectors.export_file_path(snapshot=snapshot, filename=filename)
    name = selectors.export_download_name(snapshot=snapshot, filename=filename)
    return FileResponse(path.open("rb"), as_attachment=True, filename=name)


# --- training PRMs (docs/training.md) -------------------------------------------------------------


_BLANK = "Blank: the base's default (docs/training.md)."


class TrainingForm(forms.Form):
    snapshot = forms.CharField(
        max_length=120, help_text="A TRL JSON Lines snapshot: NAME or NAME@VERSION (the latest)."
    )
    base = forms.CharField(
        max_length=500, initial="tiny", help_text="'tiny' or a local model directory (absolute)."
    )
    scorer = forms.SlugField(max_length=100, help_text="A new version of this scorer is made.")
    # Blank: the base's defaults (base tiny: the measured configuration, docs/training.md; a
    # local model: the engine's, one epoch at 1e-5, max length 2048, TRL's head).
    epochs = forms.FloatField(min_value=0.01, required=False, help_text=_BLANK)
    learning_rate = forms.FloatField(
        min_value=1e-8, max_value=0.99, required=False, help_text=_BLANK
    )
    max_length = forms.IntegerField(min_value=2, required=False, help_text=_BLANK)
    seed = forms.IntegerField(min_value=0, max_value=2**31 - 1, initial=0)
    head = forms.ChoiceField(
        choices=[
            ("", "the base's default"),
            ("token_classification", "TRL token classification"),
            ("qwen_extra0", "Qwen <extra_0> head"),
        ],
        required=False,
    )
    curve = forms.BooleanField(
        required=False, help_text="Also train on 25/50/75% (learning curve)."
    )
    more = forms.CharField(
        required=False,
        label="More parameters",
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text='Other engine parameters as a JSON object, e.g. {"warmup_ratio": 0.1} '
        "(docs/training.md).",
    )

    def clean_more(self) -> dict[str, object]:
        raw = self.cleaned_data["more"].strip()
        if not raw:
            return {}
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise forms.ValidationError("A JSON object, {...}.")
        return value


@login_required
@require_http_methods(["GET", "POST"])
def training_page(request: HttpRequest, slug: str) -> HttpResponse:
    """A project's training runs, the form that starts one, the live scorer and its log."""
    project = training.project_for_training(user=request.user, slug=slug, min_role=Role.REVIEWER)
    can_train = annotate_selectors.role_at_least(
        annotate_selectors.project_role(user=request.user, project=project), training.TRAIN_MIN_ROLE
    )
    form = TrainingForm(request.POST if request.method == "POST" else None)
    if request.method == "POST":
        training.project_for_training(user=request.user, slug=slug)  # admins only
        if form.is_valid():
            data = form.cleaned_data
            params = {
                k: data[k]
                for k in ("epochs", "learning_rate", "max_length", "seed", "head")
                if data[k] not in (None, "")
            }
            params.update(data["more"])
            try:
                run = training.training_run_create(
                    user=request.user,
                    project=project,
                    snapshot=data["snapshot"],
                    base=data["base"],
                    scorer_name=data["scorer"],
                    params=params,
                    curve=data["curve"],
                )
            except ValidationError as err:
                for field, errors in err.message_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                return redirect("snapshots:training_run", training_run_id=run.pk)
    return render(
        request,
        "snapshots/training.html",
        {
            "project": project,
            "form": form,
            "can_train": can_train,
            "runs": training.training_run_list_for_user(user=request.user, project=project)[:50],
            "live": training.live_scorer(project=project),
            "promotions": project.promotions.select_related("scorer", "by")[:20],
            "snapshots": project.exports.filter(format="trl", status="done")[:20],
        },
        status=400 if form.errors else 200,
    )


def _run_context(request: HttpRequest, training_run_id: int) -> dict[str, object]:
    run = training.training_run_get_for_user(user=request.user, run_id=training_run_id)
    role = annotate_selectors.project_role(user=request.user, project=run.project)
    live = training.live_scorer(project=run.project)
    return {
        "run": run,
        "project": run.project,
        "stale": training.is_stale(run),
        "can_train": annotate_selectors.role_at_least(role, training.TRAIN_MIN_ROLE),
        "can_promote": annotate_selectors.role_at_least(role, training.PROMOTE_MIN_ROLE),
        "is_live": live is not None
        and run.scorer_id == live.scorer_id
        and run.scorer_version == live.scorer_version,
        "loss_svg": loss_svg(run.loss_curve),
        "curve_svg": curve_svg(run.learning_curve),
        "poll_ms": POLL_MS,
    }


@login_required
@require_GET
def training_run(request: HttpRequest, training_run_id: int) -> HttpResponse:
    return render(request, "snapshots/training_run.html", _run_context(request, training_run_id))


@login_required
@require_GET
def training_run_status(request: HttpRequest, training_run_id: int) -> HttpResponse:
    """The run's progress partial; polled (htmx) while the run is queued or running."""
    return render(
        request, "snapshots/_training_status.html", _run_context(request, training_run_id)
    )


@login_required
@require_POST
def training_run_action(request: HttpRequest, training_run_id: int, action: str) -> HttpResponse:
    """cancel / restart (project admins), promote (reviewers and admins)."""
    run = training.training_run_get_for_user(user=request.user, run_id=training_run_id)
    try:
        if action == "promote":
            training.project_for_training(
                user=request.user, slug=run.project.slug, min_role=training.PROMOTE_MIN_ROLE
            )
            if run.scorer is None:
                raise ValidationError("This run produced no scorer version.")
            training.scorer_promote(
                project=run.project, scorer=run.scorer, user=request.user, run=run
            )
            messages.success(request, f"{run.scorer.name} v{run.scorer_version} is live.")
        elif action in ("cancel", "restart"):
            training.project_for_training(user=request.user, slug=run.project.slug)
            if action == "cancel":
                training.training_run_cancel(run=run)
            else:
                run = training.training_run_restart(run=run, user=request.user)
        else:
            raise Http404("No such action.")
    except ValidationError as err:
        messages.error(request, " ".join(err.messages))
    return redirect("snapshots:training_run", training_run_id=run.pk)


@login_required
@require_POST
def live_scorer_demote(request: HttpRequest, slug: str) -> HttpResponse:
    project = training.project_for_training(
        user=request.user, slug=slug, min_role=training.PROMOTE_MIN_ROLE
    )
    try:
        training.scorer_demote(project=project, user=request.user)
    except ValidationError as err:
        messages.error(request, " ".join(err.messages))
    return redirect("snapshots:training", slug=project.slug)
