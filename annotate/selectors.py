"""Reads of the human side; every object a person reaches is fetched here, through a permission check."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied
from django.db import connections, router
from django.db.models import Count, F, Min, OuterRef, Prefetch, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import Http404

from . import bundles
from .hotkeys import hotkeys_for
from .models import (
    Annotation,
    AnnotationStatus,
    AnnotatorProgress,
    GoldLabel,
    Membership,
    Problem,
    Project,
    Role,
    Step,
    StepLabel,
    Trace,
)
from .sql import column, columns, load, select, statement, table, width

UserLike = User | AnonymousUser

# Ordered from least to most privileged: a role grants everything the roles before it grant.
_ROLE_RANK = {Role.ANNOTATOR: 0, Role.REVIEWER: 1, Role.ADMIN: 2}


def user_is_site_admin(*, user: UserLike) -> bool:
    return bool(user.is_authenticated and getattr(user, "is_superuser", False))


def project_list_for_user(*, user: UserLike) -> QuerySet[Project]:
    """The projects a user may open: all of them for a site admin, else those they are a member of."""
    if not user.is_authenticated:
        return Project.objects.none()
    if user_is_site_admin(user=user):
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user).distinct()


def project_role(*, user: UserLike, project: Project) -> Role | None:
    if not user.is_authenticated:
        return None
    if user_is_site_admin(user=user):
        return Role.ADMIN
    cached = getattr(project, "_role_of_user", None)
    if cached is not None and cached[0] == user.pk:  # read with the project (trace_get_for_user)
        return cached[1]
    role = (
        Membership.objects.filter(project=project, user=user).values_list("role", flat=True).first()
    )
    return Role(role) if role else None


def role_at_least(role: Role | None, minimum: Role) -> bool:
    return role is not None and _ROLE_RANK[role] >= _ROLE_RANK[minimum]


def role_required_message(minimum: Role) -> str:
    """What a member below `minimum` is told: "Reviewers only", "Admins only"."""
    return f"{minimum.label}s only."


def require_role(*, role: Role | None, minimum: Role, missing: str) -> None:
    """404 (`missing`) for an outsider, 403 naming the role for a member below `minimum`.

    An outsider gets the 404 so that a URL does not tell them which projects exist; a member knows
    the project is there, and is told why they are refused rather than that it does not exist.
    """
    if role is None:
        raise Http404(missing)
    if not role_at_least(role, minimum):
        raise PermissionDenied(role_required_message(minimum))


def project_get_for_user(*, user: UserLike, slug: str, min_role: Role = Role.ANNOTATOR) -> Project:
    """The project by slug if the user holds at least `min_role` in it.

    Outsiders (and a slug that does not exist) get 404; members below `min_role` 403 with the role.
    """
    project = Project.objects.filter(slug=slug).first()
    if project is None:
        raise Http404("No such project.")
    require_role(
        role=project_role(user=user, project=project), minimum=min_role, missing="No such project."
    )
    return project


def problem_image_for_user(*, user: UserLike, slug: str, name: str) -> Path:
    """The stored file of an image bundled with this project's imports, for its members only
    (outsiders and a name that is not one of this project's images: 404)."""
    project = project_get_for_user(user=user, slug=slug)
    path = bundles.stored_image(project_id=project.pk, name=name)
    if path is None:
        raise Http404("No such image.")
    return path


def trace_get_for_user(*, user: UserLike, trace_id: int, min_role: Role = Role.ANNOTATOR) -> Trace:
    # The user's membership role comes with the trace, in the same query (the hot path of every
    # label save); project_role() then answers from it for this project and user.
    return _trace_with_role(user=user, trace_id=trace_id, min_role=min_role)


def trace_get_for_label(*, user: UserLike, trace_id: int) -> Trace:
    """trace_get_for_user for a label save: the trace (its id, project and problem ids; the other
    fields deferred) with its project, the user's role, their annotation id (`my_annotation_id`,
    None before the first label) and the trace's step count (`step_count`), in one statement:
    what a label save needs besides its own upsert (services.label_set_at, label_status). On
    PostgreSQL the same statement brings the steps' ids and indexes (`step_rows`, in index order),
    so the change log reads no steps of its own (services._steps_of).

    Written out (`_label_sql`, built once per database) rather than through the ORM, which spent
    some 2.5 ms of a 11 ms save building this query (issue 16); `raw()` still converts the
    project's fields as the ORM does."""
    db = connections[router.db_for_read(Trace)]
    sql = statement(db, _label_sql)
    user_pk = getattr(user, "pk", None)
    project = next(iter(Project.objects.raw(sql, [user_pk, user_pk, trace_id])), None)
    if project is None:
        raise Http404("No such trace.")
    trace = Trace.from_db(
        db.alias, ["id", "project_id", "problem_id"], [trace_id, project.pk, project.t_problem_id]
    )
    trace.project = project
    for name in ("my_role", "my_annotation_id"):
        setattr(trace, name, getattr(project, f"t_{name}"))
    if db.vendor == "postgresql":
        rows = project.t_step_rows or []
        trace.step_rows = [(int(pk), int(index)) for pk, index in rows]  # type: ignore[attr-defined]
        trace.step_count = len(rows)  # type: ignore[attr-defined]
    else:
        trace.step_count = project.t_step_count  # type: ignore[attr-defined]
    return _role_checked(user=user, trace=trace, min_role=Role.ANNOTATOR)


def _label_sql(db: Any) -> str:
    """trace_get_for_label's statement: the project's columns and the trace's extras (as `t_*`)."""
    steps_of_t = f"FROM {table(db, Step)} s WHERE s.{column(db, Step, 'trace')} = t.{column(db, Trace, 'id')}"
    if db.vendor == "postgresql":
        index = f"s.{column(db, Step, 'index')}"
        steps = (
            f"(SELECT array_agg(ARRAY[s.{column(db, Step, 'id')}, {index}] ORDER BY {index}) "
            f"{steps_of_t}) AS t_step_rows"
        )
    else:
        steps = f"(SELECT COUNT(*) {steps_of_t}) AS t_step_count"
    return (
        f"SELECT {columns(db, Project, 'p')}, t.{column(db, Trace, 'problem')} AS t_problem_id, "
        f"(SELECT m.{column(db, Membership, 'role')} FROM {table(db, Membership)} m "
        f"WHERE m.{column(db, Membership, 'project')} = t.{column(db, Trace, 'project')} "
        f"AND m.{column(db, Membership, 'user')} = %s LIMIT 1) AS t_my_role, "
        f"(SELECT a.{column(db, Annotation, 'id')} FROM {table(db, Annotation)} a "
        f"WHERE a.{column(db, Annotation, 'trace')} = t.{column(db, Trace, 'id')} "
        f"AND a.{column(db, Annotation, 'annotator')} = %s LIMIT 1) AS t_my_annotation_id, "
        f"{steps} "
        f"FROM {table(db, Trace)} t JOIN {table(db, Project)} p "
        f"ON p.{column(db, Project, 'id')} = t.{column(db, Trace, 'project')} "
        f"WHERE t.{column(db, Trace, 'id')} = %s"
    )


def _trace_with_role(*, user: UserLike, trace_id: int, min_role: Role) -> Trace:
    """The trace with its project and problem and the user's role in the project, in one
    statement written out (`_trace_sql`, built once per database): the ORM's select_related of
    three models spent some 1.5 ms compiling it on every trace page and label (issue 16)."""
    try:
        trace_id = int(trace_id)
    except (TypeError, ValueError):
        raise Http404("No such trace.") from None
    db = connections[router.db_for_read(Trace)]
    sql = statement(db, _trace_sql)
    with db.cursor() as cursor:
        cursor.execute(sql, [getattr(user, "pk", None), trace_id])
        row = cursor.fetchone()
    if row is None:
        raise Http404("No such trace.")
    ends = [width(Trace), width(Trace) + width(Project)]
    trace = load(db, Trace, row[: ends[0]])
    trace.project = load(db, Project, row[ends[0] : ends[1]])
    trace.problem = load(db, Problem, row[ends[1] : ends[1] + width(Problem)])
    trace.my_role = row[-1]  # type: ignore[attr-defined]
    return _role_checked(user=user, trace=trace, min_role=min_role)


def _trace_sql(db: Any) -> str:
    return (
        f"SELECT {columns(db, Trace, 't')}, {columns(db, Project, 'p')}, "
        f"{columns(db, Problem, 'pb')}, "
        f"(SELECT m.{column(db, Membership, 'role')} FROM {table(db, Membership)} m "
        f"WHERE m.{column(db, Membership, 'project')} = t.{column(db, Trace, 'project')} "
        f"AND m.{column(db, Membership, 'user')} = %s LIMIT 1) "
        f"FROM {table(db, Trace)} t "
        f"JOIN {table(db, Project)} p ON p.{column(db, Project, 'id')} = t.{column(db, Trace, 'project')} "
        f"JOIN {table(db, Problem)} pb ON pb.{column(db, Problem, 'id')} = t.{column(db, Trace, 'problem')} "
        f"WHERE t.{column(db, Trace, 'id')} = %s"
    )


def _role_checked(*, user: UserLike, trace: Trace, min_role: Role) -> Trace:
    role = trace.my_role  # type: ignore[attr-defined]
    trace.project._role_of_user = (getattr(user, "pk", None), Role(role) if role else None)  # type: ignore[attr-defined]
    require_role(
        role=project_role(user=user, project=trace.project),
        minimum=min_role,
        missing="No such trace.",
    )
    return trace


@dataclass(frozen=True)
class LabelStatus:
    """What the labelling page shows about a whole annotation after one step's save."""

    labelled: int  # steps with a value
    step_count: int
    first_error_index: int | None  # the first step labelled -1
    all_correct: bool


def label_status(*, annotation_id: int, step_count: int) -> LabelStatus:
    """The counts of one annotation's labels, in one query (the step count comes with the trace:
    trace_get_for_label)."""
    row = StepLabel.objects.filter(annotation_id=annotation_id, value__isnull=False).aggregate(
        labelled=Count("pk"),
        correct=Count("pk", filter=Q(value=1)),
        first_error=Min("step__index", filter=Q(value=-1)),
    )
    return _label_status_of(
        labelled=row["labelled"],
        correct=row["correct"],
        first_error=row["first_error"],
        step_count=step_count,
    )


def _label_status_of(
    *, labelled: int, correct: int, first_error: int | None, step_count: int
) -> LabelStatus:
    return LabelStatus(
        labelled=labelled,
        step_count=step_count,
        first_error_index=first_error,
        all_correct=step_count > 0 and correct == step_count,
    )


def label_status_after(label: StepLabel, *, step_count: int) -> LabelStatus:
    """label_status of the annotation of `label`, just saved by services.label_set_at: from the
    counts its upsert returned where it did (`status_counts`: PostgreSQL), without a read after
    the annotation's first label (its only one), else counted."""
    counts = getattr(label, "status_counts", None)
    if counts is not None:
        labelled, correct, first_error = counts
        return _label_status_of(
            labelled=labelled, correct=correct, first_error=first_error, step_count=step_count
        )
    if getattr(label, "first_of_annotation", False):
        return label_status_of_first(
            value=label.value, index=label.step.index, step_count=step_count
        )
    return label_status(annotation_id=label.annotation_id, step_count=step_count)


def label_status_of_first(*, value: int | None, index: int, step_count: int) -> LabelStatus:
    """label_status of an annotation whose only label is the one just written (its first: the
    save made the annotation), without reading it back."""
    return LabelStatus(
        labelled=int(value is not None),
        step_count=step_count,
        first_error_index=index if value == -1 else None,
        all_correct=step_count > 0 and int(value == 1) == step_count,
    )


def trace_list_for_user(*, user: UserLike, project: Project | None = None) -> QuerySet[Trace]:
    traces = Trace.objects.filter(project__in=project_list_for_user(user=user))
    if project is not None:
        traces = traces.filter(project=project)
    return traces.select_related("problem").order_by("id")


def problem_get_for_user(*, user: UserLike, problem_id: int) -> Problem:
    problem = Problem.objects.select_related("project").filter(pk=problem_id).first()
    if problem is None or project_role(user=user, project=problem.project) is None:
        raise Http404("No such problem.")
    return problem


def annotation_list_for_user(*, user: UserLike, trace: Trace) -> QuerySet[Annotation]:
    """Annotators see only their own pass over a trace; reviewers and admins see everyone's."""
    annotations = Annotation.objects.filter(trace=trace).select_related("annotator")
    role = project_role(user=user, project=trace.project)
    if role_at_least(role, Role.REVIEWER):
        return annotations
    if role is None:
        return annotations.none()
    return annotations.filter(annotator=user)


def annotation_get_for_user(*, user: UserLike, annotation_id: int) -> Annotation:
    annotation = (
        Annotation.objects.select_related("trace__project", "annotator")
        .filter(pk=annotation_id)
        .first()
    )
    if annotation is None:
        raise Http404("No such annotation.")
    role = project_role(user=user, project=annotation.trace.project)
    if annotation.annotator_id == getattr(user, "pk", None) and role is not None:
        return annotation
    if role_at_least(role, Role.REVIEWER):
        return annotation
    raise Http404("No such annotation.")


@dataclass
class StepView:
    step: Step
    label: StepLabel | None
    gold: GoldLabel | None
    html: str = ""  # the step's text as sanitised HTML, where a page shows it (annotate.rendered)


@dataclass
class TraceForAnnotation:
    trace: Trace
    project: Project
    problem: Problem
    annotation: Annotation | None
    steps: list[StepView] = field(default_factory=list)
    # The reference solution is reviewer-only, on the page as in the API (gold_visible).
    show_reference_solution: bool = False

    @property
    def has_thinking(self) -> bool:
        return any(view.step.part == "thinking" for view in self.steps)


def trace_for_annotation(*, user: UserLike, trace_id: int) -> TraceForAnnotation:
    """Everything the labelling page shows for one trace, with the user's own labels only."""
    return trace_for_annotation_of(
        user=user, trace=trace_get_for_user(user=user, trace_id=trace_id)
    )


def trace_steps(*, trace: Trace) -> list[Step]:
    """The steps of a trace the caller fetched through `trace_get_for_user`, in order, each with
    its gold label (`step.gold`, missing where it has none), as `select_related("gold")` loads
    them; written out (`_steps_sql`), a trace page's hottest read (issue 16)."""
    db = connections[router.db_for_read(Step)]
    sql = statement(db, _steps_sql)
    with db.cursor() as cursor:
        cursor.execute(sql, [trace.pk])
        rows = cursor.fetchall()
    gold_of = Step._meta.get_field("gold")  # the reverse one-to-one: its cache is step.gold's
    split = width(Step)
    steps = []
    for row in rows:
        step = load(db, Step, row[:split])
        gold = None if row[split] is None else load(db, GoldLabel, row[split:])
        if gold is not None:
            gold.step = step
        gold_of.set_cached_value(step, gold)  # None: no gold, and no query to find out
        step.trace = trace  # already loaded with its project: spares the services a query
        steps.append(step)
    return steps


def _steps_sql(db: Any) -> str:
    return (
        f"SELECT {columns(db, Step, 's')}, {columns(db, GoldLabel, 'g')} "
        f"FROM {table(db, Step)} s LEFT JOIN {table(db, GoldLabel)} g "
        f"ON g.{column(db, GoldLabel, 'step')} = s.{column(db, Step, 'id')} "
        f"WHERE s.{column(db, Step, 'trace')} = %s ORDER BY s.{column(db, Step, 'index')}"
    )


def step_of(*, steps: list[Step], index: int) -> Step:
    """The step at `index` of a list from `trace_steps`; 404 if there is no such index."""
    step = next((step for step in steps if step.index == index), None)
    if step is None:
        raise Http404(f"This trace has no step {index}.")
    return step


def trace_for_annotation_of(
    *,
    user: UserLike,
    trace: Trace,
    annotation: Annotation | None = None,
    steps: list[Step] | None = None,
) -> TraceForAnnotation:
    """The same, for a trace the caller already fetched through `trace_get_for_user` (and, if it
    has them in hand, the user's annotation of it and its steps from `trace_steps`)."""
    db = connections[router.db_for_read(Annotation)]
    if annotation is None or annotation.annotator_id != user.pk or annotation.trace_id != trace.pk:
        # Written out, as the two reads below (issue 16); (trace, annotator) is unique.
        where = (
            f"{column(db, Annotation, 'trace')} = %s AND {column(db, Annotation, 'annotator')} = %s"
        )
        found = select(db, Annotation, where, [trace.pk, user.pk])
        annotation = found[0] if found else None
    labels: dict[int, StepLabel] = {}
    if annotation is not None:
        where = f"{column(db, StepLabel, 'annotation')} = %s"
        for label in select(db, StepLabel, where, [annotation.pk]):
            label.annotation = annotation  # as annotation.labels.all() leaves it: no query
            labels[label.step_id] = label
    if steps is None:
        steps = trace_steps(trace=trace)
    views = [
        StepView(step=step, label=labels.get(step.pk), gold=getattr(step, "gold", None))
        for step in steps
    ]
    return TraceForAnnotation(
        trace=trace,
        project=trace.project,
        problem=trace.problem,
        annotation=annotation,
        steps=views,
        show_reference_solution=gold_visible(role=project_role(user=user, project=trace.project)),
    )


@dataclass(frozen=True)
class Progress:
    done: int
    assigned: int

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.assigned) if self.assigned else 0


# --- Reads for the REST API (annotate.api) ------------------------------------------------------

# What "status" means in a trace list, from the point of view of the user asking.
MY_STATUS_NEW = "new"


def project_roles_for_user(*, user: UserLike, projects: list[Project]) -> dict[int, Role]:
    """The user's role in each of these projects, in one query (site admins: admin everywhere)."""
    if not user.is_authenticated:
        return {}
    if user_is_site_admin(user=user):
        return {project.pk: Role.ADMIN for project in projects}
    rows = Membership.objects.filter(user=user, project__in=projects).values_list(
        "project_id", "role"
    )
    return {project_id: Role(role) for project_id, role in rows}


def trace_list_for_annotator(
    *,
    user: UserLike,
    project: Project,
    subset: str | None = None,
    source: str | None = None,
    status: str | None = None,
) -> QuerySet[Trace]:
    """A project's traces with their step count and this user's own status on each.

    `status` is the user's: "new" (not touched), "in_progress" or "submitted".
    """
    mine = Annotation.objects.filter(trace=OuterRef("pk"), annotator_id=user.pk)
    traces = trace_list_for_user(user=user, project=project).annotate(
        step_count=Count("steps", distinct=True),
        my_status=Coalesce(Subquery(mine.values("status")[:1]), Value(MY_STATUS_NEW)),
    )
    if subset:
        traces = traces.filter(subset=subset)
    if source:
        traces = traces.filter(source=source)
    if status:
        traces = traces.filter(my_status=status)
    return traces


@dataclass(frozen=True)
class TraceDetail:
    """One trace as the API shows it; `gold` and `metadata` are None for those who may not see gold.

    The metadata keeps the source record's other fields, which can hold the answer key (e.g.
    ProcessBench's `label`, PRMBench's `error_steps`).
    """

    trace: Trace
    project: Project
    problem: Problem
    steps: list[Step]
    role: Role
    gold: list[GoldLabel] | None
    metadata: dict | None


def gold_visible(*, role: Role | None) -> bool:
    """Gold labels (imported or adjudicated) are for reviewers and admins: they bias annotators."""
    return role_at_least(role, Role.REVIEWER)


def trace_detail_for_user(*, user: UserLike, trace: Trace) -> TraceDetail:
    """A trace fetched with trace_get_for_user, its steps, and its gold labels if allowed."""
    role = project_role(user=user, project=trace.project)
    if role is None:
        raise Http404("No such trace.")
    steps = list(trace.steps.order_by("index"))
    gold = metadata = None
    if gold_visible(role=role):
        gold = list(
            GoldLabel.objects.filter(step__trace=trace)
            .annotate(step_index=F("step__index"))
            .order_by("step_index")
        )
        metadata = trace.metadata
    return TraceDetail(
        trace=trace,
        project=trace.project,
        problem=trace.problem,
        steps=steps,
        role=role,
        gold=gold,
        metadata=metadata,
    )


def _labels_with_index() -> Prefetch:
    return Prefetch(
        "labels",
        queryset=StepLabel.objects.annotate(step_index=F("step__index")).order_by("step_index"),
    )


def annotation_mine(*, user: UserLike, trace: Trace) -> Annotation | None:
    """The user's own pass over a trace, if started; its labels carry `step_index`."""
    return (
        Annotation.objects.filter(trace=trace, annotator_id=user.pk)
        .select_related("annotator")
        .prefetch_related(_labels_with_index())
        .first()
    )


def annotation_list_with_labels(*, user: UserLike, trace: Trace) -> QuerySet[Annotation]:
    """annotation_list_for_user, with labels prefetched in step order."""
    return (
        annotation_list_for_user(user=user, trace=trace)
        .prefetch_related(_labels_with_index())
        .order_by("started_at", "pk")
    )


def step_get(*, trace: Trace, index: int) -> Step:
    """A step of a trace fetched through a permission check; 404 if there is no such index."""
    step = Step.objects.filter(trace=trace, index=index).first()
    if step is None:
        raise Http404(f"Trace {trace.pk} has no step {index}.")
    step.trace = trace  # already loaded with its project: spares the services a query
    return step


def project_import_target(*, user: UserLike, slug: str) -> Project | None:
    """The project an import into `slug` may write to, or None: a site admin may create it.

    Outsiders get a 404, also for a slug that does not exist (a URL tells nobody what exists);
    members below admin get PermissionDenied, since they know the project is there.
    """
    project = Project.objects.filter(slug=slug).first()
    if project is None:
        if user_is_site_admin(user=user):
            return None
        raise Http404("No such project.")
    role = project_role(user=user, project=project)
    if role is None:
        raise Http404("No such project.")
    if not role_at_least(role, Role.ADMIN):
        raise PermissionDenied("Only the project's admins may import traces into it.")
    return project


# --- Reads for the labelling pages at scale (annotate.views) --------------------------------------


def labelling_progress(*, user: UserLike, project: Project) -> Progress:
    """An annotator's progress in a project, read from kept counts in one query: nothing in it
    grows with the project's traces, the other annotators' submissions (issue 16) or this
    annotator's own (AnnotatorProgress).

    assigned = all traces (the kept trace_count), less those the overlap has filled with others'
    submissions and that this annotator never started: the project's filled traces (the kept
    filled_count: at least `overlap` submissions) less the filled ones this annotator started,
    which are their submitted passes on filled traces (the kept done_filled) and their passes
    in progress on filled traces (counted here: a few rows, through the annotator's status
    index); done = the traces this annotator submitted (the kept done). All read in the same
    query (the instance may have been loaded before they changed).
    """
    db = connections[router.db_for_read(Annotation)]
    sql = statement(db, _progress_sql)
    with db.cursor() as cursor:
        cursor.execute(
            sql,
            [
                *(user.pk, str(AnnotationStatus.IN_PROGRESS), str(AnnotationStatus.SUBMITTED)),
                *(user.pk, project.pk),
            ],
        )
        n_done, n_done_filled, n_started_filled, filled, total = cursor.fetchone()
    return Progress(done=n_done, assigned=total - (filled - n_done_filled - n_started_filled))


def _progress_sql(db: Any) -> str:
    """labelling_progress's statement, written out (the ORM compiled its subqueries on every
    trace page, issue 16): the annotator's kept progress row in the project (none before their
    first submission); their passes in progress on the project's traces that hold at least
    `overlap` submissions (each counted through the annotations' trace index); the project's
    kept filled and trace counts."""
    a, t, p = table(db, Annotation), table(db, Trace), table(db, Project)
    c = table(db, AnnotatorProgress)
    annotator, status = column(db, Annotation, "annotator"), column(db, Annotation, "status")
    trace_id = column(db, Annotation, "trace")
    started_filled = (
        f"(SELECT COUNT(*) FROM {a} a JOIN {t} t ON t.{column(db, Trace, 'id')} = a.{trace_id} "
        f"WHERE a.{annotator} = %s AND a.{status} = %s "
        f"AND t.{column(db, Trace, 'project')} = p.{column(db, Project, 'id')} "
        f"AND (SELECT COUNT(*) FROM {a} b WHERE b.{trace_id} = a.{trace_id} AND b.{status} = %s) "
        f">= p.{column(db, Project, 'overlap')})"
    )
    return (
        f"SELECT COALESCE(c.{column(db, AnnotatorProgress, 'done')}, 0), "
        f"COALESCE(c.{column(db, AnnotatorProgress, 'done_filled')}, 0), {started_filled}, "
        f"p.{column(db, Project, 'filled_count')}, p.{column(db, Project, 'trace_count')} "
        f"FROM {p} p LEFT JOIN {c} c ON c.{column(db, AnnotatorProgress, 'project')} = "
        f"p.{column(db, Project, 'id')} AND c.{column(db, AnnotatorProgress, 'annotator')} = %s "
        f"WHERE p.{column(db, Project, 'id')} = %s"
    )


def queue_submitted(*, user: UserLike, project: Project, limit: int = 20) -> list[Trace]:
    """The traces this annotator submitted in a project, the latest first (to revise one)."""
    return list(
        Trace.objects.filter(
            project=project,
            annotations__annotator_id=user.pk,
            annotations__status=AnnotationStatus.SUBMITTED,
        )
        .select_related("problem")
        .order_by("-annotations__submitted_at", "-id")[:limit]
    )


def annotation_revealed(*, user: UserLike, trace: Trace) -> bool:
    """Blind projects: whether this user's scores were revealed (at their first submit)."""
    return Annotation.objects.filter(
        trace=trace, annotator_id=user.pk, revealed_at__isnull=False
    ).exists()


def project_members(*, project: Project) -> QuerySet[Membership]:
    """The project's members with their accounts, by role then name (the caller checked the role)."""
    return (
        Membership.objects.filter(project=project)
        .select_related("user")
        .order_by("role", "user__username")
    )


@dataclass
class AnnotatorPreview:
    """What an annotator of the project sees with its current settings (issue 15, item 1)."""

    project: Project
    hotkeys: dict[str, Any]  # annotate.hotkeys.hotkeys_for: keys, names, label_names, legend
    sample: TraceForAnnotation | None  # as an annotator who has not started it sees it
    next_sample_id: int | None


def annotator_preview(
    *, user: UserLike, slug: str, trace_id: int | None = None
) -> AnnotatorPreview:
    """The project's settings as its annotators meet them, and one of its traces as the labelling
    page shows it to an annotator who has not started it: no label, no gold, no reference solution.
    Reviewers and admins; reads only (no annotation, lease or score run is made)."""
    project = project_get_for_user(user=user, slug=slug, min_role=Role.REVIEWER)
    traces = Trace.objects.filter(project=project).select_related("project", "problem")
    if trace_id is None:
        trace = traces.order_by("pk").first()
    else:
        trace = traces.filter(pk=trace_id).first()
        if trace is None:
            raise Http404(f"Trace {trace_id} is not in project {project.slug}.")
    sample = None
    next_id = None
    if trace is not None:
        sample = TraceForAnnotation(
            trace=trace,
            project=project,
            problem=trace.problem,
            annotation=None,
            steps=[
                StepView(step=step, label=None, gold=None) for step in trace.steps.order_by("index")
            ],
            show_reference_solution=gold_visible(role=Role.ANNOTATOR),
        )
        next_id = (
            Trace.objects.filter(project=project, pk__gt=trace.pk)
            .order_by("pk")
            .values_list("pk", flat=True)
            .first()
        )
    return AnnotatorPreview(
        project=project,
        hotkeys=hotkeys_for(hotkeys=project.hotkeys, scheme=project.label_scheme),
        sample=sample,
        next_sample_id=next_id,
    )
