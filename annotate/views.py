"""Browser views: thin, each parses input, calls one service or selector and renders."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from config.types import AuthedRequest

from . import bundles, import_jobs, selectors, services, tokens
from .forms import (
    HeartbeatForm,
    ImportForm,
    ProjectCreateForm,
    ProjectSettingsForm,
    StepLabelForm,
    SubmitForm,
)
from .hotkeys import hotkeys_for
from .images import with_project_images
from .imports import ImportFileError, project_for_import, traces_import
from .models import (
    Annotation,
    FinishReason,
    LabelScheme,
    Role,
    Step,
    StepLabel,
    StepPart,
    Trace,
)
from .rendered import html_many, problem_texts
from .rendering import render_markdown

# ---------------------------------------------------------------------------------------------
# Projects and queues


@login_required
@require_GET
def home(request: AuthedRequest) -> HttpResponse:
    projects = list(selectors.project_list_for_user(user=request.user))
    roles = selectors.project_roles_for_user(user=request.user, projects=projects)
    rows = [
        {
            "project": project,
            "role": roles.get(project.pk),
            "progress": selectors.labelling_progress(user=request.user, project=project),
            "can_import": selectors.role_at_least(roles.get(project.pk), Role.ADMIN),
        }
        for project in projects
    ]
    return render(
        request,
        "annotate/home.html",
        {"rows": rows, "is_site_admin": selectors.user_is_site_admin(user=request.user)},
    )


@login_required
@require_http_methods(["GET", "POST"])
def project_new(request: AuthedRequest) -> HttpResponse:
    """A new project, made in the app (site admins), then its settings and members."""
    if not selectors.user_is_site_admin(user=request.user):
        raise PermissionDenied("Site admins only.")
    form = ProjectCreateForm(request.POST or None, initial={"overlap": 1})
    if request.method == "POST" and form.is_valid():
        try:
            project = services.project_create(**form.cleaned_data)
        except ValidationError as exc:
            _form_errors(form, exc)
        else:
            messages.success(request, f"Project {project.slug} created: now add its members.")
            return redirect("annotate:project_settings", slug=project.slug)
    return render(
        request, "annotate/project_new.html", {"form": form}, status=400 if form.errors else 200
    )


@login_required
@require_http_methods(["GET", "POST"])
def project_settings(request: AuthedRequest, slug: str) -> HttpResponse:
    """The project's settings (admins): name, guidelines with a preview, scheme, overlap, blind;
    the queue's settings and the scorers are drawn by review's and scoring's own pieces."""
    project = selectors.project_get_for_user(user=request.user, slug=slug, min_role=Role.ADMIN)
    fields = ("name", "guidelines", "label_scheme", "overlap", "blind", "hotkeys", "image_hosts")
    form = ProjectSettingsForm(
        request.POST or None, initial={f: getattr(project, f) for f in fields}
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.project_update(project=project, **form.cleaned_data)
        except ValidationError as exc:
            _form_errors(form, exc)
        else:
            messages.success(request, "Settings saved.")
            return redirect("annotate:project_settings", slug=project.slug)
    return render(
        request,
        "annotate/project_settings.html",
        {"project": project, "form": form},
        status=400 if form.errors else 200,
    )


@login_required
@require_GET
def annotator_preview(request: AuthedRequest, slug: str) -> HttpResponse:
    """What an annotator sees with the project's current settings (reviewers and admins): the
    guidelines, label names, keys and legend, and a trace of the project rendered by the labelling
    page's own partials with every control disabled. Reads only: no label, annotation, lease or
    score run is made, and no rendered HTML is stored."""
    raw = request.GET.get("trace", "")
    if raw and not raw.isdigit():
        raise Http404(f"No trace {raw!r} in this project.")
    preview = selectors.annotator_preview(
        user=request.user, slug=slug, trace_id=int(raw) if raw else None
    )
    project = preview.project
    context: dict[str, Any] = {
        "project": project,
        "preview": preview,
        "guidelines_html": render_markdown(project.guidelines),
        "keys": preview.hotkeys["keys"],
        "label_names": preview.hotkeys["label_names"],
        "legend": preview.hotkeys["legend"],
        "scheme": project.label_scheme,
        "is_ternary": project.label_scheme == LabelScheme.TERNARY,
        "is_first_error": project.label_scheme == LabelScheme.FIRST_ERROR,
        "scheme_label": LabelScheme(project.label_scheme).label,
    }
    data = preview.sample
    if data is not None:
        # Rendered like the labelling page (render_markdown) but not stored: a preview writes nothing.
        for view in data.steps:
            view.html = render_markdown(view.step.text)
        context.update(
            {
                "t": data,
                "sections": _step_sections(data),
                "steps_url": reverse("annotate:step_label", args=[data.trace.pk, 0]).removesuffix(
                    "0/label/"
                ),
                "first_error_index": None,
                "labelled_count": 0,
                "step_count": len(data.steps),
                "all_correct": False,
                "has_reference": bool(data.problem.reference_answer),
                "finish_reasons": FinishReason.choices,
                "problem_html": render_markdown(data.problem.text),
                "reference_answer_html": render_markdown(data.problem.reference_answer),
                "reference_solution_html": "",
                "final_answer_html": render_markdown(data.trace.final_answer),
            }
        )
    response = render(request, "annotate/annotator_preview.html", context)
    return with_project_images(response, project)


@login_required
@require_POST
def guidelines_preview(request: AuthedRequest, slug: str) -> HttpResponse:
    """The guidelines as annotators will see them (htmx, while the admin types)."""
    selectors.project_get_for_user(user=request.user, slug=slug, min_role=Role.ADMIN)
    return HttpResponse(render_markdown(request.POST.get("guidelines", "")))


@login_required
@require_GET
def doc_page(request: AuthedRequest, name: str) -> HttpResponse:
    """One of the docs/ pages (exports, formats, api...), rendered like any untrusted Markdown."""
    path = settings.BASE_DIR / "docs" / f"{name}.md"
    if not path.is_file():
        raise Http404("No such page.")
    text = path.read_text(encoding="utf-8")
    # Kept like a problem's HTML (annotate.rendered): a docs page changes only on deploy.
    return render(
        request,
        "annotate/doc.html",
        {"name": name, "body": html_many([text])[text]},
    )


def _form_errors(form: Any, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


# ---------------------------------------------------------------------------------------------
# The labelling page


def _scheme_context(trace: Trace) -> dict[str, Any]:
    """What the step partials need from the project: keys, label names, scheme flags."""
    scheme = trace.project.label_scheme
    hotkeys = hotkeys_for(hotkeys=trace.project.hotkeys, scheme=scheme)
    return {
        # The steps' form addresses share this prefix: one reversal per page instead of two per
        # step (a 500-step page spent 0.24 s in reverse()); a test checks it against reverse().
        "steps_url": reverse("annotate:step_label", args=[trace.pk, 0]).removesuffix("0/label/"),
        "keys": hotkeys["keys"],
        "label_names": hotkeys["label_names"],
        "legend": hotkeys["legend"],
        "scheme": scheme,
        "is_ternary": scheme == LabelScheme.TERNARY,
        "is_first_error": scheme == LabelScheme.FIRST_ERROR,
    }


def _label_context(data: selectors.TraceForAnnotation) -> dict[str, Any]:
    """What the step partials need besides the steps: first wrong step, counts, scheme flags."""
    values = [view.label.value if view.label else None for view in data.steps]
    labelled = sum(value is not None for value in values)
    first_error = next(
        (view.step.index for view in data.steps if view.label and view.label.value == -1), None
    )
    return {
        "t": data,
        **_scheme_context(data.trace),
        "first_error_index": first_error,
        "labelled_count": labelled,
        "step_count": len(values),
        "all_correct": bool(values) and all(value == 1 for value in values),
    }


def _step_sections(
    data: selectors.TraceForAnnotation,
) -> list[tuple[str, str, list[selectors.StepView]]]:
    """Steps in their stored order, a heading wherever the part changes (thinking, response,
    thinking again...): the keyboard labels the n-th row as step n, so rows are never regrouped."""
    sections: list[tuple[str, str, list[selectors.StepView]]] = []
    for view in data.steps:
        part = StepPart(view.step.part)
        if not sections or sections[-1][0] != part:
            sections.append((str(part), str(part.label) if data.has_thinking else "", []))
        sections[-1][2].append(view)
    return sections


def _trace_page(
    request: AuthedRequest, trace_id: int, *, submit_error: str = "", status: int = 200
) -> HttpResponse:
    data = selectors.trace_for_annotation(user=request.user, trace_id=trace_id)
    context = _label_context(data)
    # Every text of the page as HTML rendered once and kept (annotate.rendered): one query.
    html = html_many(
        [
            *problem_texts(data.problem, reference_solution=data.show_reference_solution),
            data.trace.final_answer,
            *(view.step.text for view in data.steps),
        ]
    )
    for view in data.steps:
        view.html = html[view.step.text]
    sections = _step_sections(data)
    context.update(
        {
            "has_reference": bool(
                data.problem.reference_answer
                or (data.show_reference_solution and data.problem.reference_solution)
            ),
            # What keyboard.js needs (json_script): the change log's address and key, the keys.
            "page_config": {
                "trace": data.trace.pk,
                "user": request.user.pk,
                "scheme": context["scheme"],
                "keys": context["keys"],
                "changesUrl": reverse("api:label-changes", args=[data.trace.pk]),
                "heartbeatUrl": reverse("annotate:heartbeat", args=[data.trace.pk]),
                "loginUrl": reverse("login"),
                "started": data.annotation is not None,
            },
            "sections": sections,
            "progress": selectors.labelling_progress(user=request.user, project=data.project),
            "finish_reasons": FinishReason.choices,
            "chosen_reason": request.POST.get("finish_reason", "")
            if submit_error
            else (data.annotation.finish_reason if data.annotation else ""),
            "submit_error": submit_error,
            "problem_html": html[data.problem.text],
            "reference_answer_html": html[data.problem.reference_answer],
            "reference_solution_html": html[data.problem.reference_solution]
            if data.show_reference_solution
            else "",
            "final_answer_html": html[data.trace.final_answer],
            "fragments": html,  # the problem's table (annotate/partials/problem_media.html)
        }
    )
    # The keyboard legend shows twice (side card, help dialog): rendered once.
    context["shortcuts_html"] = render_to_string("annotate/partials/shortcuts.html", context)
    response = render(request, "annotate/trace.html", context, status=status)
    return with_project_images(response, data.project)


@login_required
@require_GET
def trace(request: AuthedRequest, trace_id: int) -> HttpResponse:
    return _trace_page(request, trace_id)


def _label_response(
    request: AuthedRequest,
    trace: Trace,
    indexes: list[int] | None,
    error: str = "",
    annotation: Annotation | None = None,
    steps: list[Step] | None = None,
) -> HttpResponse:
    """The saved state, re-read: htmx gets the changed steps' controls (out of band), others a
    redirect back to the page (the buttons work without JavaScript too)."""
    if not request.htmx:
        if error:
            messages.error(request, error)
        return redirect(reverse("annotate:trace", args=[trace.pk]))
    data = selectors.trace_for_annotation_of(
        user=request.user, trace=trace, annotation=annotation, steps=steps
    )
    context = _label_context(data)
    context["changed"] = [
        view for view in data.steps if indexes is None or view.step.index in indexes
    ]
    context["label_error"] = error
    return render(request, "annotate/partials/label_response.html", context)


def _error_text(error: ValidationError) -> str:
    return " ".join(error.messages)


def _saved_label_response(
    request: AuthedRequest, trace: Trace, label: StepLabel, index: int
) -> HttpResponse:
    """htmx: the saved step's controls and the trace's label status (out of band), from the
    upsert's returned row and the annotation's label counts (returned by the upsert itself on
    PostgreSQL, one count elsewhere, none after the first label: the annotation's only one); no
    step is read."""
    step = Step(pk=label.step_id, trace_id=trace.pk, index=index)
    label.step = step
    status = selectors.label_status_after(
        label,
        step_count=trace.step_count,  # type: ignore[attr-defined]
    )
    context = {
        "t": {"trace": trace},
        **_scheme_context(trace),
        "changed": [selectors.StepView(step=step, label=label, gold=None)],
        "first_error_index": status.first_error_index,
        "labelled_count": status.labelled,
        "step_count": status.step_count,
        "all_correct": status.all_correct,
        "label_error": "",
    }
    return render(request, "annotate/partials/label_response.html", context)


@login_required
@require_POST
def step_label(request: AuthedRequest, trace_id: int, index: int) -> HttpResponse:
    """Save any of value / flagged / note for one step (one click, one keystroke, one note).

    A save of a started trace is five queries: session, user, the trace with the user's role,
    annotation id and step count (selectors.trace_get_for_label), the upsert (which finds the
    step itself) and, for htmx, one count of the labels (tests/annotate/test_views.py)."""
    trace = selectors.trace_get_for_label(user=request.user, trace_id=trace_id)
    form = StepLabelForm(request.POST)
    error = ""
    label = None
    if form.is_valid():
        try:
            label = services.label_set_at(
                user=request.user,
                trace=trace,
                index=index,
                annotation_id=trace.my_annotation_id,  # type: ignore[attr-defined]
                **form.changes(),
            )
        except ValidationError as invalid:
            error = _error_text(invalid)
    else:
        error = _error_text(ValidationError(list(form.errors.values())))
    if error:  # the whole trace (the label path's has only what a save needs) for the page
        trace = selectors.trace_get_for_user(user=request.user, trace_id=trace_id)
        selectors.step_get(trace=trace, index=index)  # a step that does not exist: 404 first
        return _label_response(request, trace, [index], error=error)
    if label is None:
        raise Http404(f"This trace has no step {index}.")
    if not request.htmx:
        return redirect(reverse("annotate:trace", args=[trace.pk]))
    return _saved_label_response(request, trace, label, index)


@login_required
@require_POST
def step_first_error(request: AuthedRequest, trace_id: int, index: int) -> HttpResponse:
    """This step is the first wrong one: earlier steps +1, this one −1, later ones cleared."""
    trace = selectors.trace_get_for_user(user=request.user, trace_id=trace_id)
    step = selectors.step_get(trace=trace, index=index)
    services.label_first_error(user=request.user, step=step)
    return _label_response(request, trace, None)


@login_required
@require_POST
def trace_all_correct(request: AuthedRequest, trace_id: int) -> HttpResponse:
    """No wrong step: every step +1."""
    trace = selectors.trace_get_for_user(user=request.user, trace_id=trace_id)
    services.label_all_correct(user=request.user, trace=trace)
    return _label_response(request, trace, None)


@login_required
@require_POST
def trace_submit(request: AuthedRequest, trace_id: int) -> HttpResponse:
    """Submit, then open the next trace of the queue (or the queue when it is empty)."""
    trace = selectors.trace_get_for_user(user=request.user, trace_id=trace_id)
    form = SubmitForm(request.POST)
    if not form.is_valid():
        return _trace_page(
            request,
            trace_id,
            submit_error=_error_text(ValidationError(list(form.errors["finish_reason"]))),
            status=400,
        )
    reveals = trace.project.blind and not selectors.annotation_revealed(
        user=request.user, trace=trace
    )
    try:
        services.annotation_submit(
            user=request.user, trace=trace, finish_reason=form.cleaned_data["finish_reason"] or None
        )
    except ValidationError as error:
        return _trace_page(request, trace_id, submit_error=_error_text(error), status=400)
    if reveals:
        # Blind project: this submit reveals the PRM scores; stay so the annotator can see them
        # and revise (the label as first submitted is kept apart); the next submit moves on.
        messages.info(
            request,
            "Submitted. The PRM scores are now shown: revise if you wish, then submit again "
            "to move on (your first answer is kept).",
        )
        url = reverse("annotate:trace", args=[trace.pk])
    else:
        messages.success(request, f"Submitted trace {trace.external_id}.")
        url = reverse("review:next", args=[trace.project.slug]) + f"?after={trace.pk}"
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


@login_required
@require_POST
def trace_heartbeat(request: AuthedRequest, trace_id: int) -> HttpResponse:
    """Active time: the page posts the seconds the annotator was active since its last beat."""
    trace = selectors.trace_get_for_user(user=request.user, trace_id=trace_id)
    form = HeartbeatForm(request.POST)
    if not form.is_valid():
        return HttpResponse(_error_text(ValidationError(list(form.errors["seconds"]))), status=400)
    annotation = services.annotation_add_active_time(
        user=request.user, trace=trace, seconds=form.cleaned_data["seconds"]
    )
    return HttpResponse(f"{annotation.active_seconds:.0f}", content_type="text/plain")


# ---------------------------------------------------------------------------------------------
# Imports


@login_required
def import_traces(request: AuthedRequest) -> HttpResponse:
    """Upload a file into a project the user administers; a site admin may name a new project."""
    is_site_admin = selectors.user_is_site_admin(user=request.user)
    projects = list(selectors.project_list_for_user(user=request.user))
    roles = selectors.project_roles_for_user(user=request.user, projects=projects)
    admin_projects = [p for p in projects if selectors.role_at_least(roles.get(p.pk), Role.ADMIN)]
    if not admin_projects and not is_site_admin:
        raise Http404("You administer no project.")
    form = ImportForm(
        request.POST or None,
        request.FILES or None,
        projects=admin_projects,
        can_create=is_site_admin,
        initial={"project": request.GET.get("project", "")},
    )
    result = None
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        if import_jobs.import_is_large(size=upload.size):
            # A large file: kept on disk and imported by a worker; its page shows the progress.
            slug = form.cleaned_data["project_slug"]
            job = import_jobs.import_job_create(
                user=request.user,
                project=selectors.project_import_target(user=request.user, slug=slug),
                project_slug=slug,
                upload=upload,
                format=form.cleaned_data["format"],
                subset=form.cleaned_data["subset"],
            )
            return redirect("annotate:import_job", job_id=job.pk)
        try:
            # One transaction: a refused file leaves no trace, not even a newly created project.
            with transaction.atomic():
                if is_site_admin:
                    project, _ = project_for_import(slug=form.cleaned_data["project_slug"])
                else:
                    project = selectors.project_get_for_user(
                        user=request.user,
                        slug=form.cleaned_data["project_slug"],
                        min_role=Role.ADMIN,
                    )
                result = traces_import(
                    project=project,
                    stream=upload,
                    filename=upload.name,
                    format=form.cleaned_data["format"],
                    subset=form.cleaned_data["subset"],
                )
        except ImportFileError as error:
            form.add_error("file", f"Nothing was imported. {error}")
        except ValidationError as error:
            form.add_error(None, f"Nothing was imported. {_error_text(error)}")
    status = 400 if request.method == "POST" and result is None else 200
    context = {
        "form": form,
        "result": result,
        "jobs": import_jobs.import_job_list_for_user(user=request.user)[:10],
        "sync_max": settings.STEPLENS_IMPORT_SYNC_MAX_BYTES,
    }
    return render(request, "annotate/import.html", context, status=status)


@login_required
@require_GET
def import_job(request: AuthedRequest, job_id: int) -> HttpResponse:
    """A large import's progress (checking, then writing), then its result or its refusal.

    The status part polls itself while the job runs; htmx gets that part alone.
    """
    job = import_jobs.import_job_get_for_user(user=request.user, job_id=job_id)
    context = {
        "job": job,
        "progress": import_jobs.import_job_progress(job=job),
        "can_retry": import_jobs.import_job_can_retry(job=job),
        "poll_ms": 1000,
    }
    template = "annotate/_import_job_status.html" if request.htmx else "annotate/import_job.html"
    return render(request, template, context)


@login_required
@require_POST
def import_job_retry(request: AuthedRequest, job_id: int) -> HttpResponse:
    """Queue a failed import again (its worker died; a refused file cannot be retried)."""
    job = import_jobs.import_job_get_for_user(user=request.user, job_id=job_id)
    try:
        import_jobs.import_job_retry(job=job)
    except ValidationError as error:
        messages.error(request, _error_text(error))
    return redirect("annotate:import_job", job_id=job.pk)


# ---------------------------------------------------------------------------------------------
# The user's API tokens


@login_required
@require_http_methods(["GET", "POST"])
def account_tokens(request: AuthedRequest) -> HttpResponse:
    """List your API tokens; make a new one (shown this once)."""
    new_token = ""
    if request.method == "POST":
        name = (request.POST.get("name") or "api").strip()[:100] or "api"
        new_token = tokens.api_token_create(user=request.user, name=name)
    return render(
        request,
        "annotate/tokens.html",
        {
            "tokens": tokens.api_token_list_for_user(user=request.user),
            "new_token": new_token,
            "days": settings.STEPLENS_API_TOKEN_DAYS,
        },
    )


@login_required
@require_POST
def account_token_revoke(request: AuthedRequest, token_id: int) -> HttpResponse:
    tokens.api_token_revoke(user=request.user, token_id=token_id)
    messages.success(request, "Token revoked.")
    return redirect("annotate:tokens")


@login_required
@require_GET
def problem_image(request: AuthedRequest, slug: str, image_name: str) -> FileResponse:
    """An image bundled with an import, to the project's members (annotate/bundles.py)."""
    path = selectors.problem_image_for_user(user=request.user, slug=slug, name=image_name)
    response = FileResponse(
        path.open("rb"), content_type=bundles.CONTENT_TYPES[path.suffix.lstrip(".")]
    )
    # Named by its content: it never changes, but only this browser may keep it.
    response["Cache-Control"] = "private, max-age=31536000, immutable"
    response["X-Content-Type-Options"] = "nosniff"
    return response
