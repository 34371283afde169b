"""Writes of the human side: labels, annotations, projects and memberships (imports: annotate.imports)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connections, router, transaction
from django.db.models import F
from django.utils import timezone

from . import counts, receivers, signals
from .hotkeys import hotkeys_clean
from .images import image_hosts_clean
from .models import (
    Annotation,
    AnnotationStatus,
    FinishReason,
    GoldLabel,
    LabelScheme,
    LabelSource,
    Membership,
    Problem,
    Project,
    Role,
    Step,
    StepLabel,
    Trace,
)
from .sql import column, insert, select, statement, table

# A sentinel for "leave this field as it is", so that None can mean "clear the rating".
UNSET: Any = object()

# One heartbeat never adds more than this: a laptop waking from sleep must not add hours.
MAX_ACTIVE_SECONDS_PER_HEARTBEAT = 120.0

_ALLOWED_VALUES = {
    LabelScheme.TERNARY: {-1, 0, 1},
    LabelScheme.BINARY: {-1, 1},
    LabelScheme.FIRST_ERROR: {-1, 1},
}


def project_create(
    *,
    slug: str,
    name: str = "",
    guidelines: str = "",
    label_scheme: str = LabelScheme.TERNARY,
    overlap: int = 1,
    blind: bool = False,
    hotkeys: dict[str, Any] | None = None,
) -> Project:
    project = Project(
        slug=slug,
        name=name or slug,
        guidelines=guidelines,
        label_scheme=label_scheme,
        overlap=overlap,
        blind=blind,
        hotkeys=hotkeys_clean(hotkeys=hotkeys, scheme=label_scheme),
    )
    project.full_clean()
    project.save()
    return project


def project_update(*, project: Project, **fields: Any) -> Project:
    """Change a project's settings (name, guidelines, label_scheme, overlap, blind, hotkeys,
    image_hosts: the https hosts its pages may load problem images from).

    The label scheme of a project with labels is never changed silently: it is refused, naming
    how many labels would be read under another scheme (export them, or make a new project).
    """
    allowed = {"name", "guidelines", "label_scheme", "overlap", "blind", "hotkeys", "image_hosts"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValidationError(f"Not a project setting: {', '.join(sorted(unknown))}.")
    scheme = fields.get("label_scheme", project.label_scheme)
    if scheme != project.label_scheme:
        labels = StepLabel.objects.filter(
            annotation__trace__project=project, value__isnull=False
        ).count()
        golds = GoldLabel.objects.filter(step__trace__project=project).count()
        if labels or golds:
            raise ValidationError(
                {
                    "label_scheme": f"This project has {labels} step labels and {golds} gold "
                    f"labels in the {project.get_label_scheme_display()} scheme; they would be "
                    "read under another. Make a new project for the new scheme instead."
                }
            )
    if "hotkeys" in fields:
        fields["hotkeys"] = hotkeys_clean(hotkeys=fields["hotkeys"], scheme=scheme)
    if "image_hosts" in fields:
        try:
            fields["image_hosts"] = image_hosts_clean(fields["image_hosts"])
        except ValueError as err:
            raise ValidationError({"image_hosts": str(err)}) from None
    overlap_before = project.overlap
    for name, value in fields.items():
        setattr(project, name, value)
    project.full_clean()
    with transaction.atomic():
        project.save()
        if project.overlap != overlap_before:
            counts.project_filled_recount(project_id=project.pk)
    return project


def membership_set(*, project: Project, user: User, role: str = Role.ANNOTATOR) -> Membership:
    membership, _ = Membership.objects.update_or_create(
        project=project, user=user, defaults={"role": Role(role)}
    )
    return membership


def member_add(
    *, project: Project, username: str, role: str, password: str = "", create: bool = False
) -> Membership:
    """Add an existing user to the project, or (with `create`) make the account first."""
    username = username.strip()
    user = User.objects.filter(username=username).first()
    if create:
        if user is not None:
            raise ValidationError({"username": f"An account {username!r} exists already."})
        if len(password) < 8:
            raise ValidationError(
                {"password": "A new account needs a password of 8 characters or more."}
            )
        user = User(username=username)
        user.set_password(password)
        user.full_clean(exclude=["password"])
        user.save()
    elif user is None or not user.is_active:
        raise ValidationError({"username": f"No active account {username!r}."})
    return membership_set(project=project, user=user, role=role)


def account_set_active(*, user: User, active: bool) -> User:
    """Deactivate an account (it can no longer log in, its API tokens stop working; its labels
    stay) or reactivate it. Site admins only: the caller checks."""
    user.is_active = active
    user.save(update_fields=["is_active"])
    return user


def member_remove(*, project: Project, user: User) -> int:
    """Take a person off the project (their labels stay); they no longer see it."""
    deleted, _ = Membership.objects.filter(project=project, user=user).delete()
    return deleted


def problems_flag(*, trace_ids: Sequence[int]) -> int:
    """Flag the problems of these traces as bad problems; returns how many were newly flagged."""
    return (
        Problem.objects.filter(traces__pk__in=list(trace_ids), flagged=False)
        .distinct()
        .update(flagged=True)
    )


def traces_delete(*, trace_ids: Sequence[int]) -> int:
    """Delete traces with their steps, labels and scores; their problems left without a trace too."""
    ids = list(trace_ids)
    with transaction.atomic():
        rows = list(Trace.objects.filter(pk__in=ids).values_list("project_id", "problem_id"))
        problem_ids = {problem_id for _, problem_id in rows}
        deleted = 0
        token = receivers.counting_traces_in_bulk.set(True)
        try:
            # Per project, so that each project's kept count falls by what this delete removed
            # (a trace deleted meanwhile by someone else is not counted twice).
            for project_id in sorted({project_id for project_id, _ in rows}):
                removed = 0
                for start in range(0, len(ids), 5000):
                    removed += (
                        Trace.objects.filter(
                            pk__in=ids[start : start + 5000], project_id=project_id
                        )
                        .delete()[1]
                        .get("annotate.Trace", 0)
                    )
                if removed:
                    Project.objects.filter(pk=project_id).update(
                        trace_count=F("trace_count") - removed
                    )
                    counts.project_filled_recount(project_id=project_id)
                deleted += removed
        finally:
            receivers.counting_traces_in_bulk.reset(token)
        Problem.objects.filter(pk__in=problem_ids, traces__isnull=True).delete()
    return deleted


def annotation_start(*, user: User, trace: Trace) -> Annotation:
    """The user's annotation of this trace, created on first touch (idempotent)."""
    annotation, created = Annotation.objects.get_or_create(trace=trace, annotator=user)
    if created:
        signals.annotation_started.send(sender=Annotation, user=user, trace=trace)
    return annotation


class _NoStep(Exception):
    """Rolls back a first label whose step does not exist (nothing written)."""


def _check_value(*, project: Project, value: int | None) -> None:
    if value is None:
        return
    allowed = _ALLOWED_VALUES[LabelScheme(project.label_scheme)]
    if value not in allowed:
        raise ValidationError(
            {
                "value": f"{value!r} is not a label of the {project.label_scheme} scheme "
                f"(allowed: {sorted(allowed)})."
            }
        )


def label_set(
    *,
    user: User,
    step: Step,
    value: int | None = UNSET,
    flagged: bool = UNSET,
    note: str = UNSET,
) -> StepLabel:
    """Save one step's label for this user at once; fields not given keep their saved value. A
    value given here is set by hand (`source` "hand").

    One upsert (INSERT ... ON CONFLICT DO UPDATE of the given fields only): concurrent saves of
    different fields of the same step never undo each other, and no row lock is needed.
    """
    _check_value_in(project=step.trace.project, value=value)
    fields = _label_fields(value=value, flagged=flagged, note=note)
    annotation = annotation_start(user=user, trace=step.trace)
    return _label_upsert(annotation=annotation, step=step, fields=fields)


def label_set_at(
    *,
    user: User,
    trace: Trace,
    index: int,
    annotation_id: int | None,
    value: int | None = UNSET,
    flagged: bool = UNSET,
    note: str = UNSET,
) -> StepLabel | None:
    """label_set for the step at `index` of a trace fetched by `trace_get_for_label`, which brings
    the user's annotation id: the upsert finds the step itself (INSERT ... SELECT), so a save of a
    started trace is this one statement. None: the trace has no such step (nothing written)."""
    _check_value_in(project=trace.project, value=value)
    fields = _label_fields(value=value, flagged=flagged, note=note)
    if annotation_id is not None:
        if connections[router.db_for_write(StepLabel)].vendor == "postgresql":
            return _label_upsert_with_counts(
                annotation_id=annotation_id, at=(trace.pk, index), fields=fields
            )
        return _label_upsert_row(
            annotation_id=annotation_id, step=None, at=(trace.pk, index), fields=fields
        )
    # First label (issue 16): the annotation, its lease and the label in one transaction, each
    # written once and none read back; a missing step rolls it all back.
    try:
        with transaction.atomic():
            annotation = _annotation_insert(user=user, trace=trace)
            if annotation is None:
                raise IntegrityError("a concurrent first label made the annotation")
            label = _label_upsert_row(
                annotation_id=annotation.pk, step=None, at=(trace.pk, index), fields=fields
            )
            if label is None:
                raise _NoStep
        label.first_of_annotation = True  # type: ignore[attr-defined]
        return label
    except _NoStep:
        return None
    except IntegrityError:  # a concurrent first label of this user made the annotation
        pass
    if not Step.objects.filter(trace_id=trace.pk, index=index).exists():
        return None
    return _label_upsert_row(
        annotation_id=annotation_start(user=user, trace=trace).pk,
        step=None,
        at=(trace.pk, index),
        fields=fields,
    )


def _check_value_in(*, project: Project, value: int | None) -> None:
    if value is not UNSET:
        _check_value(project=project, value=value)


def _label_fields(*, value: Any, flagged: Any, note: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if value is not UNSET:
        fields["value"] = value
        fields["source"] = LabelSource.HAND
    if flagged is not UNSET:
        fields["flagged"] = bool(flagged)
    if note is not UNSET:
        fields["note"] = note
    return fields


def _label_upsert(*, annotation: Annotation, step: Step, fields: dict[str, Any]) -> StepLabel:
    label = _label_upsert_row(annotation_id=annotation.pk, step=step, at=None, fields=fields)
    assert label is not None, "a step in hand is always written"
    label.annotation = annotation
    return label


def _label_upsert_row(
    *,
    annotation_id: int,
    step: Step | None,
    at: tuple[int, int] | None,
    fields: dict[str, Any],
) -> StepLabel | None:
    """INSERT ... ON CONFLICT DO UPDATE the given fields ... RETURNING the row, in one statement,
    for `step`, or for the step at (trace id, index) found by the statement itself (INSERT ...
    SELECT: None when there is no such step).

    Written out rather than through bulk_create, which wraps the statement in a transaction and
    cannot return the row's other fields: a label save is the hottest write, and this spares it
    three round trips (measured: docs/benchmarks.md, "Load").
    """
    connection = connections[router.db_for_write(StepLabel)]
    now = timezone.now()
    sql, params = _label_upsert_sql(
        connection, annotation_id=annotation_id, step=step, at=at, fields=fields, now=now
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        found = cursor.fetchone()
    if found is None:
        return None
    return _label_from_row(found, annotation_id=annotation_id, step=step, now=now)


_LABEL_RETURNED = ("id", "step", "value", "source", "flagged", "note", "blind_value")


def _label_upsert_sql(
    connection: Any,
    *,
    annotation_id: int,
    step: Step | None,
    at: tuple[int, int] | None,
    fields: dict[str, Any],
    now: Any,
    annotation_from: str = "",
) -> tuple[str, list[Any]]:
    """`_label_upsert_row`'s statement and its parameters; it returns `_LABEL_RETURNED`. With
    `annotation_from` (the name of a WITH query returning the annotation's id) the row is
    INSERT ... SELECTed from it: nothing is written when it returns no row."""

    def col(name: str) -> str:
        return column(connection, StepLabel, name)

    row = {"value": None, "source": LabelSource.HAND, "flagged": False, "note": "", **fields}
    update = [*fields, "updated_at"]
    values = [
        row["value"],
        row["source"],
        row["flagged"],
        row["note"],
        connection.ops.adapt_datetimefield_value(now),
    ]
    if step is not None and annotation_from:
        source = (
            f"SELECT {annotation_from}.{column(connection, Annotation, 'id')}, "
            f"%s, %s, %s, %s, %s, %s FROM {annotation_from} "
        )
        params = [step.pk, *values]
    elif step is not None:
        source = "VALUES (%s, %s, %s, %s, %s, %s, %s) "
        params = [annotation_id, step.pk, *values]
    else:
        assert at is not None, "a step or where it is"
        source = (
            f"SELECT %s, {column(connection, Step, 'id')}, %s, %s, %s, %s, %s "
            f"FROM {table(connection, Step)} WHERE {column(connection, Step, 'trace')} = %s "
            f"AND {column(connection, Step, 'index')} = %s "
        )
        params = [annotation_id, *values, *at]
    sql = (
        f"INSERT INTO {table(connection, StepLabel)} ({col('annotation')}, {col('step')}, "
        f"{', '.join(col(name) for name in ('value', 'source', 'flagged', 'note', 'updated_at'))}) "
        + source
        + f"ON CONFLICT ({col('annotation')}, {col('step')}) DO UPDATE SET "
        + ", ".join(f"{col(name)} = excluded.{col(name)}" for name in update)
        + " RETURNING "
        + ", ".join(col(name) for name in _LABEL_RETURNED)
    )
    return sql, params


def _label_upsert_with_counts(
    *, annotation_id: int, at: tuple[int, int], fields: dict[str, Any]
) -> StepLabel | None:
    """PostgreSQL: `_label_upsert_row` for the step at `at` (trace id, index) that also returns
    the annotation's label counts after it, set on the label as `status_counts` (labelled,
    correct, first wrong step's index: what selectors.label_status counts), so the htmx save
    reads nothing after its write (issue 16). The counts' subquery sees the labels as they were
    before the statement: the other steps' rows, plus this one's. None: no such step."""
    db = connections[router.db_for_write(StepLabel)]
    now = timezone.now()
    upsert, params = _label_upsert_sql(
        db, annotation_id=annotation_id, step=None, at=at, fields=fields, now=now
    )
    returned = ", ".join(f"up.{column(db, StepLabel, name)}" for name in _LABEL_RETURNED)
    step_id, value = column(db, StepLabel, "step"), column(db, StepLabel, "value")
    sql = (
        f"WITH up AS ({upsert}), o AS (SELECT COUNT(l.{value}) AS labelled, "
        f"COUNT(*) FILTER (WHERE l.{value} = 1) AS correct, "
        f"MIN(s.{column(db, Step, 'index')}) FILTER (WHERE l.{value} = -1) AS first_error "
        f"FROM {table(db, StepLabel)} l JOIN {table(db, Step)} s "
        f"ON s.{column(db, Step, 'id')} = l.{step_id} "
        f"WHERE l.{column(db, StepLabel, 'annotation')} = %s "
        f"AND l.{step_id} NOT IN (SELECT {step_id} FROM up)) "
        f"SELECT {returned}, o.labelled + (CASE WHEN up.{value} IS NULL THEN 0 ELSE 1 END), "
        f"o.correct + (CASE WHEN up.{value} = 1 THEN 1 ELSE 0 END), "
        f"LEAST(o.first_error, CASE WHEN up.{value} = -1 THEN %s::integer END) FROM up, o"
    )
    with db.cursor() as cursor:
        cursor.execute(sql, [*params, annotation_id, at[1]])
        found = cursor.fetchone()
    if found is None:
        return None
    label = _label_from_row(found[:-3], annotation_id=annotation_id, step=None, now=now)
    label.status_counts = tuple(found[-3:])  # type: ignore[attr-defined]
    return label


def _label_from_row(
    found: Sequence[Any], *, annotation_id: int, step: Step | None, now: Any
) -> StepLabel:
    pk, step_id, value, source_, flagged, note, blind_value = found
    label = StepLabel(
        pk=pk,
        annotation_id=annotation_id,
        step_id=step_id,
        value=value,
        source=source_,
        flagged=bool(flagged),
        note=note,
        blind_value=blind_value,
        updated_at=now,
    )
    if step is not None:
        label.step = step
    return label


# What first-error / all-correct may write over: the steps they filled in themselves, and an
# earlier "first wrong step" (moving it is the point of pressing `e` again). A label set by hand
# is kept, and the caller says which ones were kept.
_OVERWRITABLE = {LabelSource.FIRST_ERROR, LabelSource.FILLED}


@dataclass(frozen=True)
class CascadeResult:
    labels: list[StepLabel]
    kept: list[int]  # indexes of hand-set labels left as they were


def _cascade_targets(
    *, step_count: int, first_error: int | None
) -> dict[int, tuple[int | None, str]]:
    """Each step's (value, source) after "first wrong step is `first_error`" (None: none is)."""
    targets: dict[int, tuple[int | None, str]] = {}
    for index in range(step_count):
        if first_error is None or index < first_error:
            targets[index] = (1, LabelSource.FILLED)
        elif index == first_error:
            targets[index] = (-1, LabelSource.FIRST_ERROR)
        else:
            targets[index] = (None, LabelSource.FILLED)
    return targets


def _labels_write(
    *,
    annotation: Annotation,
    steps: list[Step],
    targets: dict[int, tuple[int | None, str]],
    keep_hand: bool,
) -> CascadeResult:
    """Write (value, source) of the steps in `targets` in a few statements, not one per step (a
    500-step trace is one `e` away). With keep_hand, a value set by hand is left alone (except
    on the step that `targets` marks as the first error)."""
    existing = {label.step_id: label for label in annotation.labels.all()}
    now = timezone.now()
    changed: list[StepLabel] = []
    created: list[StepLabel] = []
    kept: list[int] = []
    labels: list[StepLabel] = []
    for step in steps:
        if step.index not in targets:
            continue
        value, source = targets[step.index]
        label = existing.get(step.pk)
        if (
            keep_hand
            and label is not None
            and label.value is not None
            and label.source not in _OVERWRITABLE
            and source != LabelSource.FIRST_ERROR
        ):
            if label.value != value:
                kept.append(step.index)
            labels.append(label)
            continue
        if label is None:
            label = StepLabel(annotation=annotation, step=step, value=value, source=source)
            label.updated_at = now
            created.append(label)
        elif (label.value, label.source) != (value, source):
            label.value, label.source, label.updated_at = value, source, now
            changed.append(label)
        labels.append(label)
    StepLabel.objects.bulk_create(created, batch_size=500)
    StepLabel.objects.bulk_update(changed, ["value", "source", "updated_at"], batch_size=500)
    return CascadeResult(labels=labels, kept=kept)


def _annotation_locked(*, user: User, trace: Trace) -> Annotation:
    """The user's annotation, row-locked for the rest of the transaction. A trace fetched by
    `selectors.trace_get_for_label` that found none (`my_annotation_id` None) goes straight to
    the INSERT; one made meanwhile by a concurrent request is then read, row-locked."""
    known = getattr(trace, "my_annotation_id", 0)
    if known:
        annotation = _annotation_lock_by_id(pk=known, user=user)
        if annotation is not None:
            return annotation
    elif known is not None:
        annotation = (
            Annotation.objects.select_for_update().filter(trace=trace, annotator=user).first()
        )
        if annotation is not None:
            return annotation
    created = _annotation_insert(user=user, trace=trace)  # its INSERT holds the row lock
    if created is not None:
        return created
    return Annotation.objects.select_for_update().get(trace=trace, annotator=user)


def _annotation_lock_by_id(*, pk: int, user: User) -> Annotation | None:
    """SELECT ... FOR UPDATE of the user's annotation `pk`, written out: the ORM spent longer
    compiling this statement than the database spent running it (issue 16). None if it is gone
    or another user's."""
    db = connections[router.db_for_write(Annotation)]
    where = f"{column(db, Annotation, 'id')} = %s AND {column(db, Annotation, 'annotator')} = %s"
    found = select(db, Annotation, where, [pk, user.pk], for_update=True)
    return found[0] if found else None


def _annotation_insert(*, user: User, trace: Trace) -> Annotation | None:
    """Make the user's annotation of this trace, which the caller found missing, and start its
    lease (annotation_started), inside the caller's transaction: one INSERT ... ON CONFLICT DO
    NOTHING RETURNING the id. None when a concurrent request made it first (nothing written, the
    transaction intact), so it needs no savepoint (issue 16). The values are the model's own
    (defaults, `auto_now_add`), prepared by its fields."""
    annotation = Annotation(trace=trace, annotator=user)
    db = connections[router.db_for_write(Annotation)]
    if not insert(db, annotation, unless_exists=("trace", "annotator")):
        return None
    signals.annotation_started.send(sender=Annotation, user=user, trace=trace)
    return annotation


def _steps_of(trace: Trace) -> list[Step]:
    """The trace's steps, without their texts (what a label write needs: ids and indexes): from
    the (id, index) pairs `selectors.trace_get_for_label` read with the trace where it did, else
    one query."""
    rows = getattr(trace, "step_rows", None)
    if rows is None:
        return list(trace.steps.order_by("index").only("id", "trace_id", "index"))
    alias = trace._state.db
    names = ["id", "trace_id", "index"]
    return [Step.from_db(alias, names, [pk, trace.pk, index]) for pk, index in rows]


def _cascade(*, user: User, trace: Trace, first_error: int | None) -> CascadeResult:
    with transaction.atomic():
        annotation = _annotation_locked(user=user, trace=trace)
        steps = _steps_of(trace)
        result = _labels_write(
            annotation=annotation,
            steps=steps,
            targets=_cascade_targets(step_count=len(steps), first_error=first_error),
            keep_hand=True,
        )
        Annotation.objects.filter(pk=annotation.pk).update(updated_at=timezone.now())
    return result


def label_first_error(*, user: User, step: Step) -> CascadeResult:
    """Mark `step` as the first wrong one (-1): earlier steps +1, later ratings cleared; both
    only where the annotator did not set the label by hand (`kept` lists those)."""
    return _cascade(user=user, trace=step.trace, first_error=step.index)


def label_all_correct(*, user: User, trace: Trace) -> CascadeResult:
    """Every step +1 (the "no wrong step" answer), except labels set by hand (`kept`)."""
    return _cascade(user=user, trace=trace, first_error=None)


# --- the labelling page's change log -------------------------------------------------------------

CHANGE_OPS = ("label", "first_error", "all_correct", "restore")
MAX_CHANGES_PER_REQUEST = 1000


@dataclass(frozen=True)
class ChangesResult:
    applied: list[int]  # the change numbers applied now
    skipped: list[int]  # already applied before (a resend)
    kept: list[int]  # hand-set labels that a first-error / all-correct left as they were
    labels: list[StepLabel]  # the saved state of every step the changes touched
    labelled: int  # steps of the annotation with a value, after the changes
    step_count: int


def _check_source(source: Any, where: str) -> str:
    if source not in LabelSource.values:
        raise ValidationError(
            {"changes": f"{where}: source {source!r} is not one of {LabelSource.values}."}
        )
    return str(source)


def _is_seq(seq: Any) -> bool:
    """A change number: a positive integer (not a bool)."""
    return isinstance(seq, int) and not isinstance(seq, bool) and seq >= 1


def _step_at(by_index: dict[int, Step], index: Any, where: str) -> Step:
    valid = isinstance(index, int) and not isinstance(index, bool)
    step = by_index.get(index) if valid else None
    if step is None:
        raise ValidationError({"changes": f"{where}: this trace has no step {index!r}."})
    return step


def _label_change(
    change: dict[str, Any], where: str, *, project: Project, by_index: dict[int, Step]
) -> tuple[Step, dict[str, Any]]:
    """The step and the fields a change {"op": "label", ...} sets, checked (the error names the
    change and the field)."""
    step = _step_at(by_index, change.get("index"), where)
    fields: dict[str, Any] = {}
    if "value" in change:
        value = change["value"]
        if value is not None and (type(value) is not int):
            raise ValidationError({"changes": f"{where}: value must be -1, 0, 1 or null."})
        _check_value(project=project, value=value)
        fields["value"] = value
        fields["source"] = LabelSource.HAND
    if "flagged" in change:
        if not isinstance(change["flagged"], bool):
            raise ValidationError({"changes": f"{where}: flagged must be true or false."})
        fields["flagged"] = change["flagged"]
    if "note" in change:
        if not isinstance(change["note"], str) or len(change["note"]) > 20_000:
            raise ValidationError({"changes": f"{where}: note: text, at most 20000."})
        fields["note"] = change["note"]
    if not fields:
        raise ValidationError({"changes": f"{where}: send at least one of value, flagged, note."})
    return step, fields


def _one_label_change(
    *, user: User, trace: Trace, client: str, change: Any
) -> ChangesResult | None:
    """The change log's commonest request, one label change of a trace whose annotation exists,
    on PostgreSQL: one statement in autocommit (`_label_upsert_guarded`) instead of BEGIN, the
    annotation's row lock, the upsert and COMMIT (issue 16). None when it does not apply or
    wrote nothing (a change already applied, one the general path must refuse, the annotation
    gone): `label_changes_apply`'s transaction then decides, as for any other request."""
    if not isinstance(change, dict) or change.get("op") != "label":
        return None
    seq = change.get("seq")
    if not _is_seq(seq):
        return None
    rows = getattr(trace, "step_rows", None)  # (id, index) of every step, read with the trace
    if rows is None:
        return None
    index = change.get("index")
    by_index = {  # the one step the change names (none: the general path names the error)
        i: Step.from_db(trace._state.db, ["id", "trace_id", "index"], [pk, trace.pk, i])
        for pk, i in rows
        if i == index and type(index) is int
    }
    try:  # a resend of an applied change is skipped, not refused: the general path knows which
        step, fields = _label_change(change, "changes[0]", project=trace.project, by_index=by_index)
    except ValidationError:
        return None
    found = _label_upsert_guarded(
        annotation_id=trace.my_annotation_id,  # type: ignore[attr-defined]
        user=user,
        step=step,
        fields=fields,
        client=client,
        seq=seq,
    )
    if found is None:
        return None
    label, labelled = found
    step.trace = trace
    label.step = step
    return ChangesResult(
        applied=[seq], skipped=[], kept=[], labels=[label], labelled=labelled, step_count=len(rows)
    )


def label_changes_apply(
    *, user: User, trace: Trace, client: str, changes: list[dict[str, Any]]
) -> ChangesResult:
    """Apply the labelling page's changes in the order given, in one transaction.

    Each change has a number `seq`, increasing per `client` (one browser's page of this trace,
    across reloads); a change whose number was already applied for that client is skipped, so a
    page may resend everything it has not seen confirmed (a retry after a failure, a replay after
    a reload racing a request of the page before) and nothing is applied twice or out of order.

    Ops: {"op": "label", "index", and any of "value", "flagged", "note"} (a value set by hand);
    {"op": "first_error", "index"}; {"op": "all_correct"}; {"op": "restore", "labels": [{"index",
    "value", "source"}]} (undo and redo: the labels exactly as they were).
    """
    if not isinstance(client, str) or not client or len(client) > 64:
        raise ValidationError({"client": "1 to 64 characters naming this page's change log."})
    if not isinstance(changes, list):
        raise ValidationError({"changes": "a list of changes."})
    if len(changes) > MAX_CHANGES_PER_REQUEST:
        raise ValidationError(
            {"changes": f"At most {MAX_CHANGES_PER_REQUEST} changes per request."}
        )
    project = trace.project
    if (
        len(changes) == 1
        and getattr(trace, "my_annotation_id", None)
        and connections[router.db_for_write(Annotation)].vendor == "postgresql"
    ):
        done = _one_label_change(user=user, trace=trace, client=client, change=changes[0])
        if done is not None:
            return done
    with transaction.atomic():
        annotation = _annotation_locked(user=user, trace=trace)
        steps = _steps_of(trace)
        for step in steps:
            step.trace = trace
        by_index = {step.index: step for step in steps}
        last = int((annotation.client_seqs or {}).get(client, 0))
        applied: list[int] = []
        skipped: list[int] = []
        kept: list[int] = []
        touched: set[int] = set()
        written: dict[int, StepLabel] = {}  # index: the row its upsert returned, not read again
        # On PostgreSQL a last change that sets a label is written together with the change-log
        # number (`_label_upsert_and_seqs`): one statement fewer for the commonest request.
        one_statement = connections[router.db_for_write(Annotation)].vendor == "postgresql"
        last_label: tuple[Step, dict[str, Any]] | None = None
        for position, change in enumerate(changes):
            where = f"changes[{position}]"
            if not isinstance(change, dict):
                raise ValidationError({"changes": f"{where}: an object."})
            seq = change.get("seq")
            if not _is_seq(seq):
                raise ValidationError({"changes": f"{where}: seq must be a positive integer."})
            if seq <= last:
                skipped.append(seq)
                continue
            op = change.get("op")
            if op not in CHANGE_OPS:
                raise ValidationError(
                    {"changes": f"{where}: op {op!r} is not one of {', '.join(CHANGE_OPS)}."}
                )

            def step_at(index: Any, where: str = where) -> Step:
                return _step_at(by_index, index, where)

            if op == "label":
                step, fields = _label_change(change, where, project=project, by_index=by_index)
                if position == len(changes) - 1 and one_statement:
                    last_label = (step, fields)  # written with the change-log number, below
                else:
                    label = _label_upsert(annotation=annotation, step=step, fields=fields)
                    label.step = step
                    written[step.index] = label
                touched.add(step.index)
            elif op in ("first_error", "all_correct"):
                first = step_at(change.get("index")).index if op == "first_error" else None
                result = _labels_write(
                    annotation=annotation,
                    steps=steps,
                    targets=_cascade_targets(step_count=len(steps), first_error=first),
                    keep_hand=True,
                )
                kept = result.kept
                touched.update(by_index)
                written.clear()
            else:
                rows = change.get("labels")
                if not isinstance(rows, list):
                    raise ValidationError({"changes": f"{where}: labels must be a list."})
                targets: dict[int, tuple[int | None, str]] = {}
                for n, row in enumerate(rows):
                    row_where = f"{where}.labels[{n}]"
                    if not isinstance(row, dict):
                        raise ValidationError({"changes": f"{row_where}: an object."})
                    index = step_at(row.get("index"), row_where).index
                    value = row.get("value")
                    if value is not None and (
                        not isinstance(value, int) or isinstance(value, bool)
                    ):
                        raise ValidationError(
                            {"changes": f"{row_where}: value must be -1, 0, 1 or null."}
                        )
                    _check_value(project=project, value=value)
                    targets[index] = (row.get("value"), _check_source(row.get("source"), row_where))
                _labels_write(annotation=annotation, steps=steps, targets=targets, keep_hand=False)
                touched.update(targets)
                for index in targets:
                    written.pop(index, None)
            applied.append(seq)
            last = seq
        labelled: int | None = None
        seqs = {**(annotation.client_seqs or {}), client: last}
        if last_label is not None:
            step, fields = last_label
            label, labelled = _label_upsert_and_seqs(
                annotation_id=annotation.pk, step=step, fields=fields, seqs=seqs
            )
            label.annotation = annotation
            written[step.index] = label
        elif applied:
            labelled = _client_seqs_save(annotation_id=annotation.pk, seqs=seqs)
        unread = touched - set(written)
        saved = {label.step_id: label for label in written.values()}
        if unread:
            saved.update(
                (label.step_id, label)
                for label in StepLabel.objects.filter(
                    annotation=annotation, step__index__in=unread
                ).select_related("step")
            )
        if labelled is None:
            labelled = _labelled_count(annotation.pk)
    labels = [
        saved.get(by_index[index].pk)
        or StepLabel(annotation=annotation, step=by_index[index], value=None)
        for index in sorted(touched)
    ]
    return ChangesResult(
        applied=applied,
        skipped=skipped,
        kept=kept,
        labels=labels,
        labelled=labelled,
        step_count=len(steps),
    )


def _client_seqs_save(*, annotation_id: int, seqs: dict[str, int]) -> int:
    """Store the annotation's change-log numbers (and touch `updated_at`), returning the steps
    of it with a value: one statement (the count, a subquery of RETURNING, sees this
    transaction's label writes before it)."""
    db = connections[router.db_for_write(Annotation)]
    field = Annotation._meta.get_field("client_seqs")
    params = [
        field.get_db_prep_save(seqs, db),
        db.ops.adapt_datetimefield_value(timezone.now()),
        annotation_id,
        annotation_id,
    ]
    with db.cursor() as cursor:
        cursor.execute(statement(db, _client_seqs_sql), params)
        return int(cursor.fetchone()[0])


def _label_upsert_and_seqs(
    *, annotation_id: int, step: Step, fields: dict[str, Any], seqs: dict[str, int]
) -> tuple[StepLabel, int]:
    """PostgreSQL: `_label_upsert_row` for `step` and `_client_seqs_save` in one statement (the
    upsert in a WITH, the annotation's UPDATE joined to its one row), a round trip fewer on the
    change log's commonest request, one label. The count's subquery sees the labels as they
    were before the statement, so it counts the other steps' values and adds this one's."""
    db = connections[router.db_for_write(Annotation)]
    now = timezone.now()
    upsert, params = _label_upsert_sql(
        db, annotation_id=annotation_id, step=step, at=None, fields=fields, now=now
    )
    annotation = table(db, Annotation)
    sql = (
        f"WITH up AS ({upsert}) "
        f"UPDATE {annotation} SET {column(db, Annotation, 'client_seqs')} = %s, "
        f"{column(db, Annotation, 'updated_at')} = %s FROM up "
        f"WHERE {annotation}.{column(db, Annotation, 'id')} = %s "
        f"RETURNING {_upserted_and_labelled_sql(db)}"
    )
    field = Annotation._meta.get_field("client_seqs")
    params += [
        field.get_db_prep_save(seqs, db),
        db.ops.adapt_datetimefield_value(now),
        annotation_id,
        annotation_id,
    ]
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        found = cursor.fetchone()
    assert found is not None, "the annotation is locked by this transaction"
    label = _label_from_row(found[:-1], annotation_id=annotation_id, step=step, now=now)
    return label, int(found[-1])


def _label_upsert_guarded(
    *,
    annotation_id: int,
    user: User,
    step: Step,
    fields: dict[str, Any],
    client: str,
    seq: int,
) -> tuple[StepLabel, int] | None:
    """PostgreSQL, in autocommit: one statement that stores change number `seq` of `client` in
    the user's annotation only if it is above the number stored (an UPDATE ... WHERE, so the row
    is locked and the condition read again on its latest version when tabs race), upserts the
    label only if that UPDATE returned the annotation (INSERT ... SELECT from it), and returns
    the label and the annotation's count of steps with a value (the count's subquery sees the
    labels as they were before the statement: the other steps' values plus this one's). None:
    nothing written."""
    db = connections[router.db_for_write(Annotation)]
    now = timezone.now()
    upsert, upsert_params = _label_upsert_sql(
        db,
        annotation_id=annotation_id,
        step=step,
        at=None,
        fields=fields,
        now=now,
        annotation_from="g",
    )
    seqs = column(db, Annotation, "client_seqs")
    sql = (
        f"WITH g AS (UPDATE {table(db, Annotation)} SET {seqs} = jsonb_set(COALESCE({seqs}, "
        f"'{{}}'::jsonb), ARRAY[%s]::text[], to_jsonb(%s::bigint)), "
        f"{column(db, Annotation, 'updated_at')} = %s "
        f"WHERE {column(db, Annotation, 'id')} = %s AND {column(db, Annotation, 'annotator')} = %s "
        f"AND COALESCE(({seqs} ->> %s)::bigint, 0) < %s "
        f"RETURNING {column(db, Annotation, 'id')}), "
        f"up AS ({upsert}) "
        f"SELECT {_upserted_and_labelled_sql(db)} FROM up"
    )
    params = [
        client,
        seq,
        db.ops.adapt_datetimefield_value(now),
        annotation_id,
        user.pk,
        client,
        seq,
        *upsert_params,
        annotation_id,
    ]
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        found = cursor.fetchone()
    if found is None:
        return None
    label = _label_from_row(found[:-1], annotation_id=annotation_id, step=step, now=now)
    return label, int(found[-1])


def _upserted_and_labelled_sql(db: Any) -> str:
    """The columns of the label a WITH query `up` upserted (`_LABEL_RETURNED`), then the count
    of the annotation's steps with a value after it (one parameter: the annotation's id). The
    count's subquery sees the labels as they were before the statement, so it counts the other
    steps' values and adds this one's."""
    returned = ", ".join(f"up.{column(db, StepLabel, name)}" for name in _LABEL_RETURNED)
    label_step, label_value = column(db, StepLabel, "step"), column(db, StepLabel, "value")
    return (
        f"{returned}, ({_labelled_count_sql(db)} AND {label_step} <> up.{label_step}) "
        f"+ (CASE WHEN up.{label_value} IS NULL THEN 0 ELSE 1 END)"
    )


def _client_seqs_sql(db: Any) -> str:
    return (
        f"UPDATE {table(db, Annotation)} SET {column(db, Annotation, 'client_seqs')} = %s, "
        f"{column(db, Annotation, 'updated_at')} = %s "
        f"WHERE {column(db, Annotation, 'id')} = %s "
        f"RETURNING ({_labelled_count_sql(db)})"
    )


def _labelled_count_sql(db: Any) -> str:
    return (
        f"SELECT COUNT(*) FROM {table(db, StepLabel)} "
        f"WHERE {column(db, StepLabel, 'annotation')} = %s "
        f"AND {column(db, StepLabel, 'value')} IS NOT NULL"
    )


def _labelled_count(annotation_id: int) -> int:
    """Steps of this annotation with a value: one statement, written out (the hottest read of a
    save; the ORM's compilation cost more than the query, issue 16)."""
    db = connections[router.db_for_read(StepLabel)]
    with db.cursor() as cursor:
        cursor.execute(statement(db, _labelled_count_sql), [annotation_id])
        return int(cursor.fetchone()[0])


def _infer_finish_reason(*, annotation: Annotation, step_count: int) -> str:
    values = list(annotation.labels.exclude(value__isnull=True).values_list("value", flat=True))
    if -1 in values:
        return FinishReason.FOUND_ERROR
    if len(values) == step_count:
        return FinishReason.SOLUTION
    raise ValidationError(
        {
            "finish_reason": f"Label every step ({len(values)} of {step_count} labelled) or choose "
            "a finish reason (bad problem, give up)."
        }
    )


def annotation_submit(*, user: User, trace: Trace, finish_reason: str | None = None) -> Annotation:
    """Submit the user's pass over a trace; the finish reason is inferred from the labels if not given.

    Submitting again (a revision) keeps the first submission time.
    """
    step_count = trace.steps.count()
    with transaction.atomic():
        annotation = annotation_start(user=user, trace=trace)
        annotation = Annotation.objects.select_for_update().get(pk=annotation.pk)
        newly_submitted = annotation.status != AnnotationStatus.SUBMITTED
        if not finish_reason:
            finish_reason = _infer_finish_reason(annotation=annotation, step_count=step_count)
        if finish_reason not in FinishReason.values:
            raise ValidationError({"finish_reason": f"Unknown finish reason {finish_reason!r}."})
        if (
            finish_reason == FinishReason.FOUND_ERROR
            and not annotation.labels.filter(value=-1).exists()
        ):
            raise ValidationError({"finish_reason": "'found_error' needs a step labelled -1."})
        if finish_reason == FinishReason.SOLUTION:
            rated = annotation.labels.exclude(value__isnull=True)
            if rated.filter(value=-1).exists() or rated.count() != step_count:
                raise ValidationError(
                    {"finish_reason": "'solution' needs every step labelled and none -1."}
                )
        annotation.finish_reason = finish_reason
        annotation.status = AnnotationStatus.SUBMITTED
        if annotation.submitted_at is None:
            annotation.submitted_at = timezone.now()
        if trace.project.blind and annotation.revealed_at is None:
            # The blind label is what was submitted before any score was seen; keep it apart.
            annotation.labels.update(blind_value=F("value"))
            annotation.revealed_at = timezone.now()
        annotation.save(
            update_fields=["finish_reason", "status", "submitted_at", "revealed_at", "updated_at"]
        )
        if newly_submitted:  # the project's filled count and the annotators' progress, counted
            # under the project's row lock: the submission that fills a trace is known to one
            counts.submission_counted(
                project_id=trace.project_id, trace_id=trace.pk, annotator_id=user.pk
            )
        if not annotation.imported:
            signals.annotation_submitted.send(sender=Annotation, user=user, trace=trace)
    return annotation


def annotation_add_active_time(*, user: User, trace: Trace, seconds: float) -> Annotation:
    """Add a heartbeat's worth of active time to the user's annotation: never negative, at most
    MAX_ACTIVE_SECONDS_PER_HEARTBEAT, and at most the wall time since the previous heartbeat (so
    that heartbeats sent in a burst, or from two tabs, cannot add more time than has passed)."""
    seconds = max(0.0, min(float(seconds), MAX_ACTIVE_SECONDS_PER_HEARTBEAT))
    annotation = annotation_start(user=user, trace=trace)
    with transaction.atomic():
        # Write first: the row (PostgreSQL) or the database (SQLite) is locked before the last
        # heartbeat is read, so concurrent heartbeats are credited one after the other.
        rows = Annotation.objects.filter(pk=annotation.pk)
        rows.update(updated_at=timezone.now())
        now = timezone.now()  # read under the lock: never before the previous heartbeat's
        last = rows.values_list("last_heartbeat_at", flat=True).get()
        if last is not None:
            seconds = min(seconds, max(0.0, (now - last).total_seconds()))
        rows.update(
            active_seconds=F("active_seconds") + seconds, last_heartbeat_at=now, updated_at=now
        )
    signals.annotation_active.send(sender=Annotation, user=user, trace=trace)
    annotation.refresh_from_db()
    return annotation
