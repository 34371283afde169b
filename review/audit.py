"""The PRM audit, Django side: a scorer's step scores against gold labels, for a whole project.

Gathers scores and gold in three flat queries, then computes everything with the engine's
metrics (scoring.prm.metrics): ProcessBench and PRMBench metrics, AUROC, calibration, the best
threshold, Best-of-N per aggregation against majority vote, breakdowns by generator, subset and
step position, outcome-process consistency checks, and the worst disagreements. Also the score
reads the labelling queue's priorities need (`queue_scores`). No permission checks here: pages
and the API reach it through `audit_for_user`, which requires a reviewer.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Q
from django.db.models.fields.json import KT
from django.http import Http404

from annotate import selectors as annotate_selectors
from annotate.models import GoldLabel, Project, Role, Trace
from scoring.models import Backend, RunStatus, Scorer, ScoreRun, StepScore
from scoring.prm import metrics
from scoring.prm.aggregate import AGGREGATIONS, RESPONSE, TRAJECTORY, aggregate

from . import sampling

UserLike = User | AnonymousUser

POSITION_BUCKETS = 10  # step positions 0..9, then "10+"
WORST_LIMIT = 50


def _current_runs(scorers: Sequence[Scorer]) -> Q:
    """Done runs of each scorer's current version."""
    q = Q(pk__in=[])
    for scorer in scorers:
        q |= Q(run__scorer_id=scorer.pk, run__scorer_version=scorer.version)
    return q & Q(run__status=RunStatus.DONE)


def queue_scores(
    *, project: Project, trace_ids: Sequence[int]
) -> dict[int, list[tuple[float, list[float | None], list[list[float]]]]]:
    """Per trace: (threshold, step scores in order, per-step sampled P(Yes)) of each of the
    project's scorers that has scored it (the labelling queue's signals). A step the scorer gave
    no verdict on (the tool backend's neutral "no check": details.verdict = "unknown") is None:
    its 0.50 sits at the threshold and would otherwise read as a verdict."""
    scorers = list(Scorer.objects.filter(projects=project))
    if not scorers or not trace_ids:
        return {}
    generative = {s.pk for s in scorers if s.backend == Backend.GENERATIVE}
    by_key: dict[tuple[int, int], list[tuple[int, float | None, list[float]]]] = defaultdict(list)
    rows = StepScore.objects.filter(_current_runs(scorers), run__trace_id__in=trace_ids)
    plain = rows.exclude(run__scorer_id__in=generative).values_list(
        "run__trace_id", "run__scorer_id", "step__index", "score", KT("details__verdict")
    )
    for trace_id, scorer_id, index, score, verdict in plain:
        known = None if verdict == "unknown" else score  # aggregate.score_is_unknown
        by_key[(trace_id, scorer_id)].append((index, known, []))
    if generative:
        for trace_id, scorer_id, index, score, details in rows.filter(
            run__scorer_id__in=generative
        ).values_list("run__trace_id", "run__scorer_id", "step__index", "score", "details"):
            samples = (details or {}).get("p_yes") or []
            by_key[(trace_id, scorer_id)].append((index, score, [float(p) for p in samples]))
    thresholds = {s.pk: s.threshold for s in scorers}
    result: dict[int, list[tuple[float, list[float | None], list[list[float]]]]] = defaultdict(list)
    for (trace_id, scorer_id), steps in by_key.items():
        steps.sort(key=lambda row: row[0])
        result[trace_id].append(
            (thresholds[scorer_id], [s for _, s, _ in steps], [p for _, _, p in steps])
        )
    return result


@dataclass
class AuditTrace:
    id: int
    external_id: str
    generator: str
    subset: str
    problem_id: int
    final_answer: str
    final_answer_correct: bool | None
    scores: list[float] = field(default_factory=list)
    gold: list[int | None] = field(default_factory=list)
    trajectory: float | None = None  # the run's trajectory score, if the scorer gives one
    response: float | None = None  # the run's response-level score, if the scorer gives one
    # Steps the scorer gave no verdict on (details.verdict = "unknown": the tool backend's
    # neutral "no check"); their score is no prediction and stays out of every figure.
    unknown: list[bool] = field(default_factory=list)

    def is_unknown(self, index: int) -> bool:
        return bool(self.unknown) and self.unknown[index]

    def judged_gold(self) -> list[int | None]:
        """The gold labels of the steps the scorer judged (None where it gave no verdict): what
        the step-level figures count."""
        return [None if self.is_unknown(i) else g for i, g in enumerate(self.gold)]

    def judged_scores(self) -> list[float]:
        """The step scores for an earliest-error prediction: a step with no verdict scores +inf,
        so it is never predicted wrong at any threshold (and never moves the best threshold)."""
        return [math.inf if self.is_unknown(i) else s for i, s in enumerate(self.scores)]

    def known_scores(self) -> list[float]:
        """The scores of the steps with a verdict (what Best-of-N aggregates)."""
        return [s for i, s in enumerate(self.scores) if not self.is_unknown(i)]

    def processbench_label(self) -> int | None:
        """gold_first_error(), or None when the scorer gave no verdict on any step (there is no
        prediction to compare: the trace is left out of ProcessBench)."""
        if self.scores and not self.known_scores():
            return None
        return self.gold_first_error()

    def gold_first_error(self) -> int | None:
        """ProcessBench's label from gold: the first -1 step; -1 when every step is gold and none
        is -1; None when that cannot be told (a gap in the gold before any -1)."""
        for index, value in enumerate(self.gold):
            if value == -1:
                return index
            if value is None:
                return None
        return -1 if self.gold else None


def audit_data(*, project: Project, scorer: Scorer) -> list[AuditTrace]:
    """Every trace of the project the scorer has scored, with its scores, which of them are no
    verdict, and gold labels."""
    traces: dict[int, AuditTrace] = {}
    scores: dict[int, list[tuple[int, float, bool]]] = defaultdict(list)
    for trace_id, index, score, verdict in StepScore.objects.filter(
        _current_runs([scorer]), run__trace__project=project
    ).values_list("run__trace_id", "step__index", "score", KT("details__verdict")):
        scores[trace_id].append((index, score, verdict == "unknown"))  # score_is_unknown
    if not scores:
        return []
    trajectories: dict[int, tuple[float | None, float | None]] = {
        trace_id: (trajectory, response)
        for trace_id, trajectory, response in ScoreRun.objects.filter(
            Q(trajectory_score__isnull=False) | Q(response_score__isnull=False),
            scorer=scorer,
            scorer_version=scorer.version,
            status=RunStatus.DONE,
            trace__project=project,
        ).values_list("trace_id", "trajectory_score", "response_score")
    }
    for row in Trace.objects.filter(project=project, pk__in=list(scores)).values_list(
        "pk",
        "external_id",
        "generator",
        "subset",
        "problem_id",
        "final_answer",
        "final_answer_correct",
    ):
        steps = sorted(scores[row[0]])
        traces[row[0]] = AuditTrace(
            *row,
            scores=[s for _, s, _ in steps],
            gold=[None] * len(steps),
            trajectory=trajectories.get(row[0], (None, None))[0],
            response=trajectories.get(row[0], (None, None))[1],
            unknown=[u for _, _, u in steps],
        )
    for trace_id, index, value in GoldLabel.objects.filter(
        step__trace__project=project
    ).values_list("step__trace_id", "step__index", "value"):
        trace = traces.get(trace_id)
        if trace is not None and index < len(trace.gold):
            trace.gold[index] = value
    return sorted(traces.values(), key=lambda t: t.id)


def _processbench(traces: Sequence[AuditTrace], threshold: float) -> dict[str, Any]:
    usable: list[tuple[AuditTrace, int]] = []
    for t in traces:
        label = t.processbench_label()
        if label is not None:
            usable.append((t, label))
    result = metrics.processbench_from_scores(
        [label for _, label in usable], [t.judged_scores() for t, _ in usable], threshold
    )
    return result.as_dict()


def _steps(traces: Sequence[AuditTrace]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(correct, score, position) of every gold-labelled step the scorer gave a verdict on;
    neutral (0) counts as correct, as in ProcessBench, where only a -1 step is an error."""
    correct, score, position = [], [], []
    for t in traces:
        for index, (g, s) in enumerate(zip(t.judged_gold(), t.scores, strict=True)):
            if g is not None:
                correct.append(g >= 0)
                score.append(s)
                position.append(index)
    return np.array(correct, dtype=bool), np.array(score, dtype=float), np.array(position)


def _group_metrics(
    traces: Sequence[AuditTrace], threshold: float, *, classification: str | None = None
) -> dict[str, Any]:
    """A group's metrics; `classification`: the group is a subset, whose name may be one of
    PRMBench's classes (each scored by PRMBench's own per-class rule)."""
    correct, score, _ = _steps(traces)
    pb = _processbench(traces, threshold)
    return {
        "traces": len(traces),
        "gold_steps": int(len(correct)),
        "acc_error": pb["acc_error"],
        "acc_correct": pb["acc_correct"],
        "f1": pb["f1"],
        "prmbench": metrics.prmbench(
            correct, score, threshold, classification=classification
        ).score,
        "auroc": metrics.auroc(correct, score),
    }


def _best_of_n(traces: Sequence[AuditTrace]) -> dict[str, Any]:
    by_problem: dict[int, list[AuditTrace]] = defaultdict(list)
    for t in traces:
        if t.final_answer_correct is not None:
            by_problem[t.problem_id].append(t)
    out: dict[str, Any] = {}
    rankings = list(AGGREGATIONS)
    if any(t.trajectory is not None for t in traces):
        rankings.append(TRAJECTORY)
    if any(t.response is not None for t in traces):
        rankings.append(RESPONSE)
    for how in rankings:
        problems = [
            [
                metrics.Candidate(
                    score=t.trajectory
                    if how == TRAJECTORY
                    else t.response
                    if how == RESPONSE
                    else aggregate(t.known_scores(), how),
                    correct=bool(t.final_answer_correct),
                    answer=t.final_answer.strip(),
                )
                for t in group
            ]
            for group in by_problem.values()
        ]
        out[how] = metrics.best_of_n(problems)
    return out


def _trajectory(traces: Sequence[AuditTrace], which: str = "trajectory") -> dict[str, Any] | None:
    """How well the trajectory score (`which="response"`: the response-level score) tells a
    right final answer from a wrong one (AUROC over the traces with both), as ReasonFlux-PRM's
    trajectory reward is meant to; None without any."""
    values = [getattr(t, which) for t in traces]
    if all(v is None for v in values):
        return None
    usable = [
        (bool(t.final_answer_correct), float(v))
        for t, v in zip(traces, values, strict=True)
        if v is not None and t.final_answer_correct is not None
    ]
    right = [r for r, _ in usable]
    return {
        "traces": len(usable),
        "right": sum(right),
        "auroc": metrics.auroc(right, [v for _, v in usable]) if usable else None,
    }


def _consistency(traces: Sequence[AuditTrace]) -> dict[str, Any]:
    """Outcome against process in the gold labels: every step +1 but a wrong final answer, and a
    -1 step inside a solution whose final answer is right."""
    all_good_wrong = [
        t
        for t in traces
        if t.gold and all(g == 1 for g in t.gold) and t.final_answer_correct is False
    ]
    bad_step_right = [
        t for t in traces if any(g == -1 for g in t.gold) and t.final_answer_correct is True
    ]
    return {
        "all_steps_correct_but_answer_wrong": {
            "count": len(all_good_wrong),
            "traces": [{"id": t.id, "external_id": t.external_id} for t in all_good_wrong[:50]],
        },
        "wrong_step_but_answer_right": {
            "count": len(bad_step_right),
            "traces": [{"id": t.id, "external_id": t.external_id} for t in bad_step_right[:50]],
        },
    }


def _worst(traces: Sequence[AuditTrace], threshold: float, limit: int) -> list[dict[str, Any]]:
    """Gold-labelled steps the scorer gets wrong, the most confident mistakes first."""
    rows: list[dict[str, Any]] = []
    for t in traces:
        for index, (g, s) in enumerate(zip(t.judged_gold(), t.scores, strict=True)):
            if g is None:
                continue
            if metrics.predicted_correct(s, threshold) == (g >= 0):
                continue
            rows.append(
                {
                    "trace_id": t.id,
                    "external_id": t.external_id,
                    "step_index": index,
                    "gold": g,
                    "score": s,
                    "severity": s if g < 0 else 1.0 - s,
                }
            )
    rows.sort(key=lambda r: (-r["severity"], r["trace_id"], r["step_index"]))
    return rows[:limit]


def _no_verdict(traces: Sequence[AuditTrace]) -> dict[str, int]:
    """How many steps the scorer gave no verdict on, and so are left out of every figure: all of
    them, those with a gold label, and the traces with no verdict on any step (left out of
    ProcessBench and of Best-of-N's step aggregations)."""
    return {
        "steps": sum(sum(t.unknown) for t in traces),
        "gold_steps": sum(
            1 for t in traces for g, u in zip(t.gold, t.unknown, strict=True) if u and g is not None
        ),
        "traces_without_any": sum(1 for t in traces if t.scores and not t.known_scores()),
    }


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value


def audit_report(
    *,
    project: Project,
    scorer: Scorer,
    threshold: float | None = None,
    worst_limit: int = WORST_LIMIT,
) -> dict[str, Any]:
    """Everything the audit page, the API and `manage.py prm_report` show, as plain JSON values."""
    threshold = scorer.threshold if threshold is None else float(threshold)
    traces = audit_data(project=project, scorer=scorer)
    correct, score, position = _steps(traces)
    pb = _processbench(traces, threshold)
    by_subset: dict[str, list[AuditTrace]] = defaultdict(list)
    by_generator: dict[str, list[AuditTrace]] = defaultdict(list)
    for t in traces:
        by_subset[t.subset or "(none)"].append(t)
        by_generator[t.generator or "(none)"].append(t)
    subsets = {
        name: _group_metrics(group, threshold, classification=name)
        for name, group in sorted(by_subset.items())
    }
    subset_f1 = [m["f1"] for m in subsets.values() if m["f1"] is not None]
    pb["by_subset"] = {
        name: {k: m[k] for k in ("acc_error", "acc_correct", "f1")} for name, m in subsets.items()
    }
    pb["mean_f1_over_subsets"] = sum(subset_f1) / len(subset_f1) if subset_f1 else None
    labels = [t.processbench_label() for t in traces]
    usable = [
        (lab, t.judged_scores()) for lab, t in zip(labels, traces, strict=True) if lab is not None
    ]
    best_t, best_f1 = metrics.best_threshold([u[0] for u in usable], [u[1] for u in usable])
    grid = [round(i / 100, 2) for i in range(101)]
    f1_curve = metrics.processbench_f1_curve([u[0] for u in usable], [u[1] for u in usable], grid)
    calib = metrics.calibration(correct, score)
    fpr, tpr = metrics.roc_curve(correct, score)
    best_of_n = _best_of_n(traces)
    positions = []
    for bucket in range(POSITION_BUCKETS + 1):
        mask = position >= bucket if bucket == POSITION_BUCKETS else position == bucket
        n = int(mask.sum())
        positions.append(
            {
                "position": f"{bucket}+" if bucket == POSITION_BUCKETS else str(bucket),
                "gold_steps": n,
                "error_rate": float((~correct[mask]).mean()) if n else None,
                "mean_score": float(score[mask].mean()) if n else None,
                "accuracy": float(
                    (metrics.predicted_correct(score[mask], threshold) == correct[mask]).mean()
                )
                if n
                else None,
                "auroc": metrics.auroc(correct[mask], score[mask]) if n else None,
            }
        )
    report = {
        "project": project.slug,
        "scorer": scorer.name,
        "scorer_version": scorer.version,
        "threshold": threshold,
        "traces": len(traces),
        "steps": int(sum(len(t.scores) for t in traces)),
        "gold_steps": int(len(correct)),
        "no_verdict": _no_verdict(traces),
        "processbench": pb,
        "prmbench": metrics.prmbench(correct, score, threshold).as_dict(),
        "auroc": metrics.auroc(correct, score),
        "threshold_rule": metrics.THRESHOLD_RULE,
        "ece": calib.ece,
        "ece_top_label": calib.top_label_ece,
        "calibration": calib.as_dict()["bins"],
        "roc": {"fpr": [float(x) for x in fpr], "tpr": [float(x) for x in tpr]}
        if len(fpr) <= 2000
        else _thin_roc(fpr, tpr),
        "best_threshold": {"threshold": best_t, "f1": best_f1},
        "f1_curve": {"thresholds": grid, "f1": [float(x) for x in f1_curve]},
        "best_of_n": best_of_n,
        "trajectory": _trajectory(traces),
        "response": _trajectory(traces, "response"),
        "best_of_n_warning": sampling.best_of_n_warning(
            max((b.get("problems") or 0 for b in best_of_n.values()), default=0)
        ),
        # How much the figures rest on, their bootstrap intervals, a warning when too few.
        "sample": sampling.audit_sample(
            labels=labels,
            scores=[t.judged_scores() for t in traces],
            gold=[t.judged_gold() for t in traces],
            threshold=threshold,
        ),
        "by_generator": {
            name: _group_metrics(group, threshold) for name, group in sorted(by_generator.items())
        },
        "by_subset": subsets,
        "by_position": positions,
        "consistency": _consistency(traces),
        "worst": _worst(traces, threshold, worst_limit),
    }
    return _nan_to_none(report)


def _thin_roc(fpr: np.ndarray, tpr: np.ndarray, points: int = 500) -> dict[str, list[float]]:
    """An ROC curve with a bounded number of points (for plots), keeping both ends."""
    keep = np.unique(np.linspace(0, len(fpr) - 1, points).round().astype(int))
    return {"fpr": [float(x) for x in fpr[keep]], "tpr": [float(x) for x in tpr[keep]]}


# --- reads with permissions -------------------------------------------------------------------------


def audit_project_for_user(*, user: UserLike, slug: str) -> Project:
    """The project, if the user reviews it (annotators never see gold or the audit)."""
    return annotate_selectors.project_get_for_user(user=user, slug=slug, min_role=Role.REVIEWER)


def audit_scorer(*, project: Project, name: str | None) -> Scorer | None:
    """The named scorer attached to the project (the first one when no name is given)."""
    scorers = Scorer.objects.filter(projects=project).order_by("name")
    if not name:
        return scorers.first()
    scorer = scorers.filter(name=name).first()
    if scorer is None:
        raise Http404(f"No scorer {name!r} in this project.")
    return scorer


def audit_for_user(
    *, user: UserLike, slug: str, scorer_name: str | None, threshold: float | None = None
) -> tuple[Project, Scorer | None, dict[str, Any] | None]:
    project = audit_project_for_user(user=user, slug=slug)
    scorer = audit_scorer(project=project, name=scorer_name)
    if scorer is None:
        return project, None, None
    return project, scorer, audit_report(project=project, scorer=scorer, threshold=threshold)
