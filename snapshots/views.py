"""Browser views of exports: the page (create, list), its polled progress partial, file downloads."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from . import selectors, services
from .models import ExportFileFormat, ExportFormat, LabelPolicy, NeutralMapping

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
    seed = forms.IntegerField(min_value=0, initial=0)
    subsets = forms.CharField(required=False, help_text="Comma-separated; empty: all subsets.")
    select = forms.ChoiceField(
        choices=[("labels", "All-correct human labels"), ("scorer", "A PRM's top k")],
        required=False,
        help_text="sft only.",
    )
    scorer = forms.CharField(required=False, help_text="sft by PRM: the scorer's name.")
    top_k = forms.IntegerField(min_value=1, required=False, help_text="sft: traces per problem.")


def _options(data: dict[str, object]) -> dict[str, object]:
    if data["format"] != ExportFormat.SFT:
        return {}
    keys = ("select", "scorer", "top_k")
    return {key: data[key] for key in keys if data.get(key) not in (None, "")}


@login_required
@require_http_methods(["GET", "POST"])
def exports_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = selectors.project_for_export(user=request.user, slug=slug)
    form = ExportForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            snapshot = services.export_snapshot_create(
                project=project,
                user=request.user,
                name=data["name"],
                format=data["format"],
                file_format=data["file_format"],
                labels=data["labels"],
                min_agreement=data["min_agreement"],
                neutral=data["neutral"] or "",
                test_fraction=data["test_fraction"],
                seed=data["seed"],
                filters={"subsets": data["subsets"]},
                options=_options(data),
            )
        except ValidationError as err:
            for field, errors in err.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(request, f"Export {snapshot.name} v{snapshot.version} queued.")
            return redirect("snapshots:exports", slug=project.slug)
    snapshots = selectors.export_list_for_user(user=request.user, project=project)[:50]
    return render(
        request,
        "snapshots/exports.html",
        {"project": project, "form": form, "snapshots": snapshots, "poll_ms": POLL_MS},
        status=400 if form.errors else 200,
    )


@login_required
@require_GET
def export_row(request: HttpRequest, snapshot_id: int) -> HttpResponse:
    """One snapshot's row; while it builds, it carries the trigger that polls it again."""
    snapshot = selectors.export_get_for_user(user=request.user, snapshot_id=snapshot_id)
    return render(request, "snapshots/exports_row.html", {"snapshot": snapshot, "poll_ms": POLL_MS})


@login_required
@require_GET
def export_download(request: HttpRequest, snapshot_id: int, filename: str) -> FileResponse:
    snapshot = selectors.export_get_for_user(user=request.user, snapshot_id=snapshot_id)
    path = selectors.export_file_path(snapshot=snapshot, filename=filename)
    name = f"{snapshot.project.slug}-{snapshot.name}-v{snapshot.version}-{filename}"
    return FileResponse(path.open("rb"), as_attachment=True, filename=name)
