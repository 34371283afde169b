"""Reads of review: disagreements, adjudication, agreement and Best-of-N, each behind a role check."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Count, F

from annotate import selectors as annotate_selectors
from annotate.models import (
    Annotation,
    AnnotationStatus,
    GoldLabel,
    LabelSource,
    Membership,
    Problem,
    Project,
    Role,
    Step,
    StepLabel,
    StepPart,
    Trace,
)
from annotate.selectors import problem_get_for_user, project_get_for_user, trace_get_for_user
from scoring import selectors as scoring_selectors
from scoring.models import RunStatus, Scorer, ScoreRun, StepScore
from scoring.prm.aggregate import RESPONSE, TRAJECTORY, aggregate

from . import agreement, sampling
from .models import Assignment, AssignmentStatus, GoldLabelChange, TracePriority

UserLike = User | AnonymousUser


# --- Review: the adjudication queue and page, agreement (reviewers only) -------------------------


@dataclass(frozen=True)
class Disagreement:
    """A step that submitted annotators labelled differently."""

    trace_id: int
    external_id: str
    step_index: int
    values: list[int]
    gold: int | None
    gold_source: str

    @property
    def spread(self) -> int:
        return max(self.values) - min(self.values)


def disagreement_list(
    *, project: Project, include_resolved: bool = False, limit: int = 200
) -> list[Disagreement]:
    """Steps where submitted annotations disagree, the widest splits (-1 against +1) first.

    Resolved ones (an adjudicated gold label exists) are left out unless asked for. The caller
    has checked that the user reviews `project` (project_get_for_user(min_role=REVIEWER)).
    """
    from django.db.models import Max, Min

    rows = (
        StepLabel.objects.filter(
            annotation__trace__project=project,
            annotation__status=AnnotationStatus.SUBMITTED,
            value__isnull=False,
        )
        .values("step_id")
        .annotate(kinds=Count("value", distinct=True), lo=Min("value"), hi=Max("value"))
        .filter(kinds__gt=1)
    )
    if not include_resolved:
        rows = rows.exclude(step__gold__source="adjudicated")
    rows = rows.order_by(F("lo") - F("hi"), "step__trace_id", "step__index")[:limit]
    step_ids = [row["step_id"] for row in rows]
    values: dict[int, list[int]] = {}
    for step_id, value in StepLabel.objects.filter(
        step_id__in=step_ids,
        annotation__status=AnnotationStatus.SUBMITTED,
        value__isnull=False,
    ).values_list("step_id", "value"):
        values.setdefault(step_id, []).append(value)
    steps = Step.objects.select_related("trace", "gold").in_bulk(step_ids)
    out = []
    for step_id in step_ids:
        step = steps[step_id]
        gold = getattr(step, "gold", None)
        out.append(
            Disagreement(
                trace_id=step.trace_id,
                external_id=step.trace.external_id,
                step_index=step.index,
                values=sorted(values.get(step_id, [])),
                gold=gold.value if gold else None,
                gold_source=gold.source if gold else "",
            )
        )
    return out


@dataclass
class AdjudicationLabel:
    annotator: str
    status: str
    value: int | None
    blind_value: int | None
    flagged: bool
    note: str
    updated_at: object
    active_seconds: float


@dataclass
class AdjudicationStep:
    step: Step
    labels: list[AdjudicationLabel]
    gold: GoldLabel | None
    history: list[object]
    scores: list[tuple[object, object]]  # (scorer, StepScore | None)

    @property
    def disagree(self) -> bool:
        rated = {
            lab.value for lab in self.labels if lab.value is not None and lab.status == "submitted"
        }
        return len(rated) > 1


@dataclass
class Adjudication:
    trace: Trace
    project: Project
    annotations: list[Annotation]
    steps: list[AdjudicationStep]
    scorers: list[object]

    trajectory_scores: list[ScoreRun] = field(default_factory=list)

    @property
    def has_thinking(self) -> bool:
        """Steps carry their part (thinking / response) only where the trace has both kinds."""
        return any(s.step.part == StepPart.THINKING for s in self.steps)


def adjudication_for_user(*, user: UserLike, trace_id: int) -> Adjudication:
    """Everything a reviewer settles a trace with: each annotator's label, note and time per
    step, the PRM scores (and generative critiques), the gold label and its change log."""
    trace = trace_get_for_user(user=user, trace_id=trace_id, min_role=Role.REVIEWER)
    annotations = list(
        Annotation.objects.filter(trace=trace).select_related("annotator").order_by("started_at")
    )
    labels: dict[int, list[AdjudicationLabel]] = {}
    for label in (
        StepLabel.objects.filter(annotation__trace=trace)
        .select_related("annotation__annotator")
        .order_by("annotation__started_at", "pk")
    ):
        annotation = label.annotation
        labels.setdefault(label.step_id, []).append(
            AdjudicationLabel(
                annotator=annotation.annotator.get_username(),
                status=annotation.status,
                value=label.value,
                blind_value=label.blind_value,
                flagged=label.flagged,
                note=label.note,
                updated_at=label.updated_at,
                active_seconds=annotation.active_seconds,
            )
        )
    history: dict[int, list[object]] = {}
    for change in GoldLabelChange.objects.filter(step__trace=trace).select_related("changed_by"):
        history.setdefault(change.step_id, []).append(change)
    scores = scoring_selectors.trace_scores(user=user, trace_id=trace.pk)
    steps = [
        AdjudicationStep(
            step=step,
            labels=labels.get(step.pk, []),
            gold=getattr(step, "gold", None),
            history=history.get(step.pk, []),
            scores=[(panel.scorer, panel.scores.get(step.pk)) for panel in scores.panels],
        )
        for step in trace.steps.select_related("gold").order_by("index")
    ]
    return Adjudication(
        trace=trace,
        project=trace.project,
        annotations=annotations,
        steps=steps,
        scorers=[panel.scorer for panel in scores.panels],
        trajectory_scores=[
            panel.run
            for panel in scores.panels
            if panel.scores
            and panel.run is not None
            and (panel.run.trajectory_score is not None or panel.run.response_score is not None)
        ],
    )


def agreement_for_user(*, user: UserLike, slug: str) -> tuple[Project, object]:
    """The project's agreement report (agreement.ProjectAgreement), for its reviewers only."""
    project = project_get_for_user(user=user, slug=slug, min_role=Role.REVIEWER)
    return project, project_agreement(project=project)


@dataclass
class RankedTrace:
    trace: Trace
    aggregate: float | None  # None: not scored
    step_count: int
    status: str | None = None  # this scorer version's run: queued / running / done / failed
    hidden: bool = False  # a blind project's scores, before this annotator submitted the trace

    @property
    def pending(self) -> bool:
        return self.status in (RunStatus.QUEUED, RunStatus.RUNNING)


def _blind_hidden(*, user: UserLike, project: Project, traces: list[Trace]) -> set[int]:
    """The traces whose scores this user may not see yet: in a blind project, an annotator sees
    a trace's scores only once they submitted it (the rule of scoring.selectors.scores_hidden_for,
    for many traces in one query)."""
    if not project.blind:
        return set()
    if annotate_selectors.role_at_least(
        annotate_selectors.project_role(user=user, project=project), Role.REVIEWER
    ):
        return set()
    revealed = set(
        Annotation.objects.filter(
            trace__in=traces, annotator_id=user.pk, revealed_at__isnull=False
        ).values_list("trace_id", flat=True)
    )
    return {t.pk for t in traces} - revealed


def problem_best_of_n(
    *, user: UserLike, problem_id: int, scorer: Scorer, how: str = "min"
) -> tuple[Problem, list[RankedTrace]]:
    """The problem's traces ranked by the scorer's aggregate of step scores (`how`: one of
    AGGREGATIONS), its trajectory score (`how="trajectory"`) or its response-level score
    (`how="response"`), best first; unscored ones last."""
    problem = problem_get_for_user(user=user, problem_id=problem_id)
    traces = list(Trace.objects.filter(problem=problem).order_by("id"))
    hidden = _blind_hidden(user=user, project=problem.project, traces=traces)
    by_trace: dict[int, list[float]] = {}
    for trace_id, score in (
        StepScore.objects.filter(
            run__trace__in=traces,
            run__scorer=scorer,
            run__scorer_version=scorer.version,
            run__status=RunStatus.DONE,
        )
        .order_by("run__trace_id", "step__index")
        .values_list("run__trace_id", "score")
    ):
        by_trace.setdefault(trace_id, []).append(score)
    runs = {
        trace_id: (status, {TRAJECTORY: trajectory, RESPONSE: response})
        for trace_id, status, trajectory, response in ScoreRun.objects.filter(
            trace__in=traces, scorer=scorer, scorer_version=scorer.version
        ).values_list("trace_id", "status", "trajectory_score", "response_score")
    }
    statuses = {trace_id: status for trace_id, (status, _) in runs.items()}

    def score_of(trace: Trace) -> float | None:
        if how in (TRAJECTORY, RESPONSE):
            status, whole = runs.get(trace.pk, (None, {}))
            return whole.get(how) if status == RunStatus.DONE else None
        return aggregate(by_trace.get(trace.pk, []), how)

    ranked = [
        RankedTrace(
            trace=t,
            aggregate=None if t.pk in hidden else score_of(t),
            step_count=0 if t.pk in hidden else len(by_trace.get(t.pk, [])),
            status=statuses.get(t.pk),
            hidden=t.pk in hidden,
        )
        for t in traces
    ]
    ranked.sort(key=lambda r: (r.aggregate is None, -(r.aggregate or 0.0)))
    return problem, ranked


def best_of_n_problem_count(*, project: Project, scorer: Scorer) -> int:
    """The project's problems with two or more traces of known correctness that this scorer
    version has scored: what its Best-of-N accuracy (the audit's) rests on."""
    return (
        Trace.objects.filter(
            project=project,
            final_answer_correct__isnull=False,
            score_runs__scorer=scorer,
            score_runs__scorer_version=scorer.version,
            score_runs__status=RunStatus.DONE,
        )
        .values("problem_id")
        .annotate(n=Count("id", distinct=True))
        .filter(n__gte=2)
        .count()
    )


def problem_best_of_n_sample(
    *, problem: Problem, scorer: Scorer, ranked: list[RankedTrace]
) -> dict[str, Any]:
    """How much one problem's ranking means (review.sampling.problem_best_of_n_sample)."""
    return sampling.problem_best_of_n_sample(
        traces=len(ranked),
        scored=sum(1 for r in ranked if r.aggregate is not None),
        project_problems=best_of_n_problem_count(project=problem.project, scorer=scorer),
    )


def priority_of(*, trace: Trace) -> float | None:
    """The trace's stored labelling priority (None: no row yet, or not a number)."""
    value = TracePriority.objects.filter(trace=trace).values_list("priority", flat=True).first()
    return None if value is None or math.isnan(value) else value


def project_agreement(*, project: Project) -> agreement.ProjectAgreement:
    """Every coefficient over the project's submitted annotations, imported labelers' (PRM800K)
    included, as in adjudication and exports: a labeler counts in every view (no permission
    check here: callers go through selectors.agreement_for_user)."""
    annotations = Annotation.objects.filter(
        trace__project=project, status=AnnotationStatus.SUBMITTED
    )
    stats: dict[int, agreement.AnnotatorStats] = {}
    for user_id, username, seconds in annotations.values_list(
        "annotator_id", "annotator__username", "active_seconds"
    ):
        s = stats.setdefault(user_id, agreement.AnnotatorStats(user_id=user_id, username=username))
        s.traces_submitted += 1
        s.active_seconds += seconds
    rows = StepLabel.objects.filter(annotation__in=annotations, value__isnull=False).values_list(
        "annotation__annotator_id", "step_id", "step__trace_id", "step__index", "value", "source"
    )
    by_step: dict[int, dict[int, int]] = defaultdict(dict)
    judged_by_step: dict[int, dict[int, int]] = defaultdict(dict)
    by_trace: dict[int, dict[int, dict[int, int]]] = defaultdict(lambda: defaultdict(dict))
    for user_id, step_id, trace_id, index, value, source in rows.iterator(chunk_size=5000):
        if value is None:  # excluded by the query; for the type checker
            continue
        by_step[step_id][user_id] = value
        by_trace[trace_id][user_id][index] = value
        stats[user_id].steps_labelled += 1
        if source == LabelSource.FILLED:
            stats[user_id].steps_filled += 1
        else:
            judged_by_step[step_id][user_id] = value
    gold = dict(GoldLabel.objects.filter(step_id__in=list(by_step)).values_list("step_id", "value"))
    gold_pairs: dict[int, tuple[list[int], list[int]]] = defaultdict(lambda: ([], []))
    for step_id, raters in by_step.items():
        if step_id in gold:
            for user_id, value in raters.items():
                stats[user_id].gold_steps += 1
                stats[user_id].gold_agree += int(value == gold[step_id])
                gold_pairs[user_id][0].append(value)
                gold_pairs[user_id][1].append(gold[step_id])
    for user_id, (mine, theirs) in gold_pairs.items():
        stats[user_id].kappa_with_gold = agreement.cohen_kappa(mine, theirs)

    multi = [raters for raters in by_step.values() if len(raters) >= 2]
    names = {s.user_id: s.username for s in stats.values()}
    pairs: list[agreement.PairAgreement] = []
    pair_kappas: dict[int, list[float]] = defaultdict(list)
    for a, b in itertools.combinations(sorted(stats), 2):
        common = [(r[a], r[b]) for r in multi if a in r and b in r]
        if not common:
            continue
        xs, ys = zip(*common, strict=True)
        kappa = agreement.cohen_kappa(xs, ys)
        pairs.append(
            agreement.PairAgreement(
                a=names[a],
                b=names[b],
                steps=len(common),
                kappa=kappa,
                percent=sum(x == y for x, y in common) / len(common),
            )
        )
        if kappa is not None:
            pair_kappas[a].append(kappa)
            pair_kappas[b].append(kappa)
    for user_id, kappas in pair_kappas.items():
        stats[user_id].mean_pair_kappa = sum(kappas) / len(kappas)

    first_errors = []
    for per_user in by_trace.values():
        if len(per_user) >= 2:
            first_errors.append(
                {
                    user_id: agreement.first_error([labels.get(i) for i in range(max(labels) + 1)])
                    for user_id, labels in per_user.items()
                }
            )
    units = [list(r.values()) for r in multi]
    judged_units = [list(r.values()) for r in judged_by_step.values() if len(r) >= 2]
    return agreement.ProjectAgreement(
        annotators=len(stats),
        traces_multi=len(first_errors),
        steps_multi=len(multi),
        fleiss_kappa=agreement.fleiss_kappa(units),
        krippendorff_alpha=agreement.krippendorff_alpha(
            units, level="ordinal", categories=agreement.LABEL_VALUES
        ),
        first_error=agreement.first_error_agreement(first_errors),
        judged={
            "steps_multi": len(judged_units),
            "fleiss_kappa": agreement.fleiss_kappa(judged_units),
            "krippendorff_alpha": agreement.krippendorff_alpha(
                judged_units, level="ordinal", categories=agreement.LABEL_VALUES
            ),
        },
        pairs=pairs,
        stats=sorted(stats.values(), key=lambda s: s.username),
    )


@dataclass
class MemberProgress:
    """One member's work on a project, for the lead who wants to see who needs help."""

    membership: Membership
    assigned: int  # traces leased or assigned to them, not yet submitted
    in_progress: int
    done: int
    skipped: int
    seconds_per_trace: float | None
    gold_steps: int  # steps of theirs that have a gold label: what kappa_with_gold rests on
    kappa_with_gold: float | None
    mean_pair_kappa: float | None


def member_progress(*, project: Project) -> list[MemberProgress]:
    """Every member with their counts and agreement (the caller checked the admin role)."""

    def counts(queryset: Any, key: str) -> dict[int, int]:
        return dict(queryset.values(key).annotate(n=Count("pk")).values_list(key, "n"))

    assignments = Assignment.objects.filter(project=project)
    assigned = counts(assignments.filter(status=AssignmentStatus.LEASED), "annotator_id")
    skipped = counts(assignments.filter(status=AssignmentStatus.SKIPPED), "annotator_id")
    mine = Annotation.objects.filter(trace__project=project, imported=False)
    in_progress = counts(mine.filter(status=AnnotationStatus.IN_PROGRESS), "annotator_id")
    stats = {s.user_id: s for s in project_agreement(project=project).stats}
    rows = []
    for membership in annotate_selectors.project_members(project=project):
        user_id = membership.user_id
        s = stats.get(user_id)
        done = s.traces_submitted if s else 0
        rows.append(
            MemberProgress(
                membership=membership,
                assigned=assigned.get(user_id, 0),
                in_progress=in_progress.get(user_id, 0),
                done=done,
                skipped=skipped.get(user_id, 0),
                seconds_per_trace=s.active_seconds / done if s and done else None,
                gold_steps=s.gold_steps if s else 0,
                kappa_with_gold=s.kappa_with_gold if s else None,
                mean_pair_kappa=s.mean_pair_kappa if s else None,
            )
        )
    return rows
